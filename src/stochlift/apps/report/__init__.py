"""`stochlift report`: one self-contained HTML page about a trained run, read in a minute.

It opens with a headline card (pass/fail against the problem's targets, stochlift.problems.Problem.targets,
beside what an ensemble collapsed onto the true mean scores), then what a scientist looks at first: a
pausable video of true vs generated rollouts with the hidden static field beside snapshots, per-point mean
and std maps and power spectra true vs generated, the quantities of interest (a crossing-time CDF where
the problem has a crossing time, the mass over time), per-time scores with their truth-vs-truth floor and
the collapsed reference line, forecasting, rank histograms, every metric once, the training curve, a
glossary and, collapsed at the end, the run's config. 2-D fields are drawn as maps, 1-D fields as
space-time images and vectors as time series per variable; time axes are the file's physical time.

Every image is a data URI (PNG; the video an MP4 when imageio-ffmpeg is installed, else a GIF) and the
styling is inline, so the one file opens anywhere, offline, with nothing beside it; it names files by
their names, never by absolute paths.

Inputs: the run directory (config.yaml, checkpoint.safetensors, train_log.json); the reference trajectories
(default: the run's data file, its 'test' split); the generated trajectories (default: sampled here, into a
temporary file that is deleted afterwards, as many as the reference split holds, started from the
reference's own first frames); a metrics JSON (default: RUN/metrics.json when it exists), shown collapsed,
as written. All scores in the page are computed afresh from the reference and generated files: the
problem's own (`Problem.evaluate`) and the field scores with their floors (stochlift.metrics.field_scores,
which need 4 true and 2 generated trajectories); the forecasting setting also rolls the run's model out from
`forecast_trajectories` held-out reference trajectories, `forecast_samples` samples each.
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
from stochlift.apps.plots.fields import state_kind
from stochlift.apps.report.headline import Scored, headline_card
from stochlift.apps.report.html import esc, fmt, page
from stochlift.apps.report.sections import (
    Shown,
    config_section,
    forecast_section,
    glossary_section,
    metrics_section,
    qoi_section,
    rank_section,
    rollouts_section,
    scores_section,
    statistics_section,
    training_section,
)
from stochlift.apps.report.statistics import (
    COLLAPSED_SPLIT,
    shown_frames,
    static_fields,
    summarise,
    write_collapsed,
)
from stochlift.data.readers import TrajectoryReader, open_trajectories
from stochlift.data.trajectories import TrajectoryFile, write_trajectories
from stochlift.errors import StochliftError
from stochlift.evaluation.evaluate import check_comparable
from stochlift.evaluation.forecast import forecast_scores
from stochlift.io import atomic_path, refuse_overwriting_inputs
from stochlift.lifting.checkpoint import CHECKPOINT_NAME
from stochlift.lifting.pretrained import PretrainedStart
from stochlift.lifting.rollout import sample_to_file
from stochlift.lifting.runs import check_run_inputs, load_run, run_files
from stochlift.metrics.field_result import FieldScores
from stochlift.metrics.field_scores import field_scores_files
from stochlift.problems import Problem, constraint_for, get_problem

__all__ = ["build_report"]

SHOWN = 4  # trajectories in the animation
RUN_FILES = ("config.yaml", CHECKPOINT_NAME, "train_log.json")
MIN_TRUTH = 4  # the floors compare two halves of the truth of at least two trajectories each

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


def _check_pair(ref: TrajectoryReader, gen: TrajectoryReader) -> None:
    check_comparable(ref, gen)
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


# ---------------------------------------------------------------------------------------------- scoring


def _problem_metrics(problem: Problem, ref: Any, ref_split: str, gen: Any, gen_split: str) -> tuple[Any, str]:
    """The problem's own metrics (None and the reason when it has none, or too few trajectories for them)."""
    if not problem.report_metrics:
        return None, (f"no quantities of interest are scored for {problem.name} files in the report "
                      f"({problem.description})")
    try:  # too few trajectories for a score is a note in the page, not the end of the report
        return problem.evaluate(ref, gen, reference_split=ref_split, generated_split=gen_split), ""
    except StochliftError as error:
        return None, str(error)


def _field_scores(metrics: Any, ref: Any, ref_split: str, gen: Any, gen_split: str,
                  seed: int) -> tuple[FieldScores | None, str]:
    """Every score with its floor: the problem's own when its metrics hold them (generic data), else computed."""
    held = getattr(metrics, "scores", None)
    if isinstance(held, FieldScores):
        return held, ""
    if ref.splits[ref_split] < MIN_TRUTH or gen.splits[gen_split] < 2:
        return None, (f"scores with a floor need at least {MIN_TRUTH} true trajectories (two halves of two) and 2 "
                      f"generated ones, got {ref.splits[ref_split]} and {gen.splits[gen_split]}.")
    return field_scores_files(ref, gen, truth_split=ref_split, generated_split=gen_split, seed=seed), ""


