"""BAIR robot pushing (softmotion30_44k) straight from the original tfrecords, without TensorFlow.

Layout of the download (anchors.md section 3):

    softmotion30_44k/train/traj_0_to_255.tfrecords, traj_256_to_511.tfrecords, ...   (~43,000 videos)
    softmotion30_44k/test/traj_0_to_255.tfrecords                                      (256 videos)

Each record is one tf.train.Example, one trajectory of 30 frames: keys "{i}/image_aux1/encoded" and
"{i}/image_main/encoded" hold the RAW 64x64x3 uint8 bytes of frame i (not PNG; PNG/JPEG bytes are decoded too,
should a re-packed copy use them), "{i}/action" (4 floats) and "{i}/endeffector_pos" (3 floats), which are not
imported. The official train/test split is kept (by directory); `valid` optionally holds out the last train
videos as a valid split. Two passes: the first only reads the 12-byte record headers to count the videos, the
second decodes and streams them into the atomic writer, `block` videos at a time.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from stochlift.data.tfrecord import CRC32C_IMPLEMENTATION, count_records, iter_records, parse_example
from stochlift.data.trajectories import TrajectoryWriter
from stochlift.data.video import natural_key, video_meta
from stochlift.errors import StochliftError
from stochlift.io import refuse_overwriting_inputs

CAMERAS = ("image_aux1", "image_main")
BAIR_FRAMES = 30
BAIR_SIZE = 64
BAIR_FPS = 10.0  # the softmotion recordings; the stored frames are consecutive (stride 1)


def bair_root(src: str | os.PathLike) -> Path:
    """The folder holding train/ and test/: `src` itself, or src/softmotion30_44k."""
    src = Path(src)
    if not src.is_dir():
        raise StochliftError(f"no such folder: {src}")
    for root in (src / "softmotion30_44k", src):
        if (root / "train").is_dir() or (root / "test").is_dir():
            return root
    raise StochliftError(f"{src} holds neither softmotion30_44k/ nor train/ and test/ folders of BAIR tfrecords")


def bair_files(root: Path) -> dict[str, list[Path]]:
    """The tfrecord files per official split, in natural order (traj_0_to_255 before traj_256_to_511)."""
    files = {
        split: sorted((root / split).glob("*.tfrecord*"), key=natural_key)
        for split in ("train", "test")
        if (root / split).is_dir()
    }
    files = {split: paths for split, paths in files.items() if paths}
    if not files:
        raise StochliftError(f"no .tfrecords files in {root}/train or {root}/test")
    return files


def decode_frames(example: dict, camera: str, frames: int, size: int = BAIR_SIZE) -> np.ndarray:
    """The [frames, size, size, 3] uint8 video of one decoded BAIR Example."""
    from PIL import Image

    out = np.empty((frames, size, size, 3), dtype=np.uint8)
    for i in range(frames):
        key = f"{i}/{camera}/encoded"
        value = example.get(key)
        if not isinstance(value, list) or not value:
            raise StochliftError(f"BAIR record lacks {key!r} (keys like {sorted(example)[:3]})")
        data = value[0]
        if len(data) == size * size * 3:
            out[i] = np.frombuffer(data, dtype=np.uint8).reshape(size, size, 3)
        else:  # an encoded image (PNG/JPEG) in a re-packed copy
            try:
                image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
            except Exception:
                raise StochliftError(
                    f"BAIR frame {key!r} has {len(data)} bytes: neither raw {size}x{size}x3 nor an image"
                ) from None
            if image.shape != (size, size, 3):
                raise StochliftError(f"BAIR frame {key!r} is {image.shape[1]}x{image.shape[0]}, expected {size}x{size}")
            out[i] = image
    return out


def import_bair(
    src: str | os.PathLike,
    out: str | os.PathLike,
    *,
    camera: str = "image_aux1",
    frames: int = BAIR_FRAMES,
    valid: int = 0,
    verify: bool = True,
    block: int = 64,
    progress: bool = True,
) -> Path:
    """Import BAIR softmotion30_44k tfrecords into a uint8 RGB video file with splits train(/valid)/test.

    camera: "image_aux1" (default, what most PyTorch work uses) or "image_main"; frames: the first `frames`
    of the 30; valid: hold out this many of the last training videos as a valid split; verify: check the
    TFRecord CRCs (a damaged file is a clear error).
    """
    from tqdm.auto import tqdm

    if camera not in CAMERAS:
        raise StochliftError(f"camera must be one of {list(CAMERAS)}, got {camera!r}")
    refuse_overwriting_inputs([out], [src])
    if not 1 <= frames <= BAIR_FRAMES:
        raise StochliftError(f"frames must be between 1 and {BAIR_FRAMES}, got {frames}")
    root = bair_root(src)
    files = bair_files(root)
    counts = {split: sum(count_records(p, verify=verify) for p in paths) for split, paths in files.items()}
    if valid < 0 or (valid and valid >= counts.get("train", 0)):
        raise StochliftError(
            f"valid must be between 0 and the {counts.get('train', 0)} training videos - 1, got {valid}"
        )
    sizes = {"train": counts.get("train", 0) - valid, "valid": valid, "test": counts.get("test", 0)}
    sizes = {split: n for split, n in sizes.items() if n > 0}
    if not sizes:
        raise StochliftError(f"the tfrecords in {root} hold no records")
    meta = video_meta(
        "bair",
        "rgb",
        frames,
        BAIR_SIZE,
        BAIR_SIZE,
        1,
        {
            "generator": "stochlift.data.bair.import_bair",
            "source": str(root.resolve()),
            "camera": camera,
            "fps": BAIR_FPS,
            "official_split": "softmotion30_44k train/ and test/ folders",
            "valid_from_train": valid,
            "crc_checked": verify,
            "crc32c": CRC32C_IMPLEMENTATION if verify else None,
        },
    )
    with TrajectoryWriter(out, meta, sizes) as writer:
        bar = tqdm(total=sum(sizes.values()), desc="BAIR videos", unit="video", disable=not progress)
        for official, paths in files.items():
            row, buffer = 0, []
            for path in paths:
                for record in iter_records(path, verify=verify):
                    try:
                        buffer.append(decode_frames(parse_example(record), camera, frames))
                    except StochliftError as exc:
                        raise StochliftError(f"{path}: {exc}") from None
                    if len(buffer) == block:
                        row = _write_block(writer, official, row, np.stack(buffer), sizes.get("train", 0))
                        bar.update(len(buffer))
                        buffer = []
            if buffer:
                _write_block(writer, official, row, np.stack(buffer), sizes.get("train", 0))
                bar.update(len(buffer))
        bar.close()
    return Path(out)


def _write_block(writer: TrajectoryWriter, official: str, row: int, videos: np.ndarray, train_size: int) -> int:
    """Write videos [b, T, H, W, 3] that are rows row.. of an official split; train rows >= train_size go to
    valid. Returns the next official row."""
    names = writer.meta.field_names
    if official == "test":
        parts = [("test", row, videos)]
    else:
        cut = int(np.clip(train_size - row, 0, len(videos)))
        parts = [("train", row, videos[:cut]), ("valid", row + cut - train_size, videos[cut:])]
    for split, start, part in parts:
        if len(part):
            writer.write(split, start, {name: part[..., c] for c, name in enumerate(names)})
    return row + len(videos)
