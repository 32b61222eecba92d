"""`stochlift report`: one self-contained HTML page about a trained run.

The page holds a summary, the run's config, its training curve, an animation of true vs generated
rollouts, the distributions of the quantities of interest, per-time metric curves of both evaluation
settings (distribution matching from a shared initial condition, and forecasting), rank histograms and a
metrics table. Every image is embedded as a data URI (PNG, the animation as GIF) and the styling is inline,
so the one file opens anywhere, offline, with nothing beside it.

Inputs: the run directory (config.yaml, checkpoint.safetensors, train_log.json); the reference trajectories
(default: the run's data file, its 'test' split); the generated trajectories (default: sampled here, into a
temporary file that is deleted afterwards, as many as the reference split holds, started from the
reference's own first frames); a metrics JSON (default: RUN/metrics.json when it exists), shown as written.
All scores in the page are computed afresh from the reference and generated files; the forecasting setting
also rolls the run's model out from `forecast_trajectories` held-out reference trajectories,
`forecast_samples` samples each.

Sections that do not apply are replaced by a note saying why: the quantities of interest are the
problem's (stochlift.problems: crossing times for Wave and Flow, mass for those and generic data, none for
video); ensemble scores need two or more trajectories on each side.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from stochlift.apps import plots
from stochlift.data.readers import open_trajectories
from stochlift.data.trajectories import TrajectoryFile, write_trajectories
from stochlift.errors import StochliftError
from stochlift.io import atomic_path
from stochlift.lifting.checkpoint import CHECKPOINT_NAME
from stochlift.lifting.rollout import sample_to_file
from stochlift.lifting.runs import load_run
from stochlift.metrics.distribution import EnsembleScores, distribution_scores_files
from stochlift.evaluation.forecast import forecast_scores
from stochlift.problems import Metrics, Problem, QuantityView, constraint_for, get_problem
from stochlift.apps.plots.report import CurvePanel, metric_curves_png, rank_histogram_png, training_curve_png
from stochlift.apps.report.html import Section, esc, figure, fmt, note, page, table

__all__ = ["build_report"]

SHOWN = 4  # trajectories in the animation
RUN_FILES = ("config.yaml", CHECKPOINT_NAME, "train_log.json")

PathLike = str | os.PathLike


def _say(progress: bool, message: str) -> None:
    if progress:
        print(f"report: {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ inputs


def _run_label(run_dir: Path) -> str:
    """The run's name; with its parent's for a generic name like the demo's "run"."""
    path = run_dir.resolve()
    return f"{path.parent.name}/{path.name}" if path.name in ("run", "runs", ".") and path.parent.name else path.name


def _check_run_dir(run_dir: Path) -> None:
    if not run_dir.is_dir():
        raise StochliftError(f"no such run directory: {run_dir}")
    missing = [name for name in RUN_FILES if not (run_dir / name).is_file()]
    if missing:
        raise StochliftError(f"{run_dir} is not a complete training run (missing {', '.join(missing)}); "
                             "train one with `stochlift train`")