def _collapsed_scores(problem: Problem, ref: Any, ref_split: str, collapsed: TrajectoryFile, fields: FieldScores | None,
                      needs_problem: bool, seed: int) -> tuple[dict[str, Any], FieldScores | None]:
    """The collapsed ensemble's problem metrics (only where a target needs them) and field scores."""
    metrics: dict[str, Any] = {}
    if needs_problem:
        value, _ = _problem_metrics(problem, ref, ref_split, collapsed, COLLAPSED_SPLIT)
        metrics = value.to_dict() if value is not None else {}
    scores = None
    if fields is not None:
        # one split suffices: only the collapsed values are drawn, and the same seed scores them against the
        # run's reference halves
        scores = field_scores_files(ref, collapsed, truth_split=ref_split, generated_split=COLLAPSED_SPLIT,
                                    initial_frames=fields.initial_frames, n_splits=fields.options.get("n_splits", 4),
                                    seed=seed)
    return metrics, scores


def _shown(ref: Any, ref_split: str, gen: Any, gen_split: str, problem: Problem) -> Shown:
    """The first trajectories of each side as the pictures take them."""
    meta = ref.meta
    k = min(SHOWN, ref.splits[ref_split], gen.splits[gen_split])
    true, generated = ref.read(ref_split, slice(0, k)), gen.read(gen_split, slice(0, k))
    kind = state_kind(meta.frame_shape)
    rgb = meta.dtype == "uint8" and meta.channels == 3 and kind == "plane"
    names = list(meta.field_names)
    if kind == "vector":
        label = f"{len(names)} variable(s)"
    elif rgb:
        label = "RGB frames"
    else:
        label = f"Field {names[0]}" + (f" (first of {len(names)}: {', '.join(names)})" if len(names) > 1 else "")
        true, generated = true[:, :, 0], generated[:, :, 0]
    return Shown(true=true, generated=generated, time=np.asarray(meta.time, dtype=np.float64), x=meta.x, kind=kind,
                 field_label=label, variable_names=names, display=problem.display(true) if kind != "vector" else {},
                 static=static_fields(ref, ref_split, k) if kind in ("plane", "line") else {})


def _animation(shown: Shown, tmp: Path, title: str) -> tuple[bytes | None, str]:
    """The rollout video: MP4 (pausable) when imageio-ffmpeg is installed, else an animated GIF."""
    if shown.kind != "plane":
        return None, ""
    try:
        import imageio_ffmpeg  # noqa: F401

        path, what = tmp / "rollouts.mp4", "MP4 video: pause, scrub and loop with its controls"
    except ImportError:
        path, what = tmp / "rollouts.gif", "animated GIF; install imageio-ffmpeg for a pausable video"
    fps = max(4.0, min(12.0, shown.true.shape[1] / 6))  # a rollout of any length plays in about 6 s or more
    plots.save_rollout_animation(path, shown.true, shown.generated, title=title, time=shown.time, panel=2.4,
                                 dpi=100, fps=fps, **shown.display)
    return path.read_bytes(), what


def _forecast(model: Any, config: Any, ref: Any, ref_split: str, initial: int, trajectories: int, samples: int,
              seed: int, tmp: Path, progress: bool) -> tuple[Any, str]:
    if trajectories == 0:
        return None, "turned off (forecast_trajectories = 0)."
    if not 1 <= initial < ref.meta.frames:
        return None, f"the reference has too few frames ({ref.meta.frames}) after {initial} given frame(s)."
    n = min(trajectories, ref.splits[ref_split])
    _say(progress, f"forecasting setting ({n} trajectories x {samples} samples)")
    subset = _heldout_subset(ref, ref_split, n, tmp / "heldout.h5")
    return forecast_scores(model, subset, "test", samples_per_trajectory=samples, initial_frames=initial, seed=seed,
                           constraint=constraint_for(config.model.constraint, ref.meta)), ""


def _meta_line(run_dir: Path, config: Any, log: dict[str, Any], ref: Any, ref_split: str, n_generated: int,
               generated_note: str) -> str:
    meta = ref.meta
    history = log.get("history") or []
    loss = f", final logged loss {esc(fmt(history[-1].get('loss')))}" if history else ""
    shape = " x ".join(str(s) for s in meta.frame_shape)
    time = np.asarray(meta.time, dtype=np.float64)
    return (f"<code>{esc(meta.dataset_name)}</code> ({esc(meta.problem)}): {ref.splits[ref_split]} true trajectories "
            f"(split <code>{esc(ref_split)}</code>) against {n_generated} generated ({generated_note}); {meta.frames} "
            f"frames of {shape} ({esc(', '.join(meta.field_names))}), time {esc(fmt(float(time[0])))} to "
            f"{esc(fmt(float(time[-1])))}. Model: label dimension d = {esc(config.model.label_dim)}, window "
            f"{esc(config.model.window)}, {esc(log.get('step', len(history)))} training steps{loss}.")


