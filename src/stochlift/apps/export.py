"""`stochlift export`: a few trajectories of a file as a video (MP4, GIF) or a still grid (PNG).

Generated samples are easiest to judge side by side with the truth, so a reference file puts its first
trajectories in a row above (or beside) the generated ones: `stochlift sample` starts generated trajectory i
from reference trajectory i, so each column shares its start. What is drawn follows the state:

- video (RGB or gray pixels): the frames themselves, pixel-exact, nearest-neighbour upscaled;
- 2-D fields: colour-mapped maps with the problem's colour scale and the physical time in the heading;
- 1-D fields: space-time images (x across, time up); a video fills them in frame by frame;
- vectors: each variable over time, as a still (PNG) only.

MP4 needs the imageio-ffmpeg package (the `video` extra); GIF and PNG need nothing more. The output appears
only when complete; a bad suffix or a missing package fails before anything is read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stochlift.apps import plots
from stochlift.apps.plots.fields import (
    rollout_lines_png,
    snapshots_png,
    spacetime_reveal_frames,
    spacetime_rollouts_png,
    state_kind,
)
from stochlift.apps.plots.video import save_video_grid
from stochlift.data.readers import open_trajectories
from stochlift.errors import StochliftError
from stochlift.io import atomic_path
from stochlift.problems import get_problem

__all__ = ["SUFFIXES", "export_trajectories"]

SUFFIXES = (".mp4", ".gif", ".png")
STILL_FRAMES = 5  # columns of a PNG of fields: evenly spaced frames, both ends included
VIDEO_WIDTH = 768  # pixels a pixel-exact video grid is upscaled towards

PathLike = str | os.PathLike


@dataclass
class _Picked:
    """The trajectories to draw: generated [k, T, *state] and the reference's (or None), with what labels them."""

    generated: np.ndarray
    reference: np.ndarray | None
    time: np.ndarray
    x: np.ndarray | None
    kind: str  # state_kind, or "video" for pixel data
    title: str
    display: dict[str, Any]
    names: list[str]


def _check_out(out: Path) -> str:
    suffix = out.suffix.lower()
    if suffix not in SUFFIXES:
        raise StochliftError(f"--out must end with .mp4, .gif or .png, got {out.name!r}")
    if suffix == ".mp4":
        try:
            import imageio_ffmpeg  # noqa: F401
        except ImportError:
            raise StochliftError(f"cannot write {out.name}: MP4 needs the imageio-ffmpeg package (pip install "
                                 "'stochlift[video]'); or write a .gif or .png") from None
    return suffix


def _channel(names: list[str], field: str | None) -> int:
    if field is None:
        return 0
    if field not in names:
        raise StochliftError(f"no field {field!r}; the file has {names}")
    return names.index(field)


def _pick(samples: PathLike, reference: PathLike | None, trajectories: int, split: str | None,
          reference_split: str | None, field: str | None) -> _Picked:
    gen_file = open_trajectories(samples)
    split = split or gen_file.default_split("generated")
    if split not in gen_file.splits:
        raise StochliftError(f"{Path(samples).name} has no split {split!r}; it has {list(gen_file.splits)}")
    meta = gen_file.meta
    k = min(trajectories, gen_file.splits[split])
    generated = gen_file.read(split, slice(0, k))
    ref = None
    if reference is not None:
        ref_file = open_trajectories(reference)
        ref_split = reference_split or ref_file.default_split("test")
        if ref_split not in ref_file.splits:
            raise StochliftError(f"{Path(reference).name} has no split {ref_split!r}; it has {list(ref_file.splits)}")
        if list(ref_file.meta.frame_shape) != list(meta.frame_shape):
            raise StochliftError(f"reference frames {list(ref_file.meta.frame_shape)} and samples' "
                                 f"{list(meta.frame_shape)} differ")
        k = min(k, ref_file.splits[ref_split])
        ref, generated = ref_file.read(ref_split, slice(0, k)), generated[:k]
    names = list(meta.field_names)
    kind = "video" if meta.dtype == "uint8" and len(meta.frame_shape) == 3 and meta.channels in (1, 3) else \
        state_kind(meta.frame_shape)
    frames = generated.shape[1] if ref is None or kind == "video" else min(generated.shape[1], ref.shape[1])
    generated = generated[:, :frames]
    if ref is not None and kind != "video":
        ref = ref[:, :frames]
    if kind in ("plane", "line"):
        c = _channel(names, field)
        generated, ref = generated[:, :, c], None if ref is None else ref[:, :, c]
        title = f"{meta.dataset_name}: {names[c]}"
    else:
        title = meta.dataset_name
    shown = ref if ref is not None else generated
    display = get_problem(meta.problem).display(shown) if kind in ("plane", "line") else {}
    return _Picked(generated, ref, np.asarray(meta.time[:frames], dtype=np.float64), meta.x, kind, title, display,
                   names)


