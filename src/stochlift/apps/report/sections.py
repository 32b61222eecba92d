"""The sections of `stochlift report`, each built from numbers already computed (nothing here reads a file).

Every section that does not apply says why in a note. Time axes are the file's physical time throughout.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from stochlift.apps.plots.fields import (
    moment_maps_png,
    rollout_lines_png,
    snapshots_png,
    spacetime_moments_png,
    spacetime_rollouts_png,
    spectrum_png,
    vector_moments_png,
)
from stochlift.apps.plots.report import (
    CurvePanel,
    crossing_cdf_png,
    metric_curves_png,
    rank_histogram_png,
    series_band_png,
    training_curve_png,
)
from stochlift.apps.report.glossary import TERMS, glossary_anchor, meaning
from stochlift.apps.report.headline import Scored, problem_rows
from stochlift.apps.report.html import Markup, Section, details, esc, figure, fmt, note, table, video_figure
from stochlift.apps.report.statistics import EnsembleSummary
from stochlift.config import RunConfig, config_yaml
from stochlift.metrics.distribution import EnsembleScores
from stochlift.problems import Problem, QuantityView

PHYSICS_KEYS = ("wct", "wct_relative", "mass_w2", "mass_w2_relative", "mean_field_rmse", "std_field_rmse",
                "final_std_ratio")
# the per-time panels: score, title, y label (spectrum_error only for fields, energy_distance in its place else)
SCORE_PANELS = (
    ("energy_score", "energy score (fair, whole frames)", "energy score"),
    ("crps", "CRPS (fair, mean over points)", "CRPS"),
    ("sliced_w2", "sliced W2 (whole frames)", "sliced W2"),
    ("abs_mean_w2", "W2 of the mass (mean |x|)", "W2 of mean |x|"),
    ("spread_skill", "spread / skill", "spread / skill"),
    ("spectrum_error", "power-spectrum error", "error (decades)"),
    ("energy_distance", "energy distance (whole frames)", "energy distance"),
)


@dataclass
class Shown:
    """The first k true and generated trajectories as the pictures take them, with what labels them."""

    true: np.ndarray  # [k, T, *state] (one channel of a field, or RGB video [k, T, 3, H, W]), or [k, T, C] vectors
    generated: np.ndarray
    time: np.ndarray  # [T] physical times
    x: np.ndarray | None
    kind: str  # state_kind: "plane", "line", "vector", "other"
    field_label: str  # what the pictures show ("field u", "RGB frames", ...)
    variable_names: list[str]
    display: dict[str, Any]
    static: dict[str, np.ndarray] = field(default_factory=dict)  # name -> [k, *spatial] of the true trajectories


# ---------------------------------------------------------------------------------------------- rollouts


def rollouts_section(shown: Shown, frames: list[int], animation: bytes | None, animation_note: str) -> Section:
    k, n_frames = shown.true.shape[:2]
    static_name, static = next(iter(shown.static.items()), ("", None))
    static_note = (f" The first column is each true trajectory's hidden static field <code>{esc(static_name)}</code>"
                   " (the model never sees it; its samples must get the spread it causes right)."
                   if static is not None else "")
    if len(shown.static) > 1:
        static_note += f" Other static fields: {esc(', '.join(list(shown.static)[1:]))}."
    parts = []
    if shown.kind == "plane":
        if animation is not None:
            parts.append(video_figure(
                animation, "animation of true and generated rollouts",
                f"Top row: the first {k} true trajectories; bottom row: the first {k} generated ones, all "
                f"{n_frames} frames ({animation_note}). The pairs are not matched: each generated trajectory is one "
                f"draw of the model from the same start, not a forecast of the one above it. "
                f"{esc(shown.field_label)}."))
        rows = min(k, 3)
        parts.append(figure(
            snapshots_png(shown.true[:rows], shown.generated[:rows], frames, shown.time[frames],
                          display=shown.display, static=None if static is None else static[:rows],
                          static_name=static_name),
            "snapshots of true and generated rollouts",
            f"The first {rows} true and generated trajectories at {len(frames)} times.{static_note}"))
    elif shown.kind == "line":
        parts.append(figure(
            spacetime_rollouts_png(shown.true, shown.generated, shown.time, shown.x, display=shown.display,
                                   static=static, static_name=static_name),
            "space-time images of true and generated rollouts",
            f"The first {k} true (top) and generated (bottom) trajectories of the 1-D field as space-time images "
            f"(x across, time up). {esc(shown.field_label)}.{static_note}", "wide"))
    elif shown.kind == "vector":
        parts.append(figure(
            rollout_lines_png(shown.true, shown.generated, shown.time, shown.variable_names),
            "true and generated trajectories over time",
            f"The first {k} true (solid) and generated (dashed) trajectories, per variable.", "wide"))
    else:
        parts.append(note(f"No rollout picture for states of shape {list(shown.true.shape[2:])}."))
    return Section("rollouts", "Rollouts: true vs generated", "".join(parts))


# ------------------------------------------------------------------------------------------- statistics


def statistics_section(shown: Shown, true: EnsembleSummary, generated: EnsembleSummary, frames: list[int],
                       channel: int) -> Section:
    """Per-point mean and std, true vs generated, and the power spectra."""
    parts = []
    times = shown.time[frames]
    sizes = f"over the {true.n} true and {generated.n} generated trajectories"
    field_name = shown.variable_names[channel] if channel < len(shown.variable_names) else str(channel)
    if shown.kind == "plane":
        pick = (lambda a: a[frames, channel])
        parts.append(figure(
            moment_maps_png(pick(true.mean), pick(generated.mean), pick(true.std), pick(generated.std), times,
                            display=shown.display),
            "per-point mean and std maps, true vs generated",
            f"Per-point ensemble mean (top rows) and standard deviation (bottom rows) {sizes}, at {len(frames)} "
            f"times from the first generated frame. Means share one colour scale, stds another. "
            f"Field <code>{esc(field_name)}</code>.", "wide"))
    elif shown.kind == "line":
        parts.append(figure(
            spacetime_moments_png(true.mean[:, channel], generated.mean[:, channel], true.std[:, channel],
                                  generated.std[:, channel], shown.time, shown.x, display=shown.display),
            "per-point mean and std of the 1-D field, true vs generated",
            f"Per-point ensemble mean and standard deviation {sizes}, as space-time images (x across, time up). "
            f"Field <code>{esc(field_name)}</code>.", "wide"))
    elif shown.kind == "vector":
        parts.append(figure(
            vector_moments_png(true.mean, generated.mean, true.std, generated.std, shown.time, shown.variable_names),
            "ensemble mean and std per variable, true vs generated",
            f"Ensemble mean +- one standard deviation of each variable {sizes}.", "wide"))
    if true.spectra is not None and generated.spectra is not None:
        parts.append(figure(
            spectrum_png(true.spectra, generated.spectra, times), "power spectra, true vs generated",
            f"Radially averaged power spectrum (spatial mean removed, averaged over trajectories and fields) "
            f"{sizes} at the same times: true solid, generated dashed. A blurry model loses power at high "
            f"wavenumbers, a noisy one gains it."))
    elif shown.kind != "vector":
        parts.append(note("No power spectrum: it needs a field of at least 4 points per axis."))
    else:
        parts.append(note("No power spectrum or maps for vector states: their variables are shown over time."))
    return Section("statistics", "Mean, spread and spectrum", "".join(parts))


# ------------------------------------------------------------------------------------ quantities of interest


def qoi_section(problem: Problem, views: list[QuantityView], metrics: dict[str, Any], time: np.ndarray,
                skipped: str) -> Section:
    if not views:
        reason = skipped or (f"no quantities of interest are defined for {problem.name} files "
                             f"({problem.description})")
        return Section("qoi", "Quantities of interest", note(f"Skipped: {esc(reason)}."))
    parts, notes = [], ""
    if not any(view.kind == "times" for view in views):
        notes = note(f"No crossing-time plot: no crossing time is defined for {esc(problem.name)} files.")
    for view in views:
        if view.kind == "times":
            title = f"WCT / std = {fmt(metrics.get('wct_relative'))} (W2 = {fmt(metrics.get('wct'))})"
            png = crossing_cdf_png(view.reference, view.generated, time, xlabel="crossing time", title=title)
            caption = (f"{esc(view.caption)} Empirical CDFs over the file's time: the share of trajectories that "
                       f"have crossed by each time. Trajectories that never cross count at the end of the horizon.")
            parts.append(figure(png, "crossing-time CDFs, true vs generated", caption))
        elif view.kind == "series":
            png = series_band_png(view.reference, view.generated, time, ylabel=view.label)
            parts.append(figure(png, view.title, f"{esc(view.label[0].upper() + view.label[1:])}: ensemble mean and "
                                                 f"5-95% band over time, true vs generated."))
    return Section("qoi", "Quantities of interest", f'{notes}<div class="row">{"".join(parts)}</div>')


# ---------------------------------------------------------------------------------------- scores over time


def scores_section(scored: Scored, reason: str) -> Section:
    fields, collapsed = scored.fields, scored.collapsed_fields
    if fields is None:
        return Section("scores", "Scores over time", note(f"Skipped: {esc(reason)}"))
    panels = []
    names = [entry for entry in SCORE_PANELS if entry[0] in fields.scores]
    if "spectrum_error" in fields.scores:
        names = [entry for entry in names if entry[0] != "energy_distance"]
    for name, title, ylabel in names[:6]:
        score = fields.scores[name]
        if score.per_time is None:
            continue
        other = collapsed.scores.get(name) if collapsed is not None else None
        panels.append(CurvePanel(
            title, {"this run": score.per_time["value"]}, ylabel, floor=score.per_time["floor"],
            collapsed=other.per_time["value"] if other is not None and other.per_time is not None else None,
            reference=1.0 if name == "spread_skill" else None,
            reference_label="calibrated (1)" if name == "spread_skill" else ""))
    body = figure(
        metric_curves_png(fields.time, panels, columns=3), "per-time scores with floor and collapsed reference",
        f"Each score of the generated ensemble ({fields.ensemble_size} members) against {fields.reference_size} "
        f"held-out true trajectories at every generated time (solid), the same score between two halves of the "
        f"truth (dashed grey: the floor, what sampling noise alone gives) and that of an ensemble collapsed onto "
        f"the true mean (dotted red: a model with no spread, computed from the truth). Lower is better except "
        f"spread / skill, whose ideal is 1. Averaged over {fields.options.get('n_splits', '?')} random splits of "
        f"the truth.", "wide")
    if collapsed is None:
        body += note("No collapsed reference line: it could not be computed for these files.")
    return Section("scores", "Scores over time", body)


def forecast_section(forecast: EnsembleScores | None, reason: str) -> Section:
    if forecast is None:
        return Section("forecast", "Forecasting", note(f"Skipped: {esc(reason)}"))
    pt = forecast.per_time
    panels = [
        CurvePanel("spread / skill (forecast)", {"spread / skill": pt["spread_skill"]}, "spread / skill",
                   reference=1.0, reference_label="calibrated (1)"),
        CurvePanel("spread and skill (forecast)", {"spread": pt["spread"], "skill (RMSE of mean)": pt["skill"]},
                   "spread, RMSE"),
        CurvePanel("CRPS (forecast)", {"CRPS": pt["crps"]}, "CRPS"),
    ]
    ratio = forecast.mean.get("spread_skill")
    body = (
        f"<p>{forecast.n_truth} held-out true trajectories, {forecast.ensemble_size} samples each, every sample "
        f"rolled out by the run's model from its own trajectory's first {forecast.initial_frames} frame(s). "
        f"Time-averaged spread / skill: <b>{esc(fmt(ratio))}</b> (1: calibrated; below 1: under-dispersed, "
        f"a deterministic model scores 0).</p>"
        + figure(metric_curves_png(forecast.time, panels, initial_frames=forecast.initial_frames, columns=3),
                 "forecast spread-skill ratio over time",
                 "Forecasting setting, per time: the spread-skill ratio with the finite-ensemble correction, the "
                 "spread and skill it divides, and the fair CRPS. Shaded: the given frames.", "wide")
    )
    return Section("forecast", "Forecasting", body)


_RANK_CAPTION = ("Flat (within the band) when calibrated; U-shaped: under-dispersed; dome-shaped: over-dispersed; "
                 "sloped: biased. Neighbouring points are correlated, so the +-2 sigma band is optimistic.")


def rank_section(fields: Any, forecast: EnsembleScores | None) -> Section:
    parts = []
    if fields is not None:
        members = fields.ensemble_size
        for side, title, what in (("value", "rank histogram: generated ensemble", "the generated ensemble"),
                                  ("floor", "rank histogram: truth half (floor)", "a half of the truth")):
            counts = fields.rank_histogram.get(side)
            if counts and sum(counts):
                parts.append(figure(rank_histogram_png(counts, title=title), title,
                                    f"Rank of each held-out true value among {members} members of {what}, at "
                                    f"{fields.options.get('rank_points', '?')} points per frame over the generated "
                                    f"frames. {_RANK_CAPTION}"))
    if forecast is not None and sum(forecast.rank_histogram) != 0:  # (!= 0: mypy picks sum's bool overload)
        parts.append(figure(rank_histogram_png(forecast.rank_histogram, title="rank histogram: forecasting"),
                            "rank histogram (forecasting)",
                            f"Forecasting: rank of each true value among its own {forecast.ensemble_size} samples. "
                            f"{_RANK_CAPTION}"))
    if not parts:
        return Section("ranks", "Rank histograms", note("Skipped: no ensemble scores were computed."))
    return Section("ranks", "Rank histograms", f'<div class="row">{"".join(parts)}</div>')


# ------------------------------------------------------------------------------------------------ metrics


def _linked(key: str) -> Markup:
    """A metric's name, linked to its glossary entry when it has one."""
    term = key.removeprefix("forecast.")
    if meaning(term):
        return Markup(f'<a href="#{glossary_anchor(term)}"><code>{esc(key)}</code></a>')
    return Markup(f"<code>{esc(key)}</code>")