def _sizes(scored: Scored, ref: Any, ref_split: str, gen: Any, gen_split: str,
           forecast: Any) -> list[tuple[str, Any, str]]:
    rows = [("n_reference", ref.splits[ref_split], "true trajectories compared"),
            ("n_generated", gen.splits[gen_split], "generated trajectories compared")]
    if scored.fields is not None:
        rows.append(("ensemble x reference half", f"{scored.fields.ensemble_size} x {scored.fields.reference_size}",
                     "members per side and held-out true trajectories each score and floor use"))
    if forecast is not None:
        rows.append(("forecast trajectories x samples", f"{forecast.n_truth} x {forecast.ensemble_size}",
                     "held-out true trajectories and samples per trajectory"))
    return rows


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
    metrics: a metrics JSON shown as written, collapsed at the end (default: RUN/metrics.json if it exists).
    forecast_trajectories, forecast_samples: the forecasting setting rolls `forecast_samples` (>= 2) samples
        out of each of the first `forecast_trajectories` reference trajectories (0 skips the section).
    """
    run_dir, out_html = Path(run_dir), Path(out_html)
    _check_run_dir(run_dir)
    refuse_overwriting_inputs([out_html],
                              [*run_files(run_dir), run_dir / "metrics.json", reference, generated, metrics])
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
    refuse_overwriting_inputs([out_html], [config.data.path])
    if reference is not None:
        ref = open_trajectories(reference)  # our file or The Well's
    elif isinstance(data, PretrainedStart):  # a shipped model ships its first frames only, not true trajectories
        raise StochliftError("a shipped model's report needs --reference FILE (its test data: see the model card's "
                             "data command)")
    elif data is not None:
        ref = data
    else:
        raise StochliftError(f"the run's data file {config.data.path!r} is gone: pass --reference FILE")
    ref_split = ref.default_split("test")
    assert config.model.frame_shape is not None  # load_run built the model, which needs it
    if list(ref.meta.frame_shape) != list(config.model.frame_shape):
        raise StochliftError(f"reference frames of shape {list(ref.meta.frame_shape)} do not fit the model's "
                             f"{config.model.frame_shape}")
    check_run_inputs(run_dir, ref, "the reference")

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
            generated_note = f"from <code>{esc(generated_path.name)}</code>"
        gen = open_trajectories(generated_path)
        gen_split = gen.default_split("generated")
        _check_pair(ref, gen)
        problem = get_problem(ref.meta.problem)
        initial = int(gen.meta.parameters.get("initial_frames", 1))

        _say(progress, "quantities of interest")
        metrics_value, skipped = _problem_metrics(problem, ref, ref_split, gen, gen_split)
        views = problem.views(metrics_value) if metrics_value is not None else []
        _say(progress, "scores with their floors")
        fields, fields_note = _field_scores(metrics_value, ref, ref_split, gen, gen_split, seed)
        frames = shown_frames(fields.initial_frames if fields is not None else initial, ref.meta.frames)
        _say(progress, "means, spreads and spectra")
        true_summary = summarise(ref, ref_split, frames)
        generated_summary = summarise(gen, gen_split, frames)
        _say(progress, "the collapsed ensemble (true mean)")
        collapsed = write_collapsed(tmp / "collapsed.h5", ref, true_summary.mean)
        needs_problem = any(not (fields is not None and t.key.removesuffix("_ratio") in fields.scores)
                            for t in problem.targets)
        collapsed_metrics, collapsed_fields = _collapsed_scores(problem, ref, ref_split, collapsed, fields,
                                                                needs_problem and metrics_value is not None, seed)
        collapsed.close()
        scored = Scored(metrics_value.to_dict() if metrics_value is not None else {}, collapsed_metrics, fields,
                        collapsed_fields)
        forecast, forecast_note = _forecast(model, config, ref, ref_split, initial, forecast_trajectories,
                                            forecast_samples, seed, tmp, progress)

        _say(progress, "figures")
        shown = _shown(ref, ref_split, gen, gen_split, problem)
        animation, animation_note = _animation(shown, tmp, ref.meta.dataset_name)
        shown_initial = [0, *frames] if frames and frames[0] > 0 and shown.kind == "plane" else frames
        notes = [skipped] if skipped and problem.targets else []
        sections = [
            rollouts_section(shown, shown_initial, animation, animation_note),
            statistics_section(shown, true_summary, generated_summary, frames, channel=0),
            qoi_section(problem, views, scored.metrics, shown.time, skipped),
            scores_section(scored, fields_note),
            forecast_section(forecast, forecast_note),
            rank_section(fields, forecast),
            metrics_section(scored, forecast, _sizes(scored, ref, ref_split, gen, gen_split, forecast)),
            training_section(log),
            glossary_section(),
            config_section(config, metrics_file, metrics_path.name if metrics_path is not None else ""),
        ]
        meta_line = _meta_line(run_dir, config, log, ref, ref_split, gen.splits[gen_split], generated_note)
        document = page(f"stochlift report: {_run_label(run_dir)}", meta_line, headline_card(problem, scored, notes),
                        sections)
        gen.close()
    with atomic_path(out_html) as tmp_html:
        tmp_html.write_text(document, encoding="utf-8")
    _say(progress, f"wrote {out_html} ({out_html.stat().st_size / 1e6:.1f} MB)")
    return out_html
