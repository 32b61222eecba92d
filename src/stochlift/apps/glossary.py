"""Every metric stochlift reports, by the one name it has everywhere (metrics.json, `stochlift evaluate`, the
experiments' tables, the report, the run log): what it is, its range and what is good.

The names follow one scheme: a score's key is the same in every file and table; `<key>_relative` divides it
by the truth's own spread (Wave and Flow); `<key>_ratio` divides it by its floor, the same score between two
halves of the true ensemble (generic data: 1 is as good as the truth itself); `val_<key>` is the score on the
validation split while training. The paper's names, where it has its own, are given beside ours.

`GLOSSARY` is data: the report renders it, `stochlift evaluate` shows each metric's verdict column from it,
and docs/glossary.md is generated from it (`python -m stochlift.apps.glossary > docs/glossary.md`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Metric:
    key: str  # its name everywhere
    group: str  # which output holds it
    meaning: str  # what it is
    range: str  # the values it takes
    good: str  # what is good (a few words; the verdict column of `stochlift evaluate`)
    paper: str = ""  # the paper's name for it, where it differs


PHYSICS = "Wave and Flow (`stochlift evaluate`, metrics.json, the demo, the experiments)"
ENSEMBLE = "Ensemble scores (the report, `stochlift.forecast_scores`, generic data)"
GENERIC = "Generic data (`stochlift data import`; every score with its floor)"
VIDEO = "Video (`stochlift evaluate`, `stochlift video-eval`)"
TRAINING = "Training (train_log.csv, TensorBoard, train_log.json)"

_METRICS = [
    Metric("wct", PHYSICS,
           "Wasserstein-2 distance between the crossing-time distributions of generated and true trajectories. "
           "The crossing time is the first time a trajectory reaches a region (Wave: the field exceeds a threshold "
           "on the outer ring; Flow: water reaches the producer corner), as a fraction of the trajectory's "
           "duration (1: never reached).",
           ">= 0, at most 1 (fractions of the duration)", "0 is best; read it with wct_relative", "WCT"),
    Metric("wct_relative", PHYSICS, "wct divided by the standard deviation of the true crossing times.",
           ">= 0", "0 is best; the demos' target is <= 0.5; >= 1 for a model collapsed onto one time"),
    Metric("mass_w2", PHYSICS,
           "Wasserstein-2 distance between the distributions of the mass (the paper's integrated mass, the mean "
           "of |u| over the frame: Flow's water in place) of generated and true trajectories, per frame, averaged over "
           "the generated frames (frame 0 is given).",
           ">= 0, in the field's units", "0 is best; read it with mass_w2_relative", "WIM"),
    Metric("mass_w2_relative", PHYSICS,
           "mass_w2 divided by the true mass's standard deviation (averaged over the same frames).",
           ">= 0", "0 is best; the demos' target is <= 0.5; >= 1 for a model collapsed onto one trajectory"),
    Metric("mass_w2_per_time", PHYSICS, "mass_w2 at every frame (a curve; frame 0 is 0).",
           ">= 0 per frame", "0 is best; growing late: the rollout drifts"),
    Metric("mean_field_rmse", PHYSICS,
           "RMS difference of the per-pixel mean fields, generated against true, over the generated frames.",
           ">= 0, in the field's units", "0 is best"),
    Metric("std_field_rmse", PHYSICS,
           "RMS difference of the per-pixel standard-deviation fields, generated against true.",
           ">= 0, in the field's units", "0 is best"),
    Metric("final_std_ratio", PHYSICS,
           "Mean per-pixel standard deviation of the generated trajectories at the last frame over that of the "
           "true ones: how much of the truth's spread survives the rollout.",
           ">= 0", "1 is right; below 1 under-dispersed (0: collapsed), above 1 over-dispersed"),
    Metric("frames_with_islands", PHYSICS,
           "Flow: the share of generated frames with water islands cut off from the injector (true frames have "
           "none).", "0 to 1", "0 is right"),
    Metric("energy_score", ENSEMBLE,
           "Fair energy score of the generated ensemble against each true trajectory, on whole frames, averaged "
           "over the true trajectories and the generated frames. A proper score: it mostly measures the truth's "
           "own spread, so it never reaches 0.",
           ">= 0, in the field's units", "lower is better; compare models, or read its floor ratio"),
    Metric("crps", ENSEMBLE,
           "Fair continuous ranked probability score per grid point, averaged over points, true trajectories "
           "and generated frames (proper, like the energy score).",
           ">= 0, in the field's units", "lower is better; compare models, or read its floor ratio"),
    Metric("spread_skill", ENSEMBLE,
           "The spread-skill ratio: ensemble spread (root mean member variance) over skill (RMSE of the ensemble "
           "mean), corrected for the ensemble size (for generic data, spread_skill_ratio is it over its floor).",
           "> 0", "1 is calibrated; below 1 under-dispersed, above 1 over-dispersed"),
    Metric("rank_histogram", ENSEMBLE,
           "Counts of the rank of each true value among the generated members (n + 1 bins).",
           "counts", "flat; U-shaped: under-dispersed; a hump: over-dispersed"),
    Metric("energy_distance", ENSEMBLE,
           "Energy distance between the generated and true ensembles of whole frames (a divergence).",
           ">= 0", "0 in expectation for the same law; read it with its floor"),
    Metric("sliced_w2", ENSEMBLE,
           "Sliced Wasserstein-2 distance between the generated and true ensembles of whole frames (random "
           "directions, the same for both).", ">= 0, in the field's units", "0 in the limit; read it with its floor"),
    Metric("rank_deviation", GENERIC, "RMS deviation of the rank histogram from flat, relative to the flat count.",
           ">= 0", "0 is flat; read it with its floor"),
    Metric("mean_w2", GENERIC, "W2 of each trajectory's spatial mean per variable, averaged over the variables.",
           ">= 0", "0 in the limit; read it with its floor"),
    Metric("abs_mean_w2", GENERIC, "W2 of each trajectory's spatial mean of |x| per variable (the paper's mass, "
           "per variable).", ">= 0", "0 in the limit; read it with its floor"),
    Metric("spectrum_error", GENERIC, "Error in decades of the ensemble-mean radially averaged power spectrum, "
           "mean over wavenumber shells (fields only).", ">= 0", "0 in the limit; read it with its floor"),
    Metric("<score>_ratio", GENERIC,
           "A score divided by its floor: the same score between two halves of the true ensemble at the same "
           "sizes (e.g. energy_score_ratio, sliced_w2_ratio).", "> 0",
           "1: as good as a second sample of the truth; proper scores 1.1 is already visible, divergences "
           "blow up for a collapsed model"),
    Metric("<qoi>_w2", GENERIC, "W2 of a quantity of interest of your own (`stochlift evaluate --qoi`).",
           ">= 0", "0 in the limit; read it with its floor"),
    Metric("fvd", VIDEO,
           "Frechet Video Distance: the Frechet distance between Gaussians fitted to I3D (Kinetics-400) features "
           "of true and generated clips; the protocol is written beside it.",
           ">= 0", "lower is better; depends on the number of clips and the protocol, so compare like with like"),
    Metric("psnr_best", VIDEO,
           "Peak signal-to-noise ratio of the predicted frames against the true continuation, the best of the N "
           "samples per test video, averaged over videos.", "dB, >= 0 (infinite when equal)", "higher is better"),
    Metric("ssim_best", VIDEO, "Structural similarity (tf.image.ssim convention), best of N samples per video.",
           "-1 to 1", "higher is better; 1 is identical"),
    Metric("psnr_mean", VIDEO, "PSNR averaged over the N samples instead of the best.", "dB", "higher is better"),
    Metric("ssim_mean", VIDEO, "SSIM averaged over the N samples instead of the best.", "-1 to 1",
           "higher is better"),
    Metric("sample_spread", VIDEO, "Mean per-pixel standard deviation across the N samples of a video.",
           "0 to 0.5", "0: every sample the same (collapsed); should match the data's own variety"),
    Metric("loss", TRAINING,
           "The training loss (L2 in units of the residual scale, or BCE for video), averaged over the last "
           "train.log_every steps. It says how well the net fits its labelled pairs, not how good its rollouts "
           "are.", ">= 0", "falls during training; watch val_energy_score for the rollouts"),
    Metric("lr", TRAINING, "The learning rate of the step (warm-up, then cosine or constant).", "> 0", "-"),
    Metric("pairs_per_s", TRAINING, "Training pairs per second since the run started (or resumed).", "> 0",
           "higher is faster"),
    Metric("val_energy_score", TRAINING,
           "energy_score of rollouts from the first frames of a few validation trajectories against those "
           "trajectories (train.validate_every, train.validation_trajectories).", ">= 0",
           "lower is better; should fall with the loss"),
    Metric("val_spread_skill", TRAINING, "spread_skill of the same validation rollouts.", "> 0",
           "1 is calibrated"),
]

GLOSSARY: dict[str, Metric] = {metric.key: metric for metric in _METRICS}


def metric_for(key: str) -> Metric | None:
    """The glossary entry of a result key, including the generic `<score>_ratio` keys."""
    if key in GLOSSARY:
        return GLOSSARY[key]
    base = key.removesuffix("_ratio")
    if base != key and (base in GLOSSARY or base.endswith("_w2")):
        return GLOSSARY["<score>_ratio"]
    return None


def metrics_table(report: dict[str, Any], digits: int = 4) -> str:
    """The scalar results of `evaluate` as an aligned table: name, value (rounded), what is good."""
    rows = []
    for key, value in report.items():
        if isinstance(value, bool) or (value is not None and not isinstance(value, (int, float))):
            continue
        metric = metric_for(key)
        rows.append((key, _rounded(value, digits), metric.good if metric else ""))
    if not rows:
        return ""
    width_key, width_value = (max(len(row[i]) for row in rows) for i in (0, 1))
    return "\n".join(f"{k:<{width_key}}  {v:>{width_value}}  {g}".rstrip() for k, v, g in rows)


def _rounded(value: float | int | None, digits: int) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        return str(value)
    return f"{value:.{digits}g}"


def glossary_markdown() -> str:
    """docs/glossary.md: one table per group."""
    lines = ["# Glossary of metrics", "", *__doc__.split("\n\n")[1].splitlines(), "",
             "Generated from `stochlift/apps/glossary.py` (`python -m stochlift.apps.glossary > docs/glossary.md`).",
             ""]
    for group in dict.fromkeys(metric.group for metric in _METRICS):
        lines += [f"## {group}", "", "| name | what it is | range | what is good | paper |", "|---|---|---|---|---|"]
        for m in (m for m in _METRICS if m.group == group):
            cells = [f"`{m.key}`", m.meaning, m.range, m.good, m.paper]
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(glossary_markdown(), end="")
