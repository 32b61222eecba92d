"""Figure 4 (left, middle): the label dimension d. Low d cannot interpolate the data (high final training
loss) and samples badly; once d is high enough both settle. Beside the networks, Appendix B's explicit
interpolant shows what an ideal affine-in-xi interpolant generates at each d for the first frame."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stochlift.apps.experiments import ExperimentResult
from stochlift.apps.experiments.workspace import FIELD_HEADLINES, PlannedRun, Workspace, field_ratios, model_config
from stochlift.apps.plots.experiments import save_xy_panels
from stochlift.baselines.interpolant import ExplicitInterpolant
from stochlift.data.trajectories import TrajectoryFile
from stochlift.errors import StochliftError
from stochlift.lifting.labels import training_labels
from stochlift.lifting.pairs import FileSource, PairSet
from stochlift.lifting.runs import load_run
from stochlift.metrics.quantities import frame_mass
from stochlift.metrics.wasserstein import wasserstein_1d


@torch.no_grad()
def training_set_loss(run: Path) -> dict[str, float]:
    """The trained model's loss on its own training pairs with their own labels, no input noise: over all
    pairs, and over the first step alone (x_0 -> x_1, where every trajectory starts from the same x_0, so
    only the label can tell the targets apart: the one-to-many pairs of the paper's Figure 2)."""
    model, config, data = load_run(run)
    if not isinstance(data, TrajectoryFile):
        raise StochliftError(f"{run}: the training-set loss needs the run's own data file (gone, or not recorded)")
    pairs = PairSet(FileSource(data, config.data.split, limit=config.data.trajectories), config.model.window,
                    config.model.history_padding)
    noise = model.training_noise(pairs.n_pairs, config.train.seed)  # each pair's own label
    index = np.arange(pairs.n_pairs)
    first = index[pairs.target_frames(index) == 1]

    def loss(picks: np.ndarray) -> float:
        total = 0.0
        for start in range(0, len(picks), 256):
            part = picks[start : start + 256]
            window, target = pairs.batch(part)
            total += float(model.loss(window, target, **noise.batch(part, 0))) * len(part)
        return total / len(picks)

    return {"all_pairs": loss(index), "first_step": loss(first)}


def final_loss(run: Path, tail: int = 4) -> float:
    """Mean of the last `tail` logged training losses (each already a mean over log_every steps)."""
    history = json.loads((run / "train_log.json").read_text())["history"]
    return float(np.mean([h["loss"] for h in history[-tail:]]))


def interpolant_first_step(data: Path, dims: list[int], seed: int = 0, samples: int = 512) -> list[dict[str, float]]:
    """Appendix B's map from the shared x_0: exactness on the training labels and the generated first
    frame (fresh labels) against the held-out first frames: spread ratio and W2 of the mass."""
    file = TrajectoryFile(data)
    train = file.read("train", slice(None), slice(0, 2))
    test = file.read("test", slice(None), slice(0, 2))
    targets = train[:, 1].reshape(len(train), -1)
    truth_std = float(test[:, 1].std(axis=0).mean())
    out = []
    for d in dims:
        if d == 0:
            continue
        labels = training_labels(len(train), d, seed).numpy()
        interpolant = ExplicitInterpolant(targets, labels)
        fit = float(np.abs(interpolant(labels) - targets).max())
        fresh = np.random.default_rng(seed + 1).standard_normal((samples, d))
        generated = interpolant(fresh).reshape(samples, *train.shape[2:])
        out.append({
            "label_dim": d, "interpolates": interpolant.interpolates, "max_training_error": fit,
            "spread_ratio": float(generated.std(axis=0).mean()) / truth_std,
            "mass_w2_first_frame": wasserstein_1d(frame_mass(generated), frame_mass(test[:, 1])),
        })
    return out


def planned_runs(ws: Workspace, settings: dict[str, Any]) -> list[PlannedRun]:
    """One run per label dimension d and training seed, d by d in the order of settings["label_dims"]."""
    problem = settings["problem"]
    data = ws.data(problem, settings["data_preset"], **settings.get("data_shrink", {}))
    return [PlannedRun(problem, "sl", model_config(settings["base"], problem, data,
                                                   [*settings.get("train_overrides", []), f"model.label_dim={d}",
                                                    f"train.seed={seed}"]))
            for d in settings["label_dims"] for seed in _seeds(settings)]


def _seeds(settings: dict[str, Any]) -> list[int]:
    """Training seeds (labels, weights, batches) per d: a small model's wct moves with the seed."""
    return list(settings.get("seeds", [0]))


def run(ws: Workspace, settings: dict[str, Any], folder: Path) -> ExperimentResult:
    problem, dims, seeds = settings["problem"], list(settings["label_dims"]), _seeds(settings)
    data = ws.data(problem, settings["data_preset"], **settings.get("data_shrink", {}))
    rows = []
    for plan in planned_runs(ws, settings):
        d, seed = plan.config.model.label_dim, plan.config.train.seed
        run_dir = ws.run(*plan)
        samples = ws.samples(problem, "sl", run_dir, settings["trajectories"], settings.get("sample_seed", 1))
        report, _ = ws.evaluate(data, samples)
        fitted = training_set_loss(run_dir)
        rows.append({"label_dim": d, "seed": seed, "final_training_loss": final_loss(run_dir),
                     "training_set_loss": fitted["all_pairs"], "first_step_loss": fitted["first_step"],
                     "wct": report["wct"], "wct_relative": report["wct_relative"], "mass_w2": report["mass_w2"],
                     "final_std_ratio": report.get("final_std_ratio") or 0.0, "run": str(run_dir),
                     **field_ratios(ws.field_scores(data, samples))})
    means = [_mean_over_seeds([r for r in rows if r["label_dim"] == d]) for d in dims]
    interpolant = interpolant_first_step(data, dims)

    def per_seed(key: str) -> list[list[float]]:
        return [[r[key] for r in rows if r["seed"] == seed] for seed in seeds]

    save_xy_panels(folder / "label_dim.png", range(len(dims)), [
        ("loss on the training pairs (L2, residual units)", per_seed("training_set_loss"), True),
        ("... on the first-step pairs x_0 -> x_1", per_seed("first_step_loss"), True),
        ("wct (lower is better)", per_seed("wct"), False),
        ("final-frame spread / truth's", per_seed("final_std_ratio"), False),
        *([("sliced W2 of frames / truth-vs-truth floor", per_seed("sliced_w2_ratio"), False)]
          if all(r.get("sliced_w2_ratio") is not None for r in rows) else []),
    ], xlabel="label dimension d", xticklabels=[str(d) for d in dims])
    lines = [f"Each d trained with {len(seeds)} seed(s) ({', '.join(map(str, seeds))}); numbers are the mean over "
             "seeds, wct also per seed (names: docs/glossary.md). Losses: L2 in units of the residual scale. "
             "\"logged\": the training log's last entries (with input noise if any); \"training set\": the trained "
             "model on all its training pairs with "
             "their labels; \"first step\": on the pairs x_0 -> x_1 alone, where all inputs are equal and only the "
             "label separates the targets. Field scores: each the mean over time of its ratio to the same score "
             "between two halves of the truth (1 = as close as a second sample of the truth).", "",
             "| d | logged final loss | training-set loss | first-step loss | wct | wct per seed | wct_relative | "
             "mass_w2 | "
             "final spread / truth | " + " | ".join(f"{title} / floor" for _, title in FIELD_HEADLINES) + " |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {m['label_dim']} | {m['final_training_loss']:.4g} | {m['training_set_loss']:.4g} | "
              f"{m['first_step_loss']:.4g} | {m['wct']:.3g} | {' / '.join(f'{w:.3g}' for w in m['wct_per_seed'])} | "
              f"{m['wct_relative']:.2f} | {m['mass_w2']:.3g} | {m['final_std_ratio']:.2f} | "
              + " | ".join(_ratio(m.get(f"{name}_ratio")) for name, _ in FIELD_HEADLINES) + " |" for m in means]
    lines += ["", "Appendix B's explicit interpolant, first frame from the shared initial condition (no network):", "",
              "| d | interpolates (d >= M) | max error on training labels | spread / truth | W2 of mass |",
              "|---|---|---|---|---|"]
    lines += [f"| {r['label_dim']} | {'yes' if r['interpolates'] else 'no'} | {r['max_training_error']:.2g} | "
              f"{r['spread_ratio']:.2f} | {r['mass_w2_first_frame']:.3g} |" for r in interpolant]
    return ExperimentResult(table="\n".join(lines), numbers={"networks": rows, "mean_over_seeds": means,
                                                             "interpolant": interpolant},
                            figures=["label_dim.png"], findings=_findings({m["label_dim"]: m for m in means}))


def _mean_over_seeds(rows: list[dict[str, Any]]) -> dict[str, Any]:
    keys = ["final_training_loss", "training_set_loss", "first_step_loss", "wct", "wct_relative", "mass_w2",
            "final_std_ratio", *(f"{name}_ratio" for name, _ in FIELD_HEADLINES)]
    keys = [k for k in keys if all(r.get(k) is not None for r in rows)]
    return {"label_dim": rows[0]["label_dim"], "seeds": [r["seed"] for r in rows],
            "wct_per_seed": [r["wct"] for r in rows], **{k: float(np.mean([r[k] for r in rows])) for k in keys}}


def _ratio(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def _findings(by_d: dict[int, dict[str, Any]]) -> list[str]:
    findings = []
    if 0 in by_d and 64 in by_d:
        ratio = by_d[0]["training_set_loss"] / by_d[64]["training_set_loss"]
        first = by_d[0]["first_step_loss"] / by_d[64]["first_step_loss"]
        findings.append(f"training-set loss at d = 0 is {ratio:.1f}x that at d = 64 (the paper's Figure 4 shows ~10x); "
                        f"on the first-step pairs, {first:.1f}x.")
    high = [m for d, m in by_d.items() if d >= 16]
    for key, name in (("wct", "wct"), ("sliced_w2_ratio", "sliced W2 / floor")):
        if 0 not in by_d or not high or any(key not in m for m in (by_d[0], *high)):
            continue
        listed = ", ".join(f"{m[key]:.3g} (d = {m['label_dim']})" for m in high)
        worst = max(m[key] for m in high)
        verdict = (f"every one better than d = 0, the worst by {by_d[0][key] / worst:.2f}x" if worst < by_d[0][key]
                   else "not every one better than d = 0")
        findings.append(f"{name} (mean over seeds) at d = 0: {by_d[0][key]:.3g}; at d >= 16: {listed}: {verdict}.")
    return findings
