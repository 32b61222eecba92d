"""The headline card at the top of the report: pass/fail against the problem's targets, in a few lines.

Targets come from the problem (stochlift.problems.Problem.targets), so the report holds no per-problem
knowledge; every value is shown beside what an ensemble collapsed onto the true mean scores, which says
at a glance whether a target separates a useful model from one without spread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from stochlift.apps.report.html import Markup, esc, fmt, table
from stochlift.metrics.field_result import FieldScores
from stochlift.problems import Problem, Target

RATIO_SUFFIX = "_ratio"
CONTEXT_SCORES = (("energy_score", "energy score"), ("sliced_w2", "sliced W2"))


def ratio_against(values: Sequence[float | None], floors: Sequence[float | None]) -> float | None:
    """Mean over time of value / floor where both are defined and the floor is positive (the headline ratio)."""
    v = np.array([np.nan if x is None else x for x in values], dtype=np.float64)
    f = np.array([np.nan if x is None else x for x in floors], dtype=np.float64)
    ok = np.isfinite(v) & np.isfinite(f) & (f > 0)
    return float(np.mean(v[ok] / f[ok])) if ok.any() else None


@dataclass
class Scored:
    """Everything the card and the metrics table read: the problem's metrics and the field scores, each for the
    run and for the collapsed ensemble (None where they could not be computed)."""

    metrics: dict[str, Any]
    collapsed_metrics: dict[str, Any]
    fields: FieldScores | None
    collapsed_fields: FieldScores | None

    def field_ratio(self, name: str, collapsed: bool = False) -> float | None:
        """A field score's ratio to the floor; for the collapsed ensemble against the run's floor (the same
        reference half and ensemble size), not its own."""
        if self.fields is None or name not in self.fields.scores:
            return None
        score = self.fields.scores[name]
        if not collapsed:
            return score.ratio
        if self.collapsed_fields is None or name not in self.collapsed_fields.scores or score.per_time is None:
            return None
        other = self.collapsed_fields.scores[name].per_time
        return None if other is None else ratio_against(other["value"], score.per_time["floor"])

    def value(self, key: str, collapsed: bool = False) -> float | None:
        """A target's metric: `<score>_ratio` from the field scores when they hold it, else the problem's."""
        name = key[: -len(RATIO_SUFFIX)] if key.endswith(RATIO_SUFFIX) else ""
        if self.fields is not None and name in self.fields.scores:
            return self.field_ratio(name, collapsed)
        value = (self.collapsed_metrics if collapsed else self.metrics).get(key)
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None


def _badge(passed: bool | None) -> Markup:
    if passed is None:
        return Markup('<span class="badge none">n/a</span>')
    return Markup('<span class="badge pass">pass</span>' if passed else '<span class="badge fail">fail</span>')


def _verdict(targets: Sequence[Target], results: list[bool | None], problem: Problem) -> str:
    if not targets:
        return (f'<span class="verdict none">no targets for {esc(problem.name)} data</span>')
    passed = sum(r is True for r in results)
    if passed == len(targets):
        return f'<span class="verdict pass">meets {"its target" if passed == 1 else f"all {passed} targets"}</span>'
    undefined = sum(r is None for r in results)
    text = f"meets {passed} of {len(targets)} targets" + (f" ({undefined} not computed)" if undefined else "")
    return f'<span class="verdict fail">{esc(text)}</span>'


def _short(value: float | None) -> str:
    """Two decimals for a ratio read at a glance (the table below has 4 significant digits)."""
    return "n/a" if value is None else f"{value:.2f}"


def _context(scored: Scored) -> str:
    """One line of the field scores against their floor, with the collapsed ensemble's, and spread/skill."""
    if scored.fields is None:
        return ""
    parts = []
    for name, label in CONTEXT_SCORES:
        ratio = scored.field_ratio(name)
        if ratio is not None:
            collapsed = scored.field_ratio(name, collapsed=True)
            parts.append(f"{label} <b>{_short(ratio)}</b>x" + (f" (collapsed ensemble {_short(collapsed)}x)"
                                                               if collapsed is not None else ""))
    spread = scored.fields.scores.get("spread_skill")
    if spread is not None and spread.value is not None:
        parts.append(f"spread / skill <b>{_short(spread.value)}</b> (1 is calibrated; the truth's own "
                     f"{_short(spread.floor)})")
    if not parts:
        return ""
    return ("<p>Against the truth's own sampling noise (ratio to the truth-vs-truth floor, 1 = as good as a second "
            "sample of the truth): " + "; ".join(parts) + ".</p>")


def headline_card(problem: Problem, scored: Scored, notes: Sequence[str] = ()) -> str:
    """The card: a verdict, one row per target (value, limit, the collapsed ensemble's value, pass/fail), and the
    field scores against their floor."""
    targets = tuple(problem.targets)
    rows, results = [], []
    for target in targets:
        value = scored.value(target.key)
        results.append(target.passes(value))
        rows.append((target.key, target.label, value, Markup(f"&le; {esc(fmt(target.limit))}"),
                     scored.value(target.key, collapsed=True), _badge(results[-1])))
    body = _verdict(targets, results, problem)
    if rows:
        body += table(rows, ("metric", "what it is", "this run", "target", "collapsed ensemble", "verdict"))
        whys = sorted({t.why for t in targets if t.why})
        body += "".join(f"<p class=\"meta\">Target: {esc(why)}.</p>" for why in whys)
    body += _context(scored)
    body += "".join(f'<p class="note">{esc(text)}</p>' for text in notes)
    return f'<div class="card" id="headline"><h2>Headline</h2>{body}</div>'


def problem_rows(metrics: Mapping[str, Any], keys: Sequence[str]) -> list[str]:
    """The problem's scalar metrics among `keys`, in that order."""
    return [k for k in keys if isinstance(metrics.get(k), int | float) and not isinstance(metrics.get(k), bool)]
