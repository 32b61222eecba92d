"""Video data in, the stochlift trajectory format out: folders of videos or of frame images, and CLEVRER.

Every video file written here (also by `bair.py` and `synthetic_video.py`) is a trajectory file with

- `problem = "video"`, `dtype = "uint8"` (values in [0, 1] when read, stored as round(255 v));
- one field per colour channel, ("r", "g", "b") or ("gray",), so frames read back as [n, T, C, H, W];
- time grid = frame index in the source * stride (so `time` counts source frames), x and y = pixel centres
  (i + 0.5) / H and (j + 0.5) / W in [0, 1];
- parameters: `source`, `stride`, `fps` (frames per second of the stored frames, when known), `size`, the
  generator (`generator`) and, for synthetic sets, every generator parameter and the seed.

`import_video_folder` streams: each video is decoded frame by frame (imageio; mp4/webm through the ffmpeg
binary of imageio-ffmpeg), cut into clips and appended to a temporary per-split staging HDF5 file beside the
output; once every video is read (and so the number of clips per split is known without trusting frame
counts in container metadata, which are often estimates) the staging file is copied in row blocks into the
final file by the atomic `TrajectoryWriter`, and removed. Memory holds one clip buffer at a time.
Splits are drawn per video (never per clip, so no video leaks from train into test).
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from stochlift.data.h5write import discard, open_for_writing
from stochlift.data.trajectories import TrajectoryMeta, TrajectoryWriter
from stochlift.errors import StochliftError
from stochlift.io import refuse_overwriting_inputs, require_memory, temporary_file
from stochlift.optional import require

VIDEO_PROBLEM = "video"
VIDEO_SUFFIXES = (".mp4", ".webm", ".gif", ".avi", ".mov", ".mkv", ".m4v")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
CHANNEL_FIELDS = {"rgb": ("r", "g", "b"), "gray": ("gray",)}
SPLIT_NAMES = ("train", "valid", "test")
_BLOCK_BYTES = 1 << 26  # staged clips are buffered, and copied into the final file, in blocks of about 64 MB


def field_names(channels: str) -> tuple[str, ...]:
    if channels not in CHANNEL_FIELDS:
        raise StochliftError(f"channels must be one of {list(CHANNEL_FIELDS)}, got {channels!r}")
    return CHANNEL_FIELDS[channels]


def video_meta(
    name: str, channels: str, frames: int, height: int, width: int, stride: int, parameters: dict[str, Any]
) -> TrajectoryMeta:
    """The metadata every video file shares (see the module docstring)."""
    return TrajectoryMeta(
        dataset_name=name,
        problem=VIDEO_PROBLEM,
        field_names=field_names(channels),
        time=np.arange(frames, dtype=np.float64) * stride,
        x=(np.arange(height) + 0.5) / height,
        y=(np.arange(width) + 0.5) / width,
        periodic=False,
        parameters={"stride": stride, "size": [height, width], **parameters},
        dtype="uint8",
    )


def natural_key(path: Path | str) -> list[Any]:
    """Sort key that puts frame_2 before frame_10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", str(path))]


