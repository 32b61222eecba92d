"""Figures of the HTML report (`stochlift.apps.report`), returned as PNG bytes for embedding as data URIs.

They are drawn like those of `stochlift.apps.plots` (one `Figure` on its own Agg canvas, no pyplot), with its
helpers; nothing here touches the file system.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from matplotlib.ticker import MaxNLocator
from numpy.typing import ArrayLike

from stochlift.apps.plots import _new_figure, _png_bytes
from stochlift.errors import StochliftError

__all__ = ["CurvePanel", "crossing_cdf_png", "metric_curves_png", "rank_histogram_png", "series_band_png",
           "training_curve_png"]

FLOOR_STYLE = {"color": "0.35", "linestyle": "--", "linewidth": 1.3}
COLLAPSED_STYLE = {"color": "tab:red", "linestyle": ":", "linewidth": 1.5}
FLOOR_LABEL = "truth vs truth (floor)"
COLLAPSED_LABEL = "collapsed ensemble (true mean)"


def _as_float(values: Sequence[float | None]) -> np.ndarray:
    """Values with None (an undefined score) as NaN, which matplotlib leaves as a gap."""
    return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)


def training_curve_png(history: Sequence[Mapping[str, float]]) -> bytes:
    """Training loss against step (log y when every loss is positive), learning rate on a second axis."""
    if not history:
        raise StochliftError("the training log has no entries to plot")
    steps = np.array([float(h["step"]) for h in history])
    loss = _as_float([h.get("loss") for h in history])
    fig = _new_figure(6.4, 3.6)
    ax = fig.subplots()
    ax.plot(steps, loss, marker="o" if len(steps) < 30 else None, markersize=3, label="loss (mean since last log)")
    finite = loss[np.isfinite(loss)]
    if finite.size and (finite > 0).all():
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel("loss")
    ax.grid(True, which="both", alpha=0.3)
    if all("lr" in h for h in history):
        lr_ax = ax.twinx()
        lr_ax.plot(steps, [float(h["lr"]) for h in history], color="tab:gray", linestyle="--", linewidth=1)
        lr_ax.set_ylabel("learning rate (dashed)", color="tab:gray")
        lr_ax.tick_params(axis="y", colors="tab:gray")
    ax.legend(loc="upper right")
    return _png_bytes(fig)


@dataclass
class CurvePanel:
    """One panel of per-time curves: label -> one value per frame (None: undefined at that time).

    `floor` is the same score between two halves of the truth (what sampling noise alone gives) and `collapsed`
    the score of an ensemble collapsed onto the true mean (what a model without spread gives): drawn dashed
    grey and dotted red, so the model's curve reads between "as good as the truth" and "no spread at all".
    """

    title: str
    series: dict[str, Sequence[float | None]]
    ylabel: str = ""
    reference: float | None = None  # a dotted horizontal line, e.g. 1 for a spread-skill ratio
    reference_label: str = ""
    notes: list[str] = field(default_factory=list)
    floor: Sequence[float | None] | None = None
    collapsed: Sequence[float | None] | None = None


def metric_curves_png(time: ArrayLike, panels: Sequence[CurvePanel], *, initial_frames: int = 0,
                      columns: int = 2, xlabel: str = "time") -> bytes:
    """Panels of per-time curves on a shared time axis; the given (not generated) frames are shaded.

    `time` gives one value per point of every series; `initial_frames` (> 0) shades the first ones as given.
    """
    t = np.asarray(time, dtype=np.float64)
    if not panels:
        raise StochliftError("no metric curves to plot")
    columns = max(1, min(columns, len(panels)))
    rows = math.ceil(len(panels) / columns)
    fig = _new_figure(4.2 * columns, 3.0 * rows)
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax, panel in zip(axes.flat, panels):
        for label, values in panel.series.items():
            y = _as_float(values)
            if y.shape != t.shape:
                raise StochliftError(f"{panel.title}: {label} has {y.size} values for {t.size} times")
            ax.plot(t, y, marker="o" if t.size <= 16 else None, markersize=3, label=label)
        for line, style, label in ((panel.floor, FLOOR_STYLE, FLOOR_LABEL),
                                   (panel.collapsed, COLLAPSED_STYLE, COLLAPSED_LABEL)):
            if line is not None:
                y = _as_float(line)
                if y.shape != t.shape:
                    raise StochliftError(f"{panel.title}: {label} has {y.size} values for {t.size} times")
                ax.plot(t, y, label=label, **style)
        if panel.reference is not None:
            ax.axhline(panel.reference, color="black", linestyle=":", linewidth=1,
                       label=panel.reference_label or None)
        if 0 < initial_frames < t.size:  # shade up to halfway to the first generated frame
            k = initial_frames
            ax.axvspan(t[0], (t[k - 1] + t[k]) / 2, color="0.85", alpha=0.6, lw=0)
        ax.set_title(panel.title, fontsize=10)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(panel.ylabel or panel.title)
        ax.grid(True, alpha=0.3)
    _legends(axes.flat[: len(panels)])
    return _png_bytes(fig)


def _legends(axes: Iterable[Any]) -> None:
    """A legend on the first panel, and on each later one only for lines not already explained."""
    explained: set[str] = set()
    for ax in axes:
        handles, labels = ax.get_legend_handles_labels()
        new = [(h, label) for h, label in zip(handles, labels) if label not in explained]
        if new and (not explained or len(labels) > 1):
            ax.legend(*zip(*new), fontsize=7)
        explained.update(labels)


def rank_histogram_png(counts: Sequence[int], *, title: str = "") -> bytes:
    """Rank histogram as relative frequency (flat = 1), with the flat line and its +-2 sigma band.

    For N ranks drawn uniformly from M + 1 bins each bin count is Binomial(N, 1/(M+1)), so the relative
    frequency (M+1) count / N has standard deviation sqrt(M / N). Neighbouring grid points and times are
    correlated, so the effective N is smaller and the band is optimistic (too narrow).
    """
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or c.size < 2 or c.sum() <= 0:
        raise StochliftError(f"a rank histogram needs >= 2 bins and a positive total, got {list(counts)}")
    bins, total = c.size, float(c.sum())
    members = bins - 1
    frequency = c * bins / total
    sigma = math.sqrt(members / total)
    fig = _new_figure(6.4, 3.6)
    ax = fig.subplots()
    ranks = np.arange(bins)
    ax.bar(ranks, frequency, width=0.9 if bins <= 40 else 1.0, color="tab:blue", alpha=0.8,
           label=f"truth's rank among {members} members")
    ax.axhspan(1 - 2 * sigma, 1 + 2 * sigma, color="tab:orange", alpha=0.25,
               label=f"flat +- 2 sigma (+- {2 * sigma:.2g})")
    ax.axhline(1.0, color="tab:orange", linewidth=1.5, label="flat (calibrated)")
    ax.set_xlim(-0.5, bins - 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylim(0, max(float(frequency.max()), 1 + 2 * sigma) * 1.1)
    ax.set_xlabel(f"rank (0..{members})")
    ax.set_ylabel("relative frequency (flat = 1)")
    ax.set_title(title or f"rank histogram ({int(total)} ranks)", fontsize=10)
    ax.legend(fontsize=8, loc="upper center")
    return _png_bytes(fig)


def crossing_cdf_png(reference: ArrayLike, generated: ArrayLike, time: ArrayLike, *, xlabel: str,
                     title: str = "") -> bytes:
    """Empirical CDFs of true and generated crossing times, on the physical time axis.

    Crossing times come normalised to [0, 1] (frame i -> i / (T - 1), 1 also meaning "never crossed") and are
    mapped onto the file's `time` [T]; the end of the horizon is marked, where the never-crossed pile up.
    """
    t = np.asarray(time, dtype=np.float64)
    fig = _new_figure(6.4, 4.0)
    ax = fig.subplots()
    frames = np.arange(t.size, dtype=np.float64)
    for label, values in (("true", reference), ("generated", generated)):
        tau = np.asarray(values, dtype=np.float64)
        if tau.ndim != 1 or tau.size == 0 or not np.isfinite(tau).all():
            raise StochliftError(f"{label} crossing times must be a non-empty finite 1-D array")
        ax.ecdf(np.interp(tau * (t.size - 1), frames, t), label=f"{label} (n = {tau.size})")
    ax.axvline(t[-1], color="0.5", linestyle=":", linewidth=1, label="end of horizon (never crossed)")
    ax.set_xlim(t[0], t[-1] + 0.02 * (t[-1] - t[0]))
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("share of trajectories crossed")
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return _png_bytes(fig)


def series_band_png(reference: ArrayLike, generated: ArrayLike, time: ArrayLike, *, ylabel: str) -> bytes:
    """A quantity [n, T] of every trajectory: ensemble mean and 5-95% band over physical time, true vs generated."""
    t = np.asarray(time, dtype=np.float64)
    fig = _new_figure(6.4, 4.0)
    ax = fig.subplots()
    for label, values in (("true", reference), ("generated", generated)):
        v = np.asarray(values, dtype=np.float64)
        if v.ndim != 2 or v.shape[1] != t.size:
            raise StochliftError(f"{label} values must be [n, {t.size}], got {v.shape}")
        low, high = np.percentile(v, [5, 95], axis=0)
        (line,) = ax.plot(t, v.mean(axis=0), label=f"{label} mean (n = {v.shape[0]})")
        ax.fill_between(t, low, high, color=line.get_color(), alpha=0.25, label=f"{label} 5-95%")
    ax.set_xlabel("time")
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _png_bytes(fig)
