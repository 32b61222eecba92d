"""Pictures of fields and their ensemble statistics, for any state: 2-D fields, 1-D fields and vectors.

A scientist judges a generated ensemble first by where it puts its mean and its spread and by how much
structure it has at each scale; these figures show exactly that, true beside generated, on shared colour
scales. 2-D fields [C, H, W] are drawn as maps, 1-D fields [C, X] as space-time images (x across, time
up), vectors [C] as time series per variable; only the first channel of a field is drawn (the caption
names it). Every function returns PNG bytes (for data URIs) and draws on its own Agg canvas.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, cast

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter
from numpy.typing import ArrayLike

from stochlift.apps.plots import ROW_LABELS, _color_limits, _image_grid, _new_figure, _png_bytes
from stochlift.errors import StochliftError

__all__ = [
    "moment_maps_png",
    "rollout_lines_png",
    "snapshots_png",
    "spacetime_moments_png",
    "spacetime_reveal_frames",
    "spacetime_rollouts_png",
    "spectrum_png",
    "state_kind",
    "time_label",
    "vector_moments_png",
]

MAX_VARIABLES = 8  # vector panels drawn at most (the caption says when more exist)
STD_CMAP = "magma"
STATIC_CMAP = "viridis"


def state_kind(state_shape: Sequence[int]) -> str:
    """"vector" for [C], "line" for a 1-D field [C, X], "plane" for a 2-D field [C, H, W], else "other"."""
    return {1: "vector", 2: "line", 3: "plane"}.get(len(state_shape), "other")


def time_label(t: float) -> str:
    return f"t = {float(t):.3g}"


def _limits(reference: np.ndarray, display: Mapping[str, Any]) -> tuple[str, float, float]:
    """(cmap, low, high) of a problem's display (stochlift.problems.Problem.display) for values like `reference`."""
    low, high = _color_limits(reference, display.get("vmax"), display.get("value_range"))
    return display.get("cmap", "RdBu_r"), low, high


def _mean_display(means: np.ndarray, display: Mapping[str, Any]) -> tuple[str, float, float]:
    """A mean field's colour scale: the problem's fixed range if it has one (saturations, pixels), else symmetric
    about 0 at the largest |mean| (a mean is much flatter than single rollouts, so their scale would wash it out)."""
    if display.get("value_range") is not None:
        return _limits(means, display)
    return _limits(means, {"cmap": display.get("cmap", "RdBu_r")})


def _std_limit(stds: np.ndarray) -> float:
    return float(np.max(stds)) or 1.0


def _ensure_same(name: str, *arrays: np.ndarray) -> None:
    if len({a.shape for a in arrays}) != 1:
        raise StochliftError(f"{name}: arrays of different shapes {[a.shape for a in arrays]}")


# ------------------------------------------------------------------------------------------ 2-D fields


def moment_maps_png(true_mean: ArrayLike, generated_mean: ArrayLike, true_std: ArrayLike, generated_std: ArrayLike,
                    times: np.ndarray | Sequence[float], *, display: Mapping[str, Any]) -> bytes:
    """Per-point mean and std maps [F, H, W] at F times: rows true mean, generated mean, true std, generated std.

    Means share one colour scale, stds another (0 to the largest std shown), so a column compares like with like.
    """
    arrays = [np.asarray(a, dtype=np.float64) for a in (true_mean, generated_mean, true_std, generated_std)]
    _ensure_same("moment maps", *arrays)
    if arrays[0].ndim != 3 or len(times) != arrays[0].shape[0]:
        raise StochliftError(f"moment maps need [F, H, W] arrays and F times, got {arrays[0].shape}, {len(times)}")
    columns = len(times)
    fig = _new_figure(1.9 * columns + 1.8, 1.9 * 4 + 0.5, layout="compressed")
    axes = _image_grid(fig, 4, columns)
    cmap, low, high = _mean_display(np.concatenate(arrays[:2]), display)
    std_high = _std_limit(np.concatenate(arrays[2:]))
    rows = (("true mean", arrays[0], cmap, low, high), ("generated mean", arrays[1], cmap, low, high),
            ("true std", arrays[2], STD_CMAP, 0.0, std_high), ("generated std", arrays[3], STD_CMAP, 0.0, std_high))
    images = []
    for r, (label, data, row_cmap, vmin, vmax) in enumerate(rows):
        axes[r, 0].set_ylabel(label)
        for c in range(columns):
            images.append(axes[r, c].imshow(data[c], cmap=row_cmap, vmin=vmin, vmax=vmax, interpolation="nearest"))
    for c, t in enumerate(times):
        axes[0, c].set_title(time_label(t))
    fig.colorbar(images[0], ax=axes[:2, :], shrink=0.85, label="mean")
    fig.colorbar(images[-1], ax=axes[2:, :], shrink=0.85, label="std")
    return _png_bytes(fig)