def split_counts(n: int, fractions: Sequence[float] | np.ndarray) -> list[int]:
    """Split n items in the given proportions (largest remainder), e.g. 10, (0.8, 0.1, 0.1) -> [8, 1, 1]."""
    f = np.asarray(fractions, dtype=np.float64)
    if f.shape != (3,) or not np.isfinite(f).all() or (f < 0).any() or abs(f.sum() - 1) > 1e-6:
        raise StochliftError(
            f"split fractions must be three non-negative numbers (train, valid, test) that sum to 1, got "
            f"{list(fractions)}"
        )
    share = n * f / f.sum()
    counts = np.floor(share).astype(int)
    for i in np.argsort(-(share - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    return counts.tolist()


def check_split_counts(counts: Sequence[int], fractions: Sequence[float] | np.ndarray, noun: str) -> None:
    """Refuse splits that a positive fraction asks for but that came out empty (e.g. 3 videos at 0.8,0.1,0.1
    leave no valid and no test split, and sampling would then start from the training data)."""
    f = np.asarray(fractions, dtype=np.float64)
    empty = [s for s, share, c in zip(SPLIT_NAMES, f, counts) if share > 0 and c == 0]
    if empty:
        n, need = sum(counts), math.ceil(f.sum() / min(share for share in f if share > 0))
        raise StochliftError(f"{n} {noun} are too few for --split-fractions {','.join(f'{v:g}' for v in f)}: "
                             f"split {empty[0]} would be empty; import at least {need} or set its fraction to 0")


# ------------------------------------------------------------------------------------------ frames


def to_channels(frame: np.ndarray, channels: str) -> np.ndarray:
    """An image as [H, W, C] uint8 with C = 3 (rgb) or 1 (gray); alpha dropped, gray replicated."""
    frame = np.asarray(frame)
    if frame.dtype != np.uint8:
        if frame.dtype.kind == "f":
            frame = np.rint(np.clip(frame, 0.0, 1.0) * 255)
        elif frame.dtype == np.uint16:
            frame = frame // 257
        frame = frame.astype(np.uint8)
    if frame.ndim == 2:
        frame = frame[:, :, None]
    if frame.ndim != 3 or frame.shape[2] not in (1, 2, 3, 4):
        raise StochliftError(f"frame of shape {frame.shape} is not an image")
    if frame.shape[2] in (2, 4):  # gray + alpha, rgb + alpha
        frame = frame[:, :, :-1]
    if channels == "rgb":
        return np.repeat(frame, 3, axis=2) if frame.shape[2] == 1 else frame
    if frame.shape[2] == 3:  # ITU-R BT.601 luma
        luma = frame.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        frame = np.rint(luma).astype(np.uint8)[:, :, None]
    return frame


def resize_frame(
    frame: np.ndarray, size: int | None, *, resize: str = "crop", crop: Sequence[int] | None = None
) -> np.ndarray:
    """Crop (explicit box (top, left, height, width), optional), then resize to size x size.

    resize="crop": scale the short side to `size` and centre-crop the long side (aspect ratio kept);
    resize="stretch": scale both sides to `size`. Bilinear, antialiased when shrinking (Pillow).
    """
    from PIL import Image

    h, w = frame.shape[:2]
    top, left, height, width = crop if crop is not None else (0, 0, h, w)
    if crop is not None and (top < 0 or left < 0 or height <= 0 or width <= 0 or top + height > h or left + width > w):
        raise StochliftError(
            f"crop box (top {top}, left {left}, height {height}, width {width}) does not fit a {h}x{w} frame"
        )
    if size is None:
        return frame[top : top + height, left : left + width]
    if resize == "crop":
        side = min(height, width)
        top, left = top + (height - side) // 2, left + (width - side) // 2
        height = width = side
    elif resize != "stretch":
        raise StochliftError(f"resize must be 'crop' or 'stretch', got {resize!r}")
    box = frame[top : top + height, left : left + width]  # cut first: no pixel outside the box leaks in
    image = Image.fromarray(box[:, :, 0] if box.shape[2] == 1 else np.ascontiguousarray(box))
    out = np.asarray(image.resize((size, size), Image.Resampling.BILINEAR))
    return out[:, :, None] if out.ndim == 2 else out


# ----------------------------------------------------------------------------------------- sources


@dataclass(frozen=True)
class VideoSource:
    path: Path
    kind: str  # "video" (one file) or "frames" (a folder of images)
    split: str | None = None  # from the folder layout, for split_by="folder"


def _folder_split(relative: Path) -> str | None:
    top = relative.parts[0].lower() if len(relative.parts) > 1 else ""
    for split, pattern in (("train", r"train"), ("valid", r"val"), ("test", r"test")):
        if re.search(pattern, top):
            return split
    return None


def find_video_sources(src: str | os.PathLike) -> list[VideoSource]:
    """Every video file and every folder of frame images under `src` (recursively), in natural order."""
    root = Path(src)
    if not root.is_dir():
        raise StochliftError(f"no such folder: {root}")
    sources = []
    for folder, dirs, files in os.walk(root):
        dirs.sort(key=natural_key)
        base = Path(folder)
        images = [f for f in files if f.lower().endswith(IMAGE_SUFFIXES) and not f.startswith(".")]
        if images:
            sources.append(VideoSource(base, "frames", _folder_split(base.relative_to(root) / "x")))
        for name in sorted(files, key=natural_key):
            if name.lower().endswith(VIDEO_SUFFIXES) and not name.startswith("."):
                sources.append(VideoSource(base / name, "video", _folder_split((base / name).relative_to(root))))
    if not sources:
        raise StochliftError(
            f"no videos ({', '.join(VIDEO_SUFFIXES)}) or folders of frame images "
            f"({', '.join(IMAGE_SUFFIXES)}) in {root}"
        )
    needs_ffmpeg = sorted({s.path.suffix.lower() for s in sources if s.kind == "video"} - {".gif"})
    if needs_ffmpeg and importlib.util.find_spec("av") is None:  # PyAV, if installed, decodes them too
        require("imageio_ffmpeg", f"reading {'/'.join(needs_ffmpeg)} videos")
    return sources


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def iter_source_frames(source: VideoSource) -> Generator[np.ndarray, None, None]:
    """Frames of a video file or frame folder, decoded one at a time; unreadable input -> StochliftError."""
    import imageio.v3 as iio

    if source.kind == "frames":
        files = sorted(
            (p for p in source.path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".")),
            key=natural_key,
        )
        for path in files:
            try:
                image = iio.imread(path)
            except Exception as exc:  # imageio raises many types for bad input
                raise StochliftError(f"cannot read image {path}: {_one_line(exc)}") from None
            yield image[0] if image.ndim == 4 else image  # an animated png/webp: its first frame
        return
    try:
        frames = iter(iio.imiter(source.path))
    except Exception as exc:
        raise StochliftError(f"cannot read video {source.path}: {_one_line(exc)}") from None
    try:
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                return
            except Exception as exc:
                raise StochliftError(f"cannot read video {source.path}: {_one_line(exc)}") from None
            yield frame
    finally:
        close = getattr(frames, "close", None)
        if close is not None:
            close()  # stops the decoder (an ffmpeg process for mp4/webm) when a caller stops early


def source_fps(source: VideoSource) -> float | None:
    """Frames per second from the container metadata (mp4/webm: fps, gif: 1000 / duration), if any."""
    if source.kind != "video":
        return None
    import imageio.v3 as iio

    try:
        meta = iio.immeta(source.path)
    except Exception:
        return None
    if meta.get("fps"):
        return float(meta["fps"])
    if meta.get("duration") and source.path.suffix.lower() == ".gif":
        return 1000.0 / float(meta["duration"])
    return None


def _check_positive(**values: int | None) -> None:
    for name, value in values.items():
        if value is not None and (not isinstance(value, (int, np.integer)) or value <= 0):
            raise StochliftError(f"{name} must be a positive integer, got {value!r}")


def _assign_splits(sources: list[VideoSource], split_by: str, fractions: Sequence[float], seed: int) -> list[str]:
    if split_by == "folder":
        missing = [s.path for s in sources if s.split is None]
        if missing:
            raise StochliftError(
                f"split_by='folder' needs every video under a top folder named like train/valid/test; "
                f"{missing[0]} is not"
            )
        return [s.split for s in sources]  # type: ignore[misc]
    if split_by != "random":
        raise StochliftError(f"split_by must be 'random' or 'folder', got {split_by!r}")
    counts = split_counts(len(sources), fractions)
    order = np.random.default_rng(seed).permutation(len(sources))
    labels = np.empty(len(sources), dtype=object)
    labels[order] = np.repeat(np.array(SPLIT_NAMES, dtype=object), counts)
    return labels.tolist()


class _Staging:
    """Per-split resizable uint8 datasets [n, T, H, W, C] in a temporary HDF5 file beside the output."""

    def __init__(self, out: Path) -> None:
        self.path = temporary_file(out, ".staging.tmp")  # removed by a later import of `out` if left behind
        self.file = open_for_writing(self.path)
        self.buffers: dict[str, list[np.ndarray]] = {}

    def add(self, split: str, clip: np.ndarray) -> None:
        self.buffers.setdefault(split, []).append(clip)
        if len(self.buffers[split]) * clip.nbytes >= _BLOCK_BYTES:
            self.flush(split)

    def flush(self, split: str) -> None:
        block = self.buffers.pop(split, [])
        if not block:
            return
        block_array = np.stack(block)
        if split not in self.file:
            shape = block_array.shape[1:]
            self.file.create_dataset(
                split, (0, *shape), "u1", maxshape=(None, *shape), chunks=(1, *shape), compression="lzf"
            )
        dataset = self.file[split]
        if dataset.shape[1:] != block_array.shape[1:]:
            raise StochliftError(
                f"frames of size {block_array.shape[2:4]} differ from earlier ones {dataset.shape[2:4]}; "
                "pass a size to resize all"
            )
        n = dataset.shape[0]
        dataset.resize(n + len(block_array), axis=0)
        dataset[n:] = block_array

    def counts(self) -> dict[str, int]:
        for split in list(self.buffers):
            self.flush(split)
        return {split: self.file[split].shape[0] for split in SPLIT_NAMES if split in self.file}

    def close(self) -> None:
        discard(self.file)
        self.path.unlink(missing_ok=True)


def import_video_folder(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    size: int | None = 64,
    resize: str = "crop",
    crop: Sequence[int] | None = None,
    stride: int = 1,
    clip_length: int = 16,
    clips: str = "all",
    channels: str = "rgb",
    split: Sequence[float] = (0.8, 0.1, 0.1),
    split_by: str = "random",
    seed: int = 0,
    skip_short: bool = False,
    fps: float | None = None,
    name: str | None = None,
    progress: bool = True,
    extra_parameters: dict[str, Any] | None = None,
) -> Path:
    """Import every video (mp4, webm, gif, ...) and frame-image folder under `src` into a uint8 video file.

    size: output frames are size x size (None keeps the source size, which must then be the same everywhere);
    resize: "crop" (short side to size, centre crop) or "stretch"; crop: (top, left, height, width) box cut
    first; stride: keep every stride-th frame; clip_length: frames per clip (after the stride); clips: "all"
    (consecutive non-overlapping clips, a remainder shorter than a clip is dropped) or "first" (one per
    video); split: train/valid/test fractions of the videos, drawn with `seed` (split_by="random") or taken
    from top-level folder names containing train/val/test (split_by="folder"); skip_short: skip videos
    shorter than one clip instead of failing; fps: frames per second of the source when the files do not say.
    """
    _check_positive(size=size, stride=stride, clip_length=clip_length)
    if clips not in ("all", "first"):
        raise StochliftError(f"clips must be 'all' or 'first', got {clips!r}")
    if resize not in ("crop", "stretch"):
        raise StochliftError(f"resize must be 'crop' or 'stretch', got {resize!r}")
    if crop is not None and len(crop) != 4:
        raise StochliftError(f"crop must be four integers (top, left, height, width), got {list(crop)}")
    field_names(channels)
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise StochliftError(f"fps must be a positive number, got {fps}")
    src, out = Path(src), Path(out)
    refuse_overwriting_inputs([out], [src])
    if size is not None:  # a clip is held in memory while it is cut, and staged at most _BLOCK_BYTES at a time
        require_memory(8 * clip_length * size * size * 3, f"clips of {clip_length} frames of {size} x {size}")
    sources = find_video_sources(src)
    labels = _assign_splits(sources, split_by, split, seed)
    from stochlift.progress import tqdm

    staging = _Staging(out)
    skipped: list[str] = []
    videos = dict.fromkeys(SPLIT_NAMES, 0)
    try:
        for source, label in tqdm(list(zip(sources, labels)), desc="videos", unit="video", disable=not progress):
            made = seen = 0
            buffer: list[np.ndarray] = []
            frames = iter_source_frames(source)
            for frame in frames:
                seen += 1
                if (seen - 1) % stride:
                    continue
                buffer.append(resize_frame(to_channels(frame, channels), size, resize=resize, crop=crop))
                if len(buffer) == clip_length:
                    staging.add(label, np.stack(buffer))
                    buffer, made = [], made + 1
                    if clips == "first":
                        break
            frames.close()
            if made == 0:
                if not skip_short:
                    raise StochliftError(
                        f"{source.path} has {seen} frames, fewer than one clip of "
                        f"{clip_length} frames at stride {stride}; use a shorter clip length or skip_short"
                    )
                skipped.append(str(source.path))
            else:
                videos[label] += 1
        counts = staging.counts()
        if not counts:
            raise StochliftError(
                f"no video in {src} is long enough for one clip of {clip_length} frames at stride {stride}"
            )
        if split_by == "random":
            check_split_counts([videos[s] for s in SPLIT_NAMES], split, "videos")
        first = staging.file[next(iter(counts))]
        _, _, height, width, _ = first.shape
        fps_source = fps if fps is not None else source_fps(sources[0])
        meta = video_meta(
            name or src.resolve().name,
            channels,
            clip_length,
            height,
            width,
            stride,
            {
                "generator": "stochlift.data.video.import_video_folder",
                "source": str(src.resolve()),
                "resize": resize,
                "crop": list(crop) if crop is not None else None,
                "clip_length": clip_length,
                "clips": clips,
                "split_by": split_by,
                "split_fractions": [float(f) for f in split],
                "seed": seed,
                "videos_per_split": {k: v for k, v in videos.items() if k in counts},
                "videos_skipped": len(skipped),
                "source_fps": fps_source,
                "fps": fps_source / stride if fps_source else None,
                **(extra_parameters or {}),
            },
        )
        with TrajectoryWriter(out, meta, counts) as writer:
            rows = max(1, _BLOCK_BYTES // int(np.prod(first.shape[1:])))
            for label, n in counts.items():
                dataset = staging.file[label]
                for start in range(0, n, rows):
                    block = dataset[start : start + rows]  # [b, T, H, W, C]
                    writer.write(label, start, {f: block[..., c] for c, f in enumerate(meta.field_names)})
    finally:
        staging.close()
    return out


def import_clevrer(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    size: int = 128,
    stride: int = 5,
    clip_length: int = 16,
    resize: str = "stretch",
    **options: Any,
) -> Path:
    """CLEVRER (mp4, 480x320, 128 frames): the usual video protocol, 128x128 frames, every 5th frame, 16-frame
    clips (anchors.md section 3). Frames are stretched to the square by default (resize="crop" cuts the sides).
    The official split is kept when `src` holds video_train/video_validation/video_test folders."""
    sources = find_video_sources(src)
    options.setdefault("split_by", "folder" if all(s.split is not None for s in sources) else "random")
    options.setdefault("name", "clevrer")
    return import_video_folder(
        src, out, size=size, stride=stride, clip_length=clip_length, resize=resize,
        extra_parameters={"preset": "clevrer"}, **options,
    )
