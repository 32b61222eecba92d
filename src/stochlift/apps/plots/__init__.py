"""Figures and animations comparing true and generated trajectories.

Figures are built with the object-oriented API (`Figure` + the Agg canvas) rather than pyplot: rendering
is headless whatever backend the caller's session uses, importing this module does not switch the global
backend, and no figure is registered with pyplot, so none can leak. Every file is written through
`atomic_path`, so a failed call leaves no partial file behind.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Literal, cast

import imageio.v3 as iio
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from stochlift.errors import StochliftError
from stochlift.io import atomic_path
from stochlift.optional import require

__all__ = [
    "save_crossing_time_plot",
    "save_mass_plot",
    "save_quantity_plot",
    "save_rollout_animation",
    "save_snapshot_grid",
]

PathLike = str | os.PathLike
ROW_LABELS = ("true", "generated")


# ---------------------------------------------------------------------------------------------- helpers


def _new_figure(width: float, height: float, dpi: int = 100,
                layout: Literal["constrained", "compressed", "tight"] = "constrained") -> Figure:
    """A figure with its own Agg canvas, independent of pyplot, laid out to avoid wasted margins.

    Grids of images (fixed aspect) take layout "compressed": "constrained" can push their row labels off the
    left edge when colour bars span some of the rows.
    """
    fig = Figure(figsize=(width, height), dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def _png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes (for embedding, e.g. in the HTML report)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _save_png(fig: Figure, path: PathLike) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(_png_bytes(fig))


def _finite_array(x: ArrayLike, name: str, ndim: int) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != ndim or arr.size == 0:
        raise StochliftError(f"{name} must be a non-empty {ndim}-D array, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise StochliftError(f"{name} contains NaN or Inf values")
    return arr


def _frames_array(x: ArrayLike, name: str) -> np.ndarray:
    """[k, T, H, W] (one channel), or [k, T, H, W, 3] from channels-first video [k, T, C, H, W] with C = 3
    (C = 1 gives [k, T, H, W])."""
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 5:
        if arr.shape[2] not in (1, 3):
            raise StochliftError(f"{name}: only 1 (gray) or 3 (RGB) channels can be shown, got shape {arr.shape}")
        arr = arr[:, :, 0] if arr.shape[2] == 1 else np.moveaxis(arr, 2, -1)
    return _finite_array(arr, name, ndim=5 if arr.ndim == 5 else 4)


def _check_pair(reference: ArrayLike, generated: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Both as [k, T, H, W] arrays of the same shape (one channel, k trajectories side by side), or as RGB
    [k, T, H, W, 3] when given channels-first [k, T, 3, H, W] video."""
    ref = _frames_array(reference, "reference")
    gen = _frames_array(generated, "generated")
    if ref.shape != gen.shape:
        raise StochliftError(
            f"reference and generated must have the same shape [k, T, H, W] or [k, T, C, H, W], got {ref.shape} "
            f"and {gen.shape}"
        )
    return ref, gen


def _shown(ref: np.ndarray, gen: np.ndarray, vmax: float | None, value_range: tuple[float, float] | None):
    """(reference, generated, colour limits, whether RGB): RGB frames are mapped from `value_range` (default
    [0, 1]) to [0, 1] and clipped, so they show as colours rather than through a colour map."""
    if ref.ndim == 4:
        return ref, gen, _color_limits(ref, vmax, value_range), False
    low, high = _color_limits(ref, None, value_range or (0.0, 1.0))
    return (*(np.clip((a - low) / (high - low), 0.0, 1.0) for a in (ref, gen)), (0.0, 1.0), True)


def _symmetric_vmax(reference: np.ndarray, vmax: float | None) -> float:
    """Colour limit for a scale symmetric about 0: max |reference| unless given (1.0 for an all-zero field)."""
    if vmax is None:
        return float(np.abs(reference).max()) or 1.0
    if not vmax > 0:
        raise StochliftError(f"vmax must be positive, got {vmax}")
    return float(vmax)


def _color_limits(reference: np.ndarray, vmax: float | None,
                  value_range: tuple[float, float] | None) -> tuple[float, float]:
    """(low, high) of the colour scale: a fixed range (e.g. (0, 1) for saturations) or symmetric about 0."""
    if value_range is None:
        limit = _symmetric_vmax(reference, vmax)
        return -limit, limit
    low, high = map(float, value_range)
    if not high > low:
        raise StochliftError(f"value_range must be (low, high) with low < high, got {value_range}")
    return low, high


