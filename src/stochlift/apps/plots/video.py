"""Pictures of video data: a pixel-exact grid animation of true vs generated videos, and pixel statistics.

`save_rollout_animation` (plots.py) draws videos through matplotlib, with titles; `save_video_grid` here
tiles the frames themselves (nearest-neighbour upscaled, one thin border between videos), which is fast
enough for 500-frame rollouts and shows exactly the generated pixels. Gray videos are shown gray and RGB
videos as RGB, never through a colour map.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import overload

import numpy as np
from numpy.typing import ArrayLike

from stochlift.apps.plots import ROW_LABELS, _animation_writer, _new_figure, _save_png
from stochlift.errors import StochliftError
from stochlift.io import atomic_path

GAP = 2  # pixels between videos (before upscaling)
BORDER = 0.25  # grey level of the borders, and of true frames past the end of the true videos


@overload
def _videos(x: None, name: str) -> None: ...


@overload
def _videos(x: ArrayLike, name: str) -> np.ndarray: ...


def _videos(x: ArrayLike | None, name: str) -> np.ndarray | None:
    """[k, T, C, H, W] with C = 1 or 3, values clipped to [0, 1], as float32."""
    if x is None:
        return None
    arr = np.asarray(x, dtype=np.float32)
    if arr.ndim != 5 or arr.shape[2] not in (1, 3) or 0 in arr.shape:
        raise StochliftError(f"{name} must be videos [k, T, C, H, W] with C = 1 or 3, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise StochliftError(f"{name} contains NaN or Inf values")
    return np.clip(arr, 0.0, 1.0)


def grid_frames(
    reference: ArrayLike | None, generated: ArrayLike, *, scale: int = 2, frames: slice | None = None
) -> Iterator[np.ndarray]:
    """RGB frames [H', W', 3] uint8: the true videos in the top row (if given), the generated ones below.

    The true videos may be shorter than the generated ones (a long rollout from a short clip): past their
    end the top row is blank. Both are [k, T, C, H, W] in [0, 1]; `frames` picks the time steps shown.
    """
    gen = _videos(generated, "generated")
    ref = _videos(reference, "reference")
    if ref is not None and (len(ref) != len(gen) or ref.shape[2:] != gen.shape[2:]):
        raise StochliftError(f"reference {ref.shape} and generated {gen.shape} must hold as many videos of one size")
    if not isinstance(scale, int) or scale < 1:
        raise StochliftError(f"scale must be a positive integer, got {scale!r}")
    k, n_frames, _, h, w = gen.shape
    rows = [ref, gen] if ref is not None else [gen]
    height, width = len(rows) * (h + GAP) + GAP, k * (w + GAP) + GAP
    # H.264 wants sizes divisible by 16 after upscaling: pad the canvas rather than let ffmpeg rescale it
    pad_h, pad_w = (-height * scale) % 16, (-width * scale) % 16
    for t in range(n_frames)[frames or slice(None)]:
        canvas = np.full((height, width, 3), BORDER, dtype=np.float32)
        for r, videos in enumerate(rows):
            if t >= videos.shape[1]:
                continue
            for j in range(k):
                y, x = GAP + r * (h + GAP), GAP + j * (w + GAP)
                canvas[y : y + h, x : x + w] = np.moveaxis(videos[j, t], 0, -1)  # gray broadcasts to RGB
        image = np.repeat(np.repeat(np.rint(canvas * 255).astype(np.uint8), scale, axis=0), scale, axis=1)
        yield np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), constant_values=round(BORDER * 255))


def save_video_grid(
    path: str | os.PathLike,
    reference: ArrayLike | None,
    generated: ArrayLike,
    *,
    fps: float = 8,
    scale: int = 2,
    frames: slice | None = None,
) -> None:
    """Write `grid_frames` as a GIF or MP4 (by suffix); the file appears only when complete."""
    if not fps > 0:
        raise StochliftError(f"fps must be positive, got {fps}")
    write = _animation_writer(path)
    images = grid_frames(reference, generated, scale=scale, frames=frames)
    with atomic_path(path) as tmp:
        write(tmp, images, fps)


# ------------------------------------------------------------------------------------- pixel statistics


def frame_statistics(videos: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Per video and frame, the mean and the standard deviation of its pixel values: two [n, T] arrays."""
    arr = np.asarray(videos, dtype=np.float64)
    if arr.ndim != 5:
        raise StochliftError(f"videos must be [n, T, C, H, W], got shape {arr.shape}")
    flat = arr.reshape(*arr.shape[:2], -1)
    return flat.mean(axis=-1), flat.std(axis=-1)


def save_pixel_stats_plot(
    path: str | os.PathLike, reference: dict[str, np.ndarray], generated: dict[str, np.ndarray],
    title: str = "",
) -> None:
    """Two panels over frames: per-frame pixel mean and per-frame pixel std, ensemble mean and 5-95% band,
    true vs generated. Each dict holds "mean" and "std" as [n, T] (see `frame_statistics`)."""
    fig = _new_figure(9.6, 3.6)
    axes = fig.subplots(1, 2)
    for ax, key, label in zip(axes, ("mean", "std"), ("pixel mean of a frame", "pixel std of a frame")):
        for name, stats in zip(ROW_LABELS, (reference, generated)):
            values = np.asarray(stats[key], dtype=np.float64)
            time = np.arange(values.shape[1])
            low, high = np.percentile(values, [5, 95], axis=0)
            (line,) = ax.plot(time, values.mean(axis=0), label=f"{name} (n = {values.shape[0]})")
            ax.fill_between(time, low, high, color=line.get_color(), alpha=0.25)
        ax.set_xlabel("frame")
        ax.set_ylabel(label)
    axes[0].legend()
    if title:
        fig.suptitle(title)
    _save_png(fig, path)