def _show_rgb(frame: np.ndarray) -> np.ndarray:
    """A frame [H, W], or channels-first video [1, H, W] (gray) or [3, H, W] (RGB), as imshow takes it."""
    if frame.ndim == 2:
        return frame
    return frame[0] if frame.shape[0] == 1 else np.clip(np.moveaxis(frame, 0, -1), 0.0, 1.0)


def snapshots_png(true: ArrayLike | None, generated: ArrayLike | None, frames: Sequence[int],
                  times: np.ndarray | Sequence[float], *, display: Mapping[str, Any],
                  static: ArrayLike | None = None, static_name: str = "") -> bytes:
    """Trajectories [k, T, H, W] (or RGB [k, T, 3, H, W]) at `frames`: k true rows, then k generated rows.

    `static` [k, H, W]: the true trajectories' hidden static fields (Wave's speed c(x), Flow's log-permeability),
    drawn in a first column with its own colour bar; the generated rows leave it empty (the model never sees it).
    Either side may be None (an export of one file).
    """
    blocks = [(label, np.asarray(a, dtype=np.float64)) for label, a in zip(ROW_LABELS, (true, generated))
              if a is not None]
    if not blocks:
        raise StochliftError("snapshots need true or generated trajectories")
    if len(frames) == 0:
        raise StochliftError("snapshots need at least one frame")
    if static is not None and true is None:
        raise StochliftError("a static field is drawn beside the true trajectories: pass them too")
    k = blocks[0][1].shape[0]
    rgb = blocks[0][1].ndim == 5
    static_arr = None if static is None else np.asarray(static, dtype=np.float64)
    extra = 1 if static_arr is not None else 0
    rows, columns = k * len(blocks), len(frames) + extra
    fig = _new_figure(1.7 * columns + 2.0, 1.7 * rows + 0.6, layout="compressed")
    axes = _image_grid(fig, rows, columns)
    cmap, low, high = _limits(blocks[0][1], display) if not rgb else ("gray", 0.0, 1.0)
    field_image = static_image = None
    for b, (label, data) in enumerate(blocks):
        for j in range(k):
            row = b * k + j
            axes[row, 0].set_ylabel(f"{label} {j}")
            for c, i in enumerate(frames):
                field_image = axes[row, c + extra].imshow(_show_rgb(data[j, i]), cmap=cmap, vmin=low, vmax=high,
                                                          interpolation="nearest")
            if static_arr is not None:
                if label == ROW_LABELS[0]:
                    static_image = axes[row, 0].imshow(static_arr[j], cmap=STATIC_CMAP, interpolation="nearest")
                else:
                    axes[row, 0].set_frame_on(False)
                    axes[row, 0].text(0.5, 0.5, "hidden from\nthe model", ha="center", va="center", fontsize=8,
                                      color="0.4", transform=axes[row, 0].transAxes)
    if static_arr is not None:
        axes[0, 0].set_title(static_name or "static field")
        assert static_image is not None  # drawn in the true rows, which there are (checked above)
        fig.colorbar(static_image, ax=axes[:, 0], location="left", shrink=0.5, pad=0.08, label=static_name)
    for c, t in enumerate(times):
        axes[0, c + extra].set_title(time_label(t))
    if not rgb:
        assert field_image is not None  # at least one row and one frame (checked above)
        fig.colorbar(field_image, ax=axes[:, extra:], shrink=0.5)
    return _png_bytes(fig)