def metrics_section(scored: Scored, forecast: EnsembleScores | None, sizes: list[tuple[str, Any, str]]) -> Section:
    """Every number once: the problem's metrics, then each field score with its floor, ratio and collapsed value.
    Names link to the glossary, which defines each once."""
    rows: list[tuple[Any, ...]] = []
    for key in problem_rows(scored.metrics, PHYSICS_KEYS):
        rows.append((_linked(key), scored.metrics[key], "", "", scored.collapsed_metrics.get(key)))
    if scored.fields is not None:
        for name, score in scored.fields.scores.items():
            collapsed = scored.collapsed_fields.scores.get(name) if scored.collapsed_fields is not None else None
            rows.append((_linked(name), score.value, score.floor, score.ratio, collapsed.value if collapsed else None))
    if forecast is not None:
        for key in ("crps", "spread_skill"):
            if key in forecast.mean:
                rows.append((_linked(f"forecast.{key}"), forecast.mean[key], "", "", ""))
    if not rows:
        return Section("metrics", "All metrics", note("No metrics were computed."))
    body = ("<p>Computed for this page from the reference and generated files; time averages run over the generated "
            "frames only. Floor: the same score between two halves of the truth; ratio: the mean over time of score "
            "/ floor (1 = as good as a second sample of the truth); collapsed ensemble: the same score of an "
            "ensemble sitting on the true mean. Each name links to its definition in the glossary.</p>"
            + table(rows, ("metric", "this run", "floor (truth vs truth)", "ratio to floor", "collapsed ensemble"))
            + "<h3>Sizes</h3>" + table(sizes, ("", "count", "what")))
    return Section("metrics", "All metrics", body)