def _read_history(run_dir: Path) -> dict[str, Any]:
    try:
        log = json.loads((run_dir / "train_log.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise StochliftError(f"cannot read {run_dir / 'train_log.json'}: {exc}") from None
    if not isinstance(log, dict) or not isinstance(log.get("history", []), list):
        raise StochliftError(f"{run_dir / 'train_log.json'} has no 'history' list")
    return log


def _read_metrics(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise StochliftError(f"no such metrics file: {path}") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise StochliftError(f"cannot read metrics file {path}: {exc}") from None
    if not isinstance(data, dict):
        raise StochliftError(f"metrics file {path} must hold a JSON object")
    return data


def _check_pair(ref: TrajectoryFile, gen: TrajectoryFile) -> None:
    if ref.meta.problem != gen.meta.problem:
        raise StochliftError(f"reference is a {ref.meta.problem!r} file but generated is {gen.meta.problem!r}")
    if (ref.meta.frames, ref.meta.frame_shape) != (gen.meta.frames, gen.meta.frame_shape):
        raise StochliftError(
            f"reference frames {ref.meta.frames} x {list(ref.meta.frame_shape)} and generated frames "
            f"{gen.meta.frames} x {list(gen.meta.frame_shape)} must match; sample with --frames "
            f"{ref.meta.frames} or pass a matching --generated file"
        )


def _heldout_subset(ref: TrajectoryFile, split: str, n: int, out: Path) -> Path:
    """The first n trajectories of a split as their own small file (split 'test'), for the forecast setting."""
    write_trajectories(out, ref.meta, {"test": ref.read(split, slice(0, n))})
    return out


# ---------------------------------------------------------------------------------------------- sections


def _config_section(run_dir: Path) -> Section:
    text = (run_dir / "config.yaml").read_text()
    return Section("config", "Config", f"<p>From <code>{esc(run_dir / 'config.yaml')}</code>.</p>"
                                        f"<pre>{esc(text)}</pre>")


def _training_section(log: dict[str, Any]) -> Section:
    history = [h for h in log.get("history", []) if isinstance(h, dict) and "step" in h and "loss" in h]
    if not history:
        return Section("training", "Training curve", note("The training log has no entries (no logging step "
                                                            "was reached)."))
    last = history[-1]
    body = figure(training_curve_png(history), "training loss against step",
                   f"Training loss (mean over the steps since the previous log entry, log scale) and learning "
                   f"rate. {len(history)} log entries; last at step {fmt(last['step'])} with loss "
                   f"{fmt(last['loss'])}.")
    return Section("training", "Training curve", body)


def _rollout_section(ref: TrajectoryFile, ref_split: str, gen: TrajectoryFile, gen_split: str, tmp: Path) -> Section:
    k = min(SHOWN, ref.splits[ref_split], gen.splits[gen_split])
    true = ref.read(ref_split, slice(0, k))[:, :, 0]
    generated = gen.read(gen_split, slice(0, k))[:, :, 0]
    n_frames = true.shape[1]
    display = get_problem(ref.meta.problem).display(true)
    field = ref.meta.field_names[0]
    plots.save_rollout_animation(tmp / "rollouts.gif", true, generated, title=f"{ref.meta.dataset_name}: {field}",
                                 **display)
    plots.save_snapshot_grid(tmp / "snapshots.png", true, generated, **display)
    channels = "" if len(ref.meta.field_names) == 1 else (
        f" Showing field <code>{esc(field)}</code> of {len(ref.meta.field_names)}.")
    body = (
        figure((tmp / "rollouts.gif").read_bytes(), "animation of true and generated rollouts",
                f"Top row: the first {k} true trajectories of the reference; bottom row: the first {k} generated "
                f"ones (animated GIF, {n_frames} frames). The pairs are not matched: each generated trajectory is "
                f"one draw of the model, not a forecast of the one above it.{channels}")
        + figure((tmp / "snapshots.png").read_bytes(), "snapshots of true and generated rollouts",
                  "The same trajectories at four times.")
    )
    return Section("rollouts", "Rollouts vs truth", body)


def _qoi_section(problem: Problem, physics: Metrics | None, views: list[QuantityView], tmp: Path,
                 skipped: str = "") -> Section:
    if physics is None and skipped:
        return Section("qoi", "Quantities of interest", note(f"Skipped: {esc(skipped)}."))
    if physics is None:
        return Section("qoi", "Quantities of interest", note(
            f"Skipped: no quantities of interest are defined for {esc(problem.name)} files in the report "
            f"({esc(problem.description)})."))
    parts = []
    if not any(view.kind == "times" for view in views):
        parts.append(note(f"No crossing-time plot: no crossing time is defined for {esc(problem.name)} files."))
    for view in views:
        path = tmp / f"{view.key}.png"
        plots.save_quantity_plot(path, view.kind, view.reference, view.generated, label=view.label,
                                 metrics=physics.to_dict())
        parts.append(figure(path.read_bytes(), view.title, view.caption))
    return Section("qoi", "Quantities of interest", "".join(parts))


def _curves_section(physics: Metrics | None, dist: EnsembleScores | None, dist_note: str) -> Section:
    if dist is None and (physics is None or "mass_w2_per_time" not in physics.to_dict()):
        return Section("curves", "Per-time metric curves", note(f"Skipped: {dist_note}"))
    panels = []
    mass_w2 = physics.to_dict().get("mass_w2_per_time") if physics is not None else None
    if mass_w2 is not None:
        panels.append(CurvePanel("mass W2 (true vs generated)", {"mass W2": mass_w2}, "W2"))
    if dist is not None:
        pt = dist.per_time
        panels += [
            CurvePanel("CRPS (fair, mean over grid points)", {"CRPS": pt["crps"]}),
            CurvePanel("energy score (fair, whole fields)", {"energy score": pt["energy_score"]}),
            CurvePanel("sliced W2 (whole fields)", {"sliced W2": pt["sliced_w2"]}),
            CurvePanel("spread and skill", {"spread": pt["spread"], "skill (RMSE of mean)": pt["skill"]}),
            CurvePanel("spread-skill ratio", {"spread-skill ratio": pt["spread_skill_ratio"]},
                       reference=1.0, reference_label="calibrated (1)"),
        ]
    time = dist.time if dist is not None else list(np.linspace(0.0, 1.0, len(mass_w2 or [])))
    initial = dist.initial_frames if dist is not None else 1
    body = figure(metric_curves_png(time, panels, initial_frames=initial), "per-time metric curves",
                   "Distribution matching from a shared initial condition: the generated ensemble against the true "
                   "trajectories at each time (every true trajectory scored as one observation of the law the "
                   "generated ensemble forecasts; lower is better except the spread-skill ratio, whose ideal is 1). "
                   "Shaded: the given initial frames.")
    if dist is None:
        body += note(f"Ensemble scores skipped: {dist_note}")
    return Section("curves", "Per-time metric curves", body)


def _forecast_section(forecast: EnsembleScores | None, reason: str) -> Section:
    if forecast is None:
        return Section("forecast", "Forecasting: spread-skill ratio", note(f"Skipped: {reason}"))
    pt = forecast.per_time
    panels = [
        CurvePanel("spread-skill ratio (forecast)", {"spread-skill ratio": pt["spread_skill_ratio"]},
                   reference=1.0, reference_label="calibrated (1)"),
        CurvePanel("spread and skill (forecast)", {"spread": pt["spread"], "skill (RMSE of mean)": pt["skill"]}),
        CurvePanel("CRPS (forecast)", {"CRPS": pt["crps"]}),
    ]
    ratio = forecast.mean.get("spread_skill_ratio")
    body = (
        f"<p>{forecast.n_truth} held-out true trajectories, {forecast.ensemble_size} samples each, every sample "
        f"rolled out by the run's model from its own trajectory's first {forecast.initial_frames} frame(s). "
        f"Time-averaged spread-skill ratio: <b>{esc(fmt(ratio))}</b> (1: calibrated; below 1: under-dispersed, "
        f"a deterministic model scores 0).</p>"
        + figure(metric_curves_png(forecast.time, panels, initial_frames=forecast.initial_frames, columns=3),
                  "forecast spread-skill ratio over time",
                  "Forecasting setting, per time: spread-skill ratio with the finite-ensemble correction, the "
                  "spread and skill it divides, and the fair CRPS. Shaded: the given frames.")
    )
    return Section("forecast", "Forecasting: spread-skill ratio", body)


def _rank_section(dist: EnsembleScores | None, forecast: EnsembleScores | None) -> Section:
    parts = []
    for scores, name in ((dist, "distribution matching"), (forecast, "forecasting")):
        if scores is None or sum(scores.rank_histogram) == 0:
            continue
        parts.append(figure(
            rank_histogram_png(scores.rank_histogram, title=f"rank histogram, {name}"),
            f"rank histogram ({name})",
            f"{name.capitalize()}: rank of each true value among the {scores.ensemble_size} members, at "
            f"{scores.rank_points} grid points per frame over the generated frames. Flat (within the band) "
            f"when calibrated; U-shaped: under-dispersed; dome-shaped: over-dispersed; sloped: biased. "
            f"Neighbouring points are correlated, so the +-2 sigma band is optimistic."))
    if not parts:
        return Section("ranks", "Rank histogram", note("Skipped: no ensemble scores were computed."))
    return Section("ranks", "Rank histogram", "".join(parts))


_PHYSICS_ROWS = (
    ("wct", "W2 between true and generated crossing-time distributions"),
    ("wct_relative", "wct divided by the std of the true crossing times"),
    ("mass_w2", "W2 of the mass distributions, averaged over the generated frames"),
    ("mass_w2_relative", "mass_w2 divided by the mean std of the true mass"),
    ("mean_field_rmse", "RMSE between the true and generated per-pixel mean fields"),
    ("std_field_rmse", "RMSE between the true and generated per-pixel std fields"),
    ("final_std_ratio", "generated / true mean per-pixel std at the last frame (1 is ideal)"),
)
_ENSEMBLE_ROWS = (
    ("crps", "fair CRPS, mean over grid points and generated frames"),
    ("energy_score", "fair energy score over whole fields"),
    ("energy_distance", "unbiased energy distance between the ensembles (0 in expectation when equal)"),
    ("sliced_w2", "sliced W2 between the ensembles of whole fields"),
    ("spread_skill_ratio", "spread / RMSE of the ensemble mean, finite-ensemble corrected (1 is ideal)"),
)


def _metrics_section(physics: Metrics | None, crossing: bool, dist: EnsembleScores | None,
                     forecast: EnsembleScores | None, metrics_file: dict[str, Any] | None,
                     metrics_path: Path | None) -> Section:
    rows: list[tuple[str, Any, str]] = []
    if physics is not None:
        values = physics.to_dict()
        rows += [(k, values[k], d) for k, d in _PHYSICS_ROWS if k in values and (crossing or not k.startswith("wct"))]
        known = dict(_PHYSICS_ROWS)
        rows += [(k, v, "ratio to the floor: the same score between two halves of the true ensemble (1 is ideal)")
                 for k, v in values.items() if k.endswith("_ratio") and k not in known]
    for scores, prefix in ((dist, "distribution"), (forecast, "forecast")):
        if scores is not None:
            rows += [(f"{prefix}.{k}", scores.mean[k], d) for k, d in _ENSEMBLE_ROWS if k in scores.mean]
    if dist is not None:
        rows += [("n_reference", dist.n_truth, "true trajectories compared"),
                 ("n_generated", dist.n_generated, "generated trajectories compared")]
    elif physics is not None:
        rows += [("n_reference", values.get("n_reference"), "true trajectories compared"),
                 ("n_generated", values.get("n_generated"), "generated trajectories compared")]
    if forecast is not None:
        rows.append(("forecast.trajectories x samples", f"{forecast.n_truth} x {forecast.ensemble_size}",
                     "held-out true trajectories and samples per trajectory"))
    body = table(rows) if rows else note("No metrics were computed.")
    body = ("<p>Computed for this report; time averages run over the generated frames only.</p>" + body
            if rows else body)
    if metrics_file is not None:
        scalars = [(k, v) for k, v in metrics_file.items() if isinstance(v, int | float | str | bool) or v is None]
        body += (f"<h3>From the metrics file</h3><p><code>{esc(metrics_path)}</code>, as written there "
                 f"(lists left out).</p>" + table(scalars, ("key", "value")))
    return Section("metrics", "Metrics", body)


def _summary(run_dir: Path, config: Any, log: dict[str, Any], ref: TrajectoryFile, ref_split: str,
             gen: TrajectoryFile, generated_note: str, physics: Metrics | None, crossing: bool,
             dist: EnsembleScores | None, forecast: EnsembleScores | None) -> str:
    meta = ref.meta
    history = log.get("history") or []
    loss = f", final logged loss {fmt(history[-1].get('loss'))}" if history else ""
    shape = " x ".join(str(s) for s in meta.frame_shape)
    n_true = dist.n_truth if dist is not None else ref.splits[ref_split]
    text = (
        f"Run <code>{esc(_run_label(run_dir))}</code>: a lifted model with label dimension d = "
        f"{esc(config.model.label_dim)} and a window of {esc(config.model.window)} frame(s), trained for "
        f"{esc(log.get('step', len(history)))} steps{loss}. It is compared with {n_true} "
        f"true trajectories of <code>{esc(meta.dataset_name)}</code> ({esc(meta.problem)}, split "
        f"<code>{esc(ref_split)}</code>, {meta.frames} frames of {shape} ({esc(', '.join(meta.field_names))})) "
        f"using {gen.splits[gen.default_split('generated')]} generated trajectories ({generated_note})."
    )
    facts = []
    values = physics.to_dict() if physics is not None else {}
    if crossing:
        facts.append(f"crossing-time W2 / std {fmt(values.get('wct_relative'))}")
    if "mass_w2_relative" in values:
        facts.append(f"mass W2 / std {fmt(values['mass_w2_relative'])}")
    if dist is not None:
        facts.append(f"CRPS {fmt(dist.mean.get('crps'))}")
        facts.append(f"spread-skill ratio {fmt(dist.mean.get('spread_skill_ratio'))} (distribution matching)")
    if forecast is not None:
        facts.append(f"spread-skill ratio {fmt(forecast.mean.get('spread_skill_ratio'))} (forecasting, "
                     f"{forecast.n_truth} x {forecast.ensemble_size})")
    if facts:
        text += " Headline scores: " + "; ".join(esc(f) for f in facts) + ". Relative W2 scores near 0 and " \
                "spread-skill ratios near 1 mean the generated ensemble matches the true one."
    return f'<p class="summary">{text}</p>'


# ------------------------------------------------------------------------------------------------- page

# -------------------------------------------------------------------------------------------- public API


def build_report(
    run_dir: PathLike,
    out_html: PathLike,
    *,
    reference: PathLike | None = None,
    generated: PathLike | None = None,
    metrics: PathLike | None = None,
    forecast_trajectories: int = 16,
    forecast_samples: int = 4,
    samples: int | None = None,
    seed: int = 0,
    progress: bool = True,
) -> Path:
    """Write one self-contained HTML report of a run to `out_html` (atomically) and return its path.

    reference: true trajectories (default: the run's data file); its 'test' split (or its only split).
    generated: generated trajectories to evaluate (default: `samples` trajectories, default as many as the
        reference split, sampled from the run into a temporary file that is deleted afterwards).
    metrics: a metrics JSON shown as written (default: RUN/metrics.json if it exists).
    forecast_trajectories, forecast_samples: the forecasting setting rolls `forecast_samples` (>= 2) samples
        out of each of the first `forecast_trajectories` reference trajectories (0 skips the section).
    """
    run_dir, out_html = Path(run_dir), Path(out_html)
    _check_run_dir(run_dir)
    if forecast_trajectories < 0:
        raise StochliftError(f"forecast_trajectories must be >= 0, got {forecast_trajectories}")
    if forecast_trajectories and forecast_samples < 2:
        raise StochliftError(f"forecast_samples must be >= 2 (the fair scores need two), got {forecast_samples}")
    if samples is not None and samples < 1:
        raise StochliftError(f"samples must be >= 1, got {samples}")
    log = _read_history(run_dir)
    metrics_path = Path(metrics) if metrics is not None else (
        run_dir / "metrics.json" if (run_dir / "metrics.json").is_file() else None)
    metrics_file = _read_metrics(metrics_path)
    model, config, data = load_run(run_dir)
    if reference is not None:
        ref = open_trajectories(reference)  # our file or The Well's
    elif data is not None:
        ref = data
    else:
        raise StochliftError(f"the run's data file {config.data.path!r} is gone: pass --reference FILE")
    ref_split = ref.default_split("test")
    if list(ref.meta.frame_shape) != list(config.model.frame_shape):
        raise StochliftError(f"reference frames of shape {list(ref.meta.frame_shape)} do not fit the model's "
                             f"{config.model.frame_shape}")

    with tempfile.TemporaryDirectory(prefix="stochlift-report-") as tmp_name:
        tmp = Path(tmp_name)
        if generated is None:
            n = samples or ref.splits[ref_split]
            _say(progress, f"sampling {n} trajectories from the run (temporary file)")
            generated_path = sample_to_file(run_dir, tmp / "generated.h5", trajectories=n, frames=ref.meta.frames,
                                            initial=ref.path, initial_split=ref_split, seed=seed, progress=progress)
            generated_note = "sampled for this report from the reference's first frames"
        else:
            generated_path = Path(generated)
            generated_note = f"from <code>{esc(generated_path)}</code>"
        gen = open_trajectories(generated_path)
        gen_split = gen.default_split("generated")
        _check_pair(ref, gen)
        problem = get_problem(ref.meta.problem)
        physics, views, skipped = None, [], ""
        if problem.report_metrics:
            _say(progress, "quantities of interest")
            try:  # too few trajectories for a score is a note in the page, not the end of the report
                physics = problem.evaluate(ref, gen, reference_split=ref_split, generated_split=gen_split)
                views = problem.views(physics)
            except StochliftError as error:
                skipped = str(error)
        crossing = any(view.kind == "times" for view in views)

        dist, dist_note = None, ""
        if ref.splits[ref_split] < 2 or gen.splits[gen_split] < 2:
            dist_note = (f"ensemble scores need at least 2 true and 2 generated trajectories, got "
                         f"{ref.splits[ref_split]} and {gen.splits[gen_split]}.")
        else:
            _say(progress, "ensemble scores (distribution matching)")
            dist = distribution_scores_files(ref, gen, truth_split=ref_split, generated_split=gen_split, seed=seed)

        forecast, forecast_note = None, ""
        initial = dist.initial_frames if dist is not None else int(gen.meta.parameters.get("initial_frames", 1))
        if forecast_trajectories == 0:
            forecast_note = "turned off (forecast_trajectories = 0)."
        elif not 1 <= initial < ref.meta.frames:
            forecast_note = f"the reference has too few frames ({ref.meta.frames}) after {initial} given frame(s)."
        else:
            n = min(forecast_trajectories, ref.splits[ref_split])
            _say(progress, f"forecasting setting ({n} trajectories x {forecast_samples} samples)")
            subset = _heldout_subset(ref, ref_split, n, tmp / "heldout.h5")
            forecast = forecast_scores(model, subset, "test", samples_per_trajectory=forecast_samples,
                                       initial_frames=initial, seed=seed,
                                       constraint=constraint_for(config.model.constraint, ref.meta))

        _say(progress, "figures")
        sections = [
            _config_section(run_dir),
            _training_section(log),
            _rollout_section(ref, ref_split, gen, gen_split, tmp),
            _qoi_section(problem, physics, views, tmp, skipped),
            _curves_section(physics, dist, dist_note),
            _forecast_section(forecast, forecast_note),
            _rank_section(dist, forecast),
            _metrics_section(physics, crossing, dist, forecast, metrics_file, metrics_path),
        ]
        summary = _summary(run_dir, config, log, ref, ref_split, gen, generated_note, physics, crossing, dist,
                           forecast)
        document = page(f"stochlift report: {_run_label(run_dir)}", summary, sections)
        gen.close()
    with atomic_path(out_html) as tmp_html:
        tmp_html.write_text(document, encoding="utf-8")
    _say(progress, f"wrote {out_html} ({out_html.stat().st_size / 1e6:.1f} MB)")
    return out_html
