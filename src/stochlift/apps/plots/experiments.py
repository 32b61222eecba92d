"""Figures of the experiment runner (stochlift.apps.experiments): Table 1 curves, rollout grids, histograms,
label-dimension and Lipschitz curves. Same conventions as stochlift.apps.plots (Agg figures, atomic files)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from stochlift.apps.plots import PathLike, _image_grid, _new_figure, _save_png
from stochlift.problems import get_problem


def save_field_grid(path: PathLike, problem: str, rows: Sequence[tuple[str, np.ndarray]],
                    column_titles: Sequence[str], reference: np.ndarray | None = None) -> None:
    """Rows of fields [k, H, W] (one labelled row per entry), a shared colour scale from `reference`
    (default: the first row) chosen as the problem is usually shown."""
    reference = rows[0][1] if reference is None else reference
    display = get_problem(problem).display(np.asarray(reference)[None])
    if "value_range" in display:
        low, high = display["value_range"]
    else:
        high = display.get("vmax") or float(np.abs(reference).max()) or 1.0
        low = -high
    cols = len(column_titles)
    fig = _new_figure(1.4 * cols + 1.6, 1.4 * len(rows) + 0.5)
    axes = _image_grid(fig, len(rows), cols)
    image = None
    for r, (label, fields) in enumerate(rows):
        axes[r, 0].set_ylabel(label, fontsize=8)
        for c in range(cols):
            image = axes[r, c].imshow(fields[c], cmap=display["cmap"], vmin=low, vmax=high, interpolation="nearest")
    for c, title in enumerate(column_titles):
        axes[0, c].set_title(title, fontsize=8)
    assert image is not None  # _image_grid made at least one row and one column (else it raised)
    fig.colorbar(image, ax=axes, shrink=0.6)
    _save_png(fig, path)


def save_rollout_rows(path: PathLike, problem: str, rows: Sequence[tuple[str, np.ndarray]],
                      frames: Sequence[int] | None = None) -> None:
    """One trajectory [T, H, W] per row (truth first), the same frames in every column."""
    n_frames = rows[0][1].shape[0]
    picks = list(frames) if frames else sorted(set(np.linspace(0, n_frames - 1, 6).round().astype(int).tolist()))
    save_field_grid(path, problem, [(label, traj[picks]) for label, traj in rows], [f"t = {i}" for i in picks],
                    reference=rows[0][1][n_frames // 8 :])


def save_crossing_histograms(path: PathLike, tau_reference: np.ndarray,
                             generated: Sequence[tuple[str, np.ndarray, float]], bins: int = 20) -> None:
    """One panel per model: its crossing-time histogram over the truth's, wct in the title."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    fig = _new_figure(2.6 * len(generated), 2.6)
    axes = np.atleast_1d(fig.subplots(1, len(generated), sharey=True))
    for ax, (label, tau, wct) in zip(axes, generated):
        ax.hist(tau_reference, bins=edges, density=True, alpha=0.5, label="truth")
        ax.hist(tau, bins=edges, density=True, alpha=0.5, label=label)
        ax.set_title(f"{label}: wct {wct:.3g}", fontsize=9)
        ax.set_xlabel("crossing time")
    axes[0].set_ylabel("density")
    axes[0].legend(fontsize=7)
    _save_png(fig, path)


def save_table1_plot(path: PathLike, results: dict[str, list[dict[str, Any]]]) -> None:
    """wct and mass_w2 (the paper's WCT and WIM) against network calls per frame: the ARDM curve and SL's single
    point (S = 1)."""
    problems = list(results)
    fig = _new_figure(4.2 * 2, 3.0 * len(problems))
    axes = np.atleast_2d(fig.subplots(len(problems), 2, squeeze=False))
    for row, problem in zip(axes, problems):
        rows = results[problem]
        ardm = [r for r in rows if r["model"] != "SL"]
        sl = next(r for r in rows if r["model"] == "SL")
        for ax, key in zip(row, ("wct", "mass_w2")):
            ax.plot([r["network_calls_per_frame"] for r in ardm], [r[key] for r in ardm], "o-", label="ARDM")
            ax.plot([1], [sl[key]], "s", color="C3", markersize=8, label="SL (S = 1)")
            ax.axhline(sl[key], color="C3", linestyle="--", linewidth=0.8)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("network calls per frame")
            ax.set_title(f"{problem}: {key} (lower is better)", fontsize=9)
            ax.legend(fontsize=7)
    _save_png(fig, path)


def save_xy_panels(path: PathLike, x: Sequence[float], panels: Sequence[tuple[str, ArrayLike, bool]],
                   xlabel: str, xticklabels: Sequence[str] | None = None) -> None:
    """Side-by-side line plots of several quantities against one x (log y where asked). A panel's values
    may be [repeats, len(x)] (one row per seed, say): the line is then their mean, each repeat a dot."""
    fig = _new_figure(4.0 * len(panels), 3.2)
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (title, values, log_y) in zip(axes, panels):
        values = np.asarray(values, dtype=float)
        if values.ndim == 2:
            for repeat in values:
                ax.plot(x, repeat, ".", color="0.6")
            values = values.mean(axis=0)
        ax.plot(x, values, "o-")
        if log_y:
            ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel)
        if xticklabels is not None:
            ax.set_xticks(list(x), list(xticklabels))
    _save_png(fig, path)


def save_ratio_histogram(path: PathLike, ratios: Sequence[tuple[str, np.ndarray]], title: str) -> None:
    """Overlaid histograms of nearest-neighbour distance ratios (1 = as new as a fresh sample, 0 = a copy)."""
    upper = max(2.0, max(float(np.quantile(r, 0.99)) for _, r in ratios))
    edges = np.linspace(0.0, upper, 30)
    fig = _new_figure(5.6, 3.6)
    ax = fig.subplots()
    for label, values in ratios:
        # matplotlib's stubs type bins as Sequence[float]; hist takes an array of edges (as np.histogram does)
        ax.hist(values, bins=edges, alpha=0.5, density=True,  # type: ignore[arg-type]
                label=f"{label} (median {np.median(values):.2f})")
    ax.axvline(1.0, color="k", linewidth=0.8, linestyle="--")
    ax.set_xlabel("distance to nearest training sample / its own nearest-neighbour distance")
    ax.set_ylabel("density")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    _save_png(fig, path)