# ------------------------------------------------------------------------------------------ 1-D fields


def _spacetime(ax: Any, data: np.ndarray, time: np.ndarray, x: ArrayLike | None, **style: Any) -> Any:
    """A [T, X] field as an image, x across and time up, on its physical axes."""
    x = np.arange(data.shape[1], dtype=np.float64) if x is None else np.asarray(x, dtype=np.float64)
    extent = (float(x[0]), float(x[-1]), float(time[0]), float(time[-1]))
    return ax.imshow(data, origin="lower", aspect="auto", extent=extent, interpolation="nearest", **style)


def spacetime_moments_png(true_mean: ArrayLike, generated_mean: ArrayLike, true_std: ArrayLike,
                          generated_std: ArrayLike, time: ArrayLike, x: ArrayLike | None, *,
                          display: Mapping[str, Any]) -> bytes:
    """Per-point mean and std of a 1-D field [T, X] as space-time images, true vs generated (2 x 2 panels)."""
    arrays = [np.asarray(a, dtype=np.float64) for a in (true_mean, generated_mean, true_std, generated_std)]
    _ensure_same("space-time moments", *arrays)
    t = np.asarray(time, dtype=np.float64)
    fig = _new_figure(10.0, 5.8)
    axes = fig.subplots(2, 2, squeeze=False)
    cmap, low, high = _mean_display(np.concatenate(arrays[:2]), display)
    std_high = _std_limit(np.concatenate(arrays[2:]))
    panels = (("true mean", arrays[0], cmap, low, high), ("generated mean", arrays[1], cmap, low, high),
              ("true std", arrays[2], STD_CMAP, 0.0, std_high), ("generated std", arrays[3], STD_CMAP, 0.0, std_high))
    images = []
    for ax, (title, data, panel_cmap, vmin, vmax) in zip(axes.flat, panels):
        images.append(_spacetime(ax, data, t, x, cmap=panel_cmap, vmin=vmin, vmax=vmax))
        ax.set_title(title)
        ax.set_xlabel("x")
        ax.set_ylabel("time")
    fig.colorbar(images[0], ax=axes[0, :], label="mean")
    fig.colorbar(images[2], ax=axes[1, :], label="std")
    return _png_bytes(fig)


def _spacetime_figure(true: ArrayLike | None, generated: ArrayLike | None, time: ArrayLike, x: ArrayLike | None,
                      display: Mapping[str, Any], static: ArrayLike | None,
                      static_name: str) -> tuple[Figure, list[tuple[Any, np.ndarray]]]:
    """The figure of `spacetime_rollouts_png` and its (image, [T, X] data) pairs."""
    blocks = [(label, np.asarray(a, dtype=np.float64)) for label, a in zip(ROW_LABELS, (true, generated))
              if a is not None]
    if not blocks:
        raise StochliftError("space-time rollouts need true or generated trajectories")
    t = np.asarray(time, dtype=np.float64)
    k = blocks[0][1].shape[0]
    cmap, low, high = _limits(blocks[0][1], display)
    extra = 1 if static is not None else 0
    fig = _new_figure(2.6 * k + 1.4, 2.6 * len(blocks) + 1.6 * extra + 0.4)
    axes = fig.subplots(len(blocks) + extra, k, squeeze=False)
    if static is not None:
        for j, ax in enumerate(axes[0]):
            _static_curve(ax, np.asarray(static, dtype=np.float64)[j], x, static_name if j == 0 else "")
            ax.set_title(f"true {j}: {static_name}", fontsize=9)
    images = []
    for b, (label, data) in enumerate(blocks):
        for j in range(k):
            ax = axes[b + extra, j]
            images.append((_spacetime(ax, data[j], t, x, cmap=cmap, vmin=low, vmax=high), data[j]))
            ax.set_title(f"{label} {j}", fontsize=9)
            ax.set_xlabel("x")
            if j == 0:
                ax.set_ylabel("time")
    fig.colorbar(images[-1][0], ax=axes[extra:, :], shrink=0.8)
    return fig, images


