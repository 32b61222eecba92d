"""Proposition 2: the minimal Lipschitz constant of any interpolant of the labelled data (Eq. 5),

    L(D_xi) = max_{t, i != j} |x_{t+1}^i - x_{t+1}^j| / sqrt(|x_t^i - x_t^j|^2 + |xi_t^i - xi_t^j|^2),

falls as the label dimension d grows. Without labels (d = 0) it is infinite on data that start from one
initial condition: equal x_0 with different x_1 is the one-to-many map no function can fit.
Computed on the training trajectories with the labels a training run would draw (labels.training_labels),
as the data are stored, and in the normalised setting of Proposition 2 (unit-norm frames and labels).
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stochlift.apps.experiments import ExperimentResult
from stochlift.apps.experiments.workspace import Workspace
from stochlift.apps.plots.experiments import save_xy_panels
from stochlift.data.trajectories import TrajectoryFile
from stochlift.lifting.labels import training_labels


def minimal_lipschitz(trajectories: np.ndarray, labels: np.ndarray | None) -> tuple[float, int]:
    """(L(D_xi), the time t of the maximising pair) for trajectories [M, T, ...] and labels [M, T-1, d]."""
    x = torch.from_numpy(trajectories.reshape(*trajectories.shape[:2], -1).astype(np.float64))
    best, best_t = 0.0, 0
    for t in range(x.shape[1] - 1):
        now = torch.cdist(x[:, t], x[:, t]) ** 2
        if labels is not None:
            xi = torch.from_numpy(labels[:, t].astype(np.float64))
            now = now + torch.cdist(xi, xi) ** 2
        nxt = torch.cdist(x[:, t + 1], x[:, t + 1])
        off = ~torch.eye(len(x), dtype=torch.bool)
        ratio = (nxt[off] / now[off].sqrt()).nan_to_num(nan=0.0, posinf=math.inf)  # 0/0: no constraint
        value = float(ratio.max())
        if value > best:
            best, best_t = value, t
    return best, best_t


def run(ws: Workspace, settings: dict[str, Any], folder: Path) -> ExperimentResult:
    dims, seeds = list(settings["label_dims"]), list(settings.get("seeds", [0, 1, 2]))
    numbers, figures, findings = {}, [], []
    for problem in settings["problems"]:
        data = ws.data(problem, settings["data_preset"], **settings.get("data_shrink", {}))
        train = TrajectoryFile(data).read("train", slice(None))
        m, frames = train.shape[:2]
        unit = train / np.linalg.norm(train.reshape(m, frames, -1), axis=2).max()  # all frames in the unit ball
        rows = []
        for d in dims:
            raw, normalised = [], []
            for seed in seeds if d else [0]:
                labels = training_labels(m * (frames - 1), d, seed).numpy().reshape(m, frames - 1, d) if d else None
                raw.append(minimal_lipschitz(train, labels)[0])
                sphere = None if labels is None else labels / np.linalg.norm(labels, axis=2, keepdims=True)
                normalised.append(minimal_lipschitz(unit, sphere)[0])
            rows.append({"label_dim": d, "L": float(np.mean(raw)), "L_spread": float(np.ptp(raw)) if d else 0.0,
                         "L_normalised": float(np.mean(normalised)), "seeds": len(raw)})
        numbers[problem] = rows
        finite = [r for r in rows if np.isfinite(r["L"])]
        save_xy_panels(folder / f"lipschitz_{problem}.png", [r["label_dim"] for r in finite], [
            ("L(D_xi), data as stored, xi ~ N(0, I_d)", [r["L"] for r in finite], True),
            ("L(D_xi), unit-norm frames and labels", [r["L_normalised"] for r in finite], True),
        ], xlabel="label dimension d")
        figures.append(f"lipschitz_{problem}.png")
        falls = all(a["L"] >= b["L"] for a, b in itertools.pairwise(finite))
        first = "infinite" if not np.isfinite(rows[0]["L"]) else f"{rows[0]['L']:.3g}"
        findings.append(f"{problem}: L(D_xi) is {first} "
                        f"at d = {rows[0]['label_dim']} and falls from {finite[0]['L']:.3g} "
                        f"(d = {finite[0]['label_dim']}) to {finite[-1]['L']:.3g} (d = {finite[-1]['label_dim']}); "
                        f"monotone in d: {'yes' if falls else 'no'}.")
    lines = [f"Means over {len(seeds)} label draws (d > 0).", "",
             "| problem | d | L(D_xi) | spread over draws | L, normalised |", "|---|---|---|---|---|"]
    for problem, rows in numbers.items():
        lines += [f"| {problem} | {r['label_dim']} | {r['L']:.4g} | {r['L_spread']:.2g} | {r['L_normalised']:.4g} |"
                  for r in rows]
    return ExperimentResult(table="\n".join(lines), numbers=numbers, figures=figures, findings=findings)