def _frame_label(index: int, n_frames: int) -> str:
    return f"t = {index}/{n_frames - 1}"


def _image_grid(fig: Figure, n_rows: int, n_cols: int) -> np.ndarray:
    """A grid of axes without ticks, for showing fields."""
    axes = fig.subplots(n_rows, n_cols, squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return axes


# -------------------------------------------------------------------------------------------- animation


def _heading(title: str, index: int, n_frames: int, time: np.ndarray | None = None) -> str:
    if time is None:
        return f"{title}  {_frame_label(index, n_frames)}".strip()
    return f"{title}  t = {float(time[index]):.3g}  (frame {index}/{n_frames - 1})".strip()


def _even_size(fig: Figure, multiple: int = 16) -> None:
    """Round the figure's pixel size up to a multiple (H.264 wants sizes divisible by 16; ffmpeg would rescale)."""
    dpi = fig.dpi
    width, height = (int(np.ceil(v * dpi / multiple)) * multiple / dpi for v in fig.get_size_inches())
    fig.set_size_inches(width, height)


def _rollout_figure(
    rows: Sequence[tuple[str, np.ndarray]], title: str, cmap: str, limits: tuple[float, float], rgb: bool = False,
    time: np.ndarray | None = None, panel: float = 1.6, dpi: int = 80,
) -> tuple[Figure, list[tuple[Any, np.ndarray]], Any]:
    """The laid-out figure, its (image, trajectory) panels and its heading, showing frame 0.

    `rows` are (label, trajectories [k, T, H, W]) pairs, one row of k panels each of `panel` inches.
    """
    k, n_frames = rows[0][1].shape[:2]
    fig = _new_figure(panel * k + 1.2, panel * len(rows) + 0.8, dpi=dpi, layout="compressed")
    _even_size(fig)
    axes = _image_grid(fig, len(rows), k)
    panels = []
    for row, (label, data) in enumerate(rows):
        axes[row, 0].set_ylabel(label)
        for j in range(k):
            image = axes[row, j].imshow(data[j, 0], cmap=cmap, vmin=limits[0], vmax=limits[1], interpolation="nearest")
            panels.append((image, data[j]))
    if not rgb:
        fig.colorbar(panels[0][0], ax=axes, shrink=0.8)
    heading = fig.suptitle(_heading(title, n_frames - 1, n_frames, time))
    fig.canvas.draw()  # solves the layout with the widest heading
    fig.set_layout_engine("none")  # then freeze it, so panels do not jitter between frames
    return fig, panels, heading


def _render_rollout(
    rows: Sequence[tuple[str, np.ndarray]], title: str, cmap: str, limits: tuple[float, float], rgb: bool = False,
    time: np.ndarray | None = None, panel: float = 1.6, dpi: int = 80,
) -> Iterator[np.ndarray]:
    """RGB frames [H, W, 3] uint8 from one figure.

    Axes, labels and colour bar are drawn once into a background; each frame restores it and redraws
    only the images and the heading (blitting), several times faster than a full redraw.
    """
    fig, panels, heading = _rollout_figure(rows, title, cmap, limits, rgb, time, panel, dpi)
    animated = [image for image, _ in panels] + [heading]
    for artist in animated:
        artist.set_animated(True)
    fig.canvas.draw()  # the background, without the animated artists
    canvas = cast(FigureCanvasAgg, fig.canvas)  # the figure's own Agg canvas (see new_figure)
    background = canvas.copy_from_bbox(fig.bbox)
    n_frames = rows[0][1].shape[1]
    for i in range(n_frames):
        for image, trajectory in panels:
            image.set_data(trajectory[i])
        heading.set_text(_heading(title, i, n_frames, time))
        canvas.restore_region(background)
        for artist in animated:
            fig.draw_artist(artist)
        yield np.asarray(canvas.buffer_rgba())[..., :3].copy()


def _write_gif(tmp: Path, frames: Iterable[np.ndarray], fps: float) -> None:
    iio.imwrite(tmp, np.stack(list(frames)), extension=".gif", plugin="pillow", duration=1000 / fps, loop=0)


def _write_mp4(tmp: Path, frames: Iterable[np.ndarray], fps: float) -> None:
    import imageio_ffmpeg

    frames = iter(frames)
    first = next(frames)
    height, width = first.shape[:2]
    # "-f mp4": ffmpeg would otherwise pick the container from the ".tmp" suffix and fail.
    writer = imageio_ffmpeg.write_frames(str(tmp), (width, height), fps=fps, output_params=["-f", "mp4"])
    writer.send(None)
    try:
        writer.send(first)
        for frame in frames:
            writer.send(frame)
    finally:
        writer.close()


def _animation_writer(path: PathLike) -> Callable[[Path, Iterable[np.ndarray], float], None]:
    """Pick the writer from the suffix, before any rendering, so a bad path fails fast."""
    suffix = Path(path).suffix.lower()
    if suffix == ".gif":
        return _write_gif
    if suffix == ".mp4":
        require("imageio_ffmpeg", f"writing {path} (MP4; a .gif path needs nothing more)")
        return _write_mp4
    raise StochliftError(f"animation path must end with .gif or .mp4, got {path}")


def save_rollout_animation(
    path: PathLike,
    reference: ArrayLike | None,
    generated: ArrayLike,
    *,
    fps: float = 8,
    title: str = "",
    cmap: str = "RdBu_r",
    vmax: float | None = None,
    value_range: tuple[float, float] | None = None,
    time: ArrayLike | None = None,
    panel: float = 1.6,
    dpi: int = 80,
) -> None:
    """Animate k true (top row) and k generated (bottom row) trajectories [k, T, H, W] side by side.

    One shared colour scale symmetric about 0 (max |reference| unless `vmax` is given), so amplitude
    drift of the generated fields is visible rather than normalised away; `value_range` fixes it instead.
    Video [k, T, 3, H, W] shows as RGB images (values in `value_range`, default [0, 1]), without colour map.
    `reference` None animates the generated row alone. `time` [T] puts physical times in the heading (default:
    frame numbers); `panel` (inches per field) and `dpi` set the size.
    """
    if reference is None:
        gen = _frames_array(generated, "generated")
        ref = gen
    else:
        ref, gen = _check_pair(reference, generated)
    if not fps > 0:
        raise StochliftError(f"fps must be positive, got {fps}")
    times = None if time is None else np.asarray(time, dtype=np.float64)
    if times is not None and times.shape != (gen.shape[1],):
        raise StochliftError(f"time must give one value per frame ({gen.shape[1]}), got shape {times.shape}")
    write = _animation_writer(path)
    ref, gen, limits, rgb = _shown(ref, gen, vmax, value_range)
    rows = [(ROW_LABELS[1], gen)] if reference is None else [(ROW_LABELS[0], ref), (ROW_LABELS[1], gen)]
    frames = _render_rollout(rows, title, cmap, limits, rgb, times, panel, dpi)
    with atomic_path(path) as tmp:
        write(tmp, frames, fps)


# ----------------------------------------------------------------------------------------- still plots


def _format_score(metrics: dict[str, Any], key: str) -> str:
    value = metrics.get(key)
    return "n/a" if value is None else f"{value:.4g}"


def save_crossing_time_plot(
    path: PathLike,
    tau_reference: ArrayLike,
    tau_generated: ArrayLike,
    metrics: dict[str, Any] | None = None,
    bins: int = 20,
) -> None:
    """Overlaid density histograms of true and generated crossing times on shared bins over [0, 1].

    `metrics` (e.g. `PhysicsMetrics.to_dict()`) puts the scores in the title so the figure stands alone.
    """
    ref = _finite_array(tau_reference, "tau_reference", ndim=1)
    gen = _finite_array(tau_generated, "tau_generated", ndim=1)
    edges = np.linspace(0.0, 1.0, bins + 1)
    fig = _new_figure(6.4, 4.2)
    ax = fig.subplots()
    # matplotlib's stubs type bins as Sequence[float]; hist takes an array of edges (as np.histogram does)
    ax.hist(ref, bins=edges, density=True, alpha=0.5, label=f"true (n = {ref.size})")  # type: ignore[arg-type]
    ax.hist(gen, bins=edges, density=True, alpha=0.5,  # type: ignore[arg-type]
            label=f"generated (n = {gen.size})")
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("crossing time (normalised; 1 = never crossed)")
    ax.set_ylabel("density")
    ax.legend()
    if metrics:
        ax.set_title(
            f"wct = {_format_score(metrics, 'wct')}, wct_relative = {_format_score(metrics, 'wct_relative')}, "
            f"mass_w2 = {_format_score(metrics, 'mass_w2')}, "
            f"mass_w2_relative = {_format_score(metrics, 'mass_w2_relative')}",
            fontsize=9,
        )
    _save_png(fig, path)


def save_mass_plot(path: PathLike, mass_reference: ArrayLike, mass_generated: ArrayLike,
                   label: str = "mass (mean |u|)") -> None:
    """Ensemble mean and 5-95% band of the mass (or any quantity [n, T], named `label`) over normalised time,
    true vs generated."""
    ref = _finite_array(mass_reference, "mass_reference", ndim=2)
    gen = _finite_array(mass_generated, "mass_generated", ndim=2)
    if ref.shape[1] != gen.shape[1]:
        raise StochliftError(f"mass arrays must have the same number of frames, got {ref.shape} and {gen.shape}")
    time = np.linspace(0.0, 1.0, ref.shape[1])
    fig = _new_figure(6.4, 4.2)
    ax = fig.subplots()
    for label, values in zip(ROW_LABELS, (ref, gen)):
        low, high = np.percentile(values, [5, 95], axis=0)
        (line,) = ax.plot(time, values.mean(axis=0), label=f"{label} mean (n = {values.shape[0]})")
        ax.fill_between(time, low, high, color=line.get_color(), alpha=0.25, label=f"{label} 5-95%")
    ax.set_xlabel("normalised time")
    ax.set_ylabel(label)
    ax.legend()
    _save_png(fig, path)


def save_quantity_plot(path: PathLike, kind: str, reference: ArrayLike, generated: ArrayLike, *, label: str,
                       metrics: dict[str, Any] | None = None) -> None:
    """A problem's quantity of interest (stochlift.problems.QuantityView): kind "times" as crossing-time
    histograms (with the metrics in the title), kind "series" as mean and 5-95% band over time."""
    if kind == "times":
        save_crossing_time_plot(path, reference, generated, metrics)
    elif kind == "series":
        save_mass_plot(path, reference, generated, label)
    else:
        raise StochliftError(f"no picture for a quantity of kind {kind!r}; kinds: times, series")


def _frame_indices(frames: Sequence[int] | None, n_frames: int) -> list[int]:
    """Requested frame indices (negative ones count from the end); default: 4 evenly spaced incl. ends."""
    if frames is None:
        return sorted(set(np.linspace(0, n_frames - 1, min(n_frames, 4)).round().astype(int).tolist()))
    indices = [int(i) for i in frames]
    if not indices or any(not -n_frames <= i < n_frames for i in indices):
        raise StochliftError(f"frames must be non-empty indices in [-{n_frames}, {n_frames}), got {frames}")
    return [i % n_frames for i in indices]


def save_snapshot_grid(
    path: PathLike,
    reference: ArrayLike,
    generated: ArrayLike,
    frames: Sequence[int] | None = None,
    *,
    cmap: str = "RdBu_r",
    vmax: float | None = None,
    value_range: tuple[float, float] | None = None,
) -> None:
    """A still grid of trajectories [k, T, H, W] (or RGB video [k, T, 3, H, W]): k true rows, then k generated
    rows, one column per frame."""
    ref, gen = _check_pair(reference, generated)
    k, n_frames = ref.shape[:2]
    indices = _frame_indices(frames, n_frames)
    ref, gen, (low, high), rgb = _shown(ref, gen, vmax, value_range)
    fig = _new_figure(1.5 * len(indices) + 1.4, 1.5 * 2 * k + 0.6, layout="compressed")
    axes = _image_grid(fig, 2 * k, len(indices))
    image = None
    for block, data in enumerate((ref, gen)):
        for j in range(k):
            row = block * k + j
            axes[row, 0].set_ylabel(f"{ROW_LABELS[block]} {j}")
            for col, i in enumerate(indices):
                image = axes[row, col].imshow(data[j, i], cmap=cmap, vmin=low, vmax=high, interpolation="nearest")
    for col, i in enumerate(indices):
        axes[0, col].set_title(_frame_label(i, n_frames))
    if not rgb:
        assert image is not None  # _image_grid made at least one row and one column (else it raised)
        fig.colorbar(image, ax=axes, shrink=0.6)
    _save_png(fig, path)