# ----------------------------------------------------------------------------------- training, glossary, config


def training_section(log: dict[str, Any]) -> Section:
    history = [h for h in log.get("history", []) if isinstance(h, dict) and "step" in h and "loss" in h]
    if not history:
        return Section("training", "Training", note("The training log has no entries (no logging step was "
                                                    "reached)."))
    last = history[-1]
    body = figure(training_curve_png(history), "training loss against step",
                  f"Training loss (mean over the steps since the previous log entry, log scale) and learning "
                  f"rate. {len(history)} log entries; last at step {fmt(last['step'])} with loss "
                  f"{fmt(last['loss'])}.")
    return Section("training", "Training", body)


def glossary_section() -> Section:
    items = "".join(f'<dt id="{glossary_anchor(term)}">{esc(term)}</dt><dd>{esc(text)}</dd>'
                    for term, text in TERMS.items())
    return Section("glossary", "Glossary", f'<dl class="glossary">{items}</dl>')


_ABSOLUTE_PATH = re.compile(r"(?<![\w.~])(?:/[^\s/'\",:]+)+/([^\s/'\",:]+)")


def shorten_paths(text: str) -> str:
    """Absolute paths reduced to their file names: a page about a run says nothing of the machine it ran on."""
    return _ABSOLUTE_PATH.sub(r"\1", text)


def config_section(config: RunConfig, metrics_file: dict[str, Any] | None, metrics_name: str) -> Section:
    """The config the model was built from (its checkpoint's: config.yaml may have been edited since) and the
    metrics file as written (absolute paths cut to file names), both collapsed: rarely needed, always at hand."""
    text = shorten_paths(config_yaml(config))
    body = details("config.yaml of the run, as its checkpoint records it (click to open; paths shortened to file "
                   "names)", f"<pre>{esc(text)}</pre>")
    if metrics_file is not None:
        written = shorten_paths(json.dumps(metrics_file, indent=1, default=str))
        body += details(f"{metrics_name} as written (click to open; the numbers above are computed afresh)",
                        f"<pre>{esc(written)}</pre>")
    return Section("config", "Config", body)