def spacetime_rollouts_png(true: ArrayLike | None, generated: ArrayLike | None, time: ArrayLike, x: ArrayLike | None,
                           *, display: Mapping[str, Any], static: ArrayLike | None = None,
                           static_name: str = "") -> bytes:
    """Trajectories of a 1-D field [k, T, X] as space-time images: a row of k true, a row of k generated.

    `static` [k, X]: the true trajectories' hidden static fields, drawn as curves in an extra first row.
    """
    fig, _ = _spacetime_figure(true, generated, time, x, display, static, static_name)
    return _png_bytes(fig)


def spacetime_reveal_frames(true: ArrayLike | None, generated: ArrayLike | None, time: ArrayLike,
                            x: ArrayLike | None, *, display: Mapping[str, Any]) -> Iterator[np.ndarray]:
    """RGB frames [H, W, 3] uint8 of `spacetime_rollouts_png` filled in up to each time in turn (for a video).

    The figure is laid out once; each frame redraws only the images (blitting).
    """
    fig, images = _spacetime_figure(true, generated, time, x, display, None, "")
    fig.canvas.draw()
    fig.set_layout_engine("none")  # freeze the layout so nothing moves between frames
    for image, _ in images:
        image.set_animated(True)
    fig.canvas.draw()
    canvas = cast(FigureCanvasAgg, fig.canvas)  # the figure's own Agg canvas (see new_figure)
    background = canvas.copy_from_bbox(fig.bbox)
    n_frames = images[0][1].shape[0]
    for t in range(n_frames):
        canvas.restore_region(background)
        for image, data in images:
            shown = data.copy()
            shown[t + 1 :] = np.nan
            image.set_data(shown)
            fig.draw_artist(image)
        yield np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _static_curve(ax: Any, values: np.ndarray, x: ArrayLike | None, label: str) -> None:
    xs = np.arange(values.shape[-1]) if x is None else np.asarray(x, dtype=np.float64)
    ax.plot(xs, values.reshape(-1, values.shape[-1]).T, color="tab:green")
    ax.set_xlabel("x")
    ax.set_ylabel(label)
    ax.grid(True, alpha=0.3)


# --------------------------------------------------------------------------------------------- vectors