def _still_frames(n_frames: int) -> list[int]:
    return sorted({int(round(i)) for i in np.linspace(0, n_frames - 1, min(STILL_FRAMES, n_frames))})


def _still(picked: _Picked) -> bytes:
    if picked.kind in ("plane", "video"):
        frames = _still_frames(picked.generated.shape[1])
        ref = picked.reference
        if ref is not None and ref.shape[1] < picked.generated.shape[1]:  # a short true clip: the generated alone
            ref = None
        display = picked.display if picked.kind == "plane" else {"value_range": (0.0, 1.0)}
        return snapshots_png(ref, picked.generated, frames, picked.time[frames], display=display)
    if picked.kind == "line":
        return spacetime_rollouts_png(picked.reference, picked.generated, picked.time, picked.x, display=picked.display)
    if picked.kind == "vector":
        return rollout_lines_png(picked.reference, picked.generated, picked.time, picked.names)
    raise StochliftError(f"no picture for states of shape {list(picked.generated.shape[2:])}")


def _pad16(frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """RGB frames padded with white to sizes divisible by 16 (H.264 wants them; ffmpeg would rescale)."""
    for image in frames:
        h, w = image.shape[:2]
        yield np.pad(image, ((0, -h % 16), (0, -w % 16), (0, 0)), constant_values=255)


def export_trajectories(
    samples: PathLike,
    out: PathLike,
    *,
    reference: PathLike | None = None,
    trajectories: int = 4,
    split: str | None = None,
    reference_split: str | None = None,
    field: str | None = None,
    fps: float = 8.0,
) -> Path:
    """Write the first `trajectories` of `samples` (and of `reference`, above them) to `out` (.mp4, .gif, .png).

    split: of `samples` (default: its only one); reference_split: of `reference` (default 'test' or its only one).
    field: which field of a multi-field file to draw (default the first; video shows all its colour channels).
    Fields are cut to the frames both files have; video keeps the generated frames past a shorter true clip.
    """
    out = Path(out)
    suffix = _check_out(out)
    if trajectories < 1:
        raise StochliftError(f"trajectories must be >= 1, got {trajectories}")
    if not fps > 0:
        raise StochliftError(f"fps must be positive, got {fps}")
    picked = _pick(samples, reference, trajectories, split, reference_split, field)
    if suffix == ".png":
        png = _still(picked)
        with atomic_path(out) as tmp:
            tmp.write_bytes(png)
    elif picked.kind == "video":
        k, w = picked.generated.shape[0], picked.generated.shape[-1]
        scale = max(1, VIDEO_WIDTH // (k * (w + 2)))
        save_video_grid(out, picked.reference, picked.generated, fps=fps, scale=scale)
    elif picked.kind == "plane":
        plots.save_rollout_animation(out, picked.reference, picked.generated, fps=fps, title=picked.title,
                                     time=picked.time, panel=2.4, dpi=100, **picked.display)
    elif picked.kind == "line":
        write = plots._animation_writer(out)
        frames = spacetime_reveal_frames(picked.reference, picked.generated, picked.time, picked.x,
                                         display=picked.display)
        with atomic_path(out) as tmp:
            write(tmp, _pad16(frames), fps)
    else:
        raise StochliftError(f"{picked.kind} states export as a still: use an --out ending in .png")
    return out