def _variable_axes(fig: Figure, n: int) -> np.ndarray:
    shown = min(n, MAX_VARIABLES)
    columns = min(shown, 4)
    rows = -(-shown // columns)
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax in axes.flat[shown:]:
        ax.set_visible(False)
    return axes.flat[:shown]


def _variable_figure(n: int) -> Figure:
    shown = min(n, MAX_VARIABLES)
    columns = min(shown, 4)
    return _new_figure(3.4 * columns + 0.6, 2.8 * -(-shown // columns) + 0.4)


def vector_moments_png(true_mean: ArrayLike, generated_mean: ArrayLike, true_std: ArrayLike, generated_std: ArrayLike,
                       time: ArrayLike, names: Sequence[str]) -> bytes:
    """Per variable of a vector state [T, C]: the ensemble mean +- one std over time, true vs generated."""
    arrays = [np.asarray(a, dtype=np.float64) for a in (true_mean, generated_mean, true_std, generated_std)]
    _ensure_same("vector moments", *arrays)
    t = np.asarray(time, dtype=np.float64)
    fig = _variable_figure(arrays[0].shape[1])
    for c, ax in enumerate(_variable_axes(fig, arrays[0].shape[1])):
        for (label, mean, std), style in zip(((ROW_LABELS[0], arrays[0], arrays[2]),
                                              (ROW_LABELS[1], arrays[1], arrays[3])), ("-", "--")):
            (line,) = ax.plot(t, mean[:, c], linestyle=style, label=f"{label} mean")
            ax.fill_between(t, mean[:, c] - std[:, c], mean[:, c] + std[:, c], color=line.get_color(), alpha=0.2,
                            label=f"{label} +- 1 std")
        _label_variable_axis(ax, c, names)
    return _png_bytes(fig)


def _label_variable_axis(ax: Any, c: int, names: Sequence[str]) -> None:
    """Title, axis labels and grid of variable c's panel over time; the legend on the first panel only."""
    ax.set_title(names[c] if c < len(names) else f"variable {c}", fontsize=10)
    ax.set_xlabel("time")
    ax.set_ylabel("value")
    ax.grid(True, alpha=0.3)
    if c == 0:
        ax.legend(fontsize=8)


def rollout_lines_png(true: ArrayLike | None, generated: ArrayLike | None, time: ArrayLike,
                      names: Sequence[str]) -> bytes:
    """Per variable of a vector state: k true (solid) and k generated (dashed) trajectories [k, T, C] over time."""
    blocks = [(label, np.asarray(a, dtype=np.float64)) for label, a in zip(ROW_LABELS, (true, generated))
              if a is not None]
    if not blocks:
        raise StochliftError("rollout lines need true or generated trajectories")
    t = np.asarray(time, dtype=np.float64)
    n = blocks[0][1].shape[2]
    fig = _variable_figure(n)
    for c, ax in enumerate(_variable_axes(fig, n)):
        for (label, data), (style, color) in zip(blocks, (("-", "tab:blue"), ("--", "tab:orange"))):
            for j, trajectory in enumerate(data):
                ax.plot(t, trajectory[:, c], linestyle=style, color=color, alpha=0.75, linewidth=1,
                        label=f"{label} (k = {len(data)})" if j == 0 else None)
        _label_variable_axis(ax, c, names)
    return _png_bytes(fig)


# -------------------------------------------------------------------------------------------- spectra


def spectrum_png(true: ArrayLike, generated: ArrayLike, times: np.ndarray | Sequence[float]) -> bytes:
    """Radially averaged power spectra [F, K] (ensemble mean, shells 1..K) at F times: true solid, generated dashed."""
    ref, gen = np.asarray(true, dtype=np.float64), np.asarray(generated, dtype=np.float64)
    _ensure_same("spectra", ref, gen)
    if ref.ndim != 2 or ref.shape[0] != len(times):
        raise StochliftError(f"spectra must be [F, K] for F = {len(times)} times, got {ref.shape}")
    shells = np.arange(1, ref.shape[1] + 1)
    fig = _new_figure(6.8, 4.2)
    ax = fig.subplots()
    colours = [f"C{i % 10}" for i in range(len(times))]
    positive = np.concatenate([ref[ref > 0], gen[gen > 0]])
    floor = float(positive.min()) if positive.size else 1e-12
    for i, (t, colour) in enumerate(zip(times, colours)):
        ax.plot(shells, np.maximum(ref[i], floor), color=colour, label=f"true, {time_label(t)}")
        ax.plot(shells, np.maximum(gen[i], floor), color=colour, linestyle="--", label=f"generated, {time_label(t)}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())  # shells 1, 2, 5, 10, ... rather than 10^0, 2 x 10^0
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xticks([k for k in (1, 2, 3, 5, 10, 20, 50, 100, 200, 500) if k <= len(shells)])
    ax.set_xlabel("wavenumber |k| (cycles per domain)")
    ax.set_ylabel("power (ensemble mean)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    return _png_bytes(fig)
