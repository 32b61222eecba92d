"""Offline stochastic video benchmarks: Stochastic Moving Digits and a CLEVRER-like scene of bouncing balls.

Stochastic Moving Digits follows the Stochastic Moving MNIST rules (Denton & Fergus 2018; anchors.md section 3):
a 64x64 canvas, 2 digits of 32 px, top-left corners starting uniformly in [0, 32) (integers), integer
velocities uniform in -4..4 px/frame per axis. At every frame, before drawing, a digit that has left the
allowed range [0, size - digit_size - 1] is clamped back and draws a NEW velocity: the component across the
wall it hit uniform in 1..4 away from that wall, the other component uniform in -4..4 (at a corner both
components point away). Overlapping digits are summed and clipped at 1. Digits come from real MNIST when
local idx files are given (train images for train/valid, t10k images for test; a single file: its last 20%
for test), else from scikit-learn's 1,797 bundled 8x8 digits (values 0..16, first 80% for train/valid, the
rest for test), padded by one pixel (MNIST-like margin) and upscaled bicubically to the digit size.

The ball scene: coloured discs of one radius on a grey background enter from just outside a random edge at
random times (a Poisson number of entries per frame, `entry_rate` on average, while fewer than `max_balls`
are in the world), head for a random point of the central half of the frame, collide elastically with each
other (equal masses: the velocity components along the line of centres are exchanged) and leave; nothing
bounces off the frame edges. `max_balls` caps the balls present at once, so a model trained on such data
that generates more objects than that shows the "more objects than ever seen in training" behaviour.
A warm-up runs before the recorded frames so the first frame already shows a typical scene.

Both are seeded (one random stream per split, from the seed and the split's name): the same arguments give
the same file, byte for byte. They are stored as uint8 video files (see `stochlift.data.video`).
"""

from __future__ import annotations

import gzip
import os
import struct
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import cast

import numpy as np

from stochlift.data.datasets import Splits, split_sizes
from stochlift.data.trajectories import TrajectoryWriter
from stochlift.data.video import SPLIT_NAMES, video_meta
from stochlift.errors import StochliftError
from stochlift.io import refuse_overwriting_inputs
from stochlift.optional import require

DIGITS_SPLITS = Splits(train=1024, valid=64, test=256)
BALLS_SPLITS = Splits(train=1024, valid=64, test=256)
_BLOCK = 128  # most trajectories generated and written at a time
_BLOCK_BYTES = 1 << 26  # and at most this many bytes of float32 frames


# =========================================================================================== digits


def bounce_step(
    pos: np.ndarray, vel: np.ndarray, rng: np.random.Generator, high: int, max_speed: int = 4
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply the walls of Stochastic Moving MNIST to integer positions/velocities [..., 2] (row, column).

    A component outside [0, high] is clamped, and that object gets a new velocity: away from the wall
    (1..max_speed) across it, uniform in -max_speed..max_speed along it. Returns (pos, vel, hit [..., 2]).
    """
    low_hit, high_hit = pos < 0, pos > high
    hit = low_hit | high_hit
    away = rng.integers(1, max_speed + 1, size=pos.shape) * np.where(low_hit, 1, -1)
    other = rng.integers(-max_speed, max_speed + 1, size=pos.shape)
    any_hit = hit.any(axis=-1, keepdims=True)
    vel = np.where(hit, away, np.where(any_hit, other, vel))
    return np.clip(pos, 0, high), vel, hit


def digit_paths(
    rng: np.random.Generator,
    n: int,
    frames: int,
    digits: int = 2,
    size: int = 64,
    digit_size: int = 32,
    max_speed: int = 4,
) -> np.ndarray:
    """Top-left corners [n, frames, digits, 2] (row, column) of the digits at each drawn frame."""
    high = size - digit_size - 1
    pos = rng.integers(0, size - digit_size, size=(n, digits, 2))
    vel = rng.integers(-max_speed, max_speed + 1, size=(n, digits, 2))
    out = np.empty((n, frames, digits, 2), dtype=np.int64)
    for t in range(frames):
        pos, vel, _ = bounce_step(pos, vel, rng, high, max_speed)
        out[:, t] = pos
        pos = pos + vel
    return out


def render_digits(paths: np.ndarray, glyphs: np.ndarray, size: int = 64) -> np.ndarray:
    """Frames [n, T, size, size] in [0, 1]: glyphs [n, digits, s, s] pasted at `paths`, summed, clipped at 1."""
    n, frames, digits, _ = paths.shape
    s = glyphs.shape[-1]
    canvas = np.zeros((n, frames, size, size), dtype=np.float32)
    rows_n = np.arange(n)[:, None, None]
    offsets = np.arange(s)
    for t in range(frames):
        for k in range(digits):
            rows = paths[:, t, k, 0, None] + offsets  # [n, s]
            cols = paths[:, t, k, 1, None] + offsets
            canvas[rows_n, t, rows[:, :, None], cols[:, None, :]] += glyphs[:, k]
    return np.minimum(canvas, 1.0, out=canvas)


def read_idx_images(path: str | os.PathLike) -> np.ndarray:
    """MNIST idx3-ubyte images (optionally .gz) as [N, rows, cols] uint8."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            header = handle.read(16)
            if len(header) < 16:
                raise StochliftError(f"{path} is too short for an idx3-ubyte image file")
            magic, count, rows, cols = struct.unpack(">IIII", header)
            if magic != 2051:
                raise StochliftError(f"{path} is not an idx3-ubyte image file (magic {magic}, expected 2051)")
            data = handle.read(count * rows * cols)
    except (OSError, EOFError) as exc:
        raise StochliftError(f"cannot read MNIST file {path}: {exc}") from None
    if len(data) != count * rows * cols:
        raise StochliftError(f"{path} is truncated: {len(data)} of {count * rows * cols} pixel bytes")
    return np.frombuffer(data, dtype=np.uint8).reshape(count, rows, cols)


def _find_idx(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def _resize_glyphs(images: np.ndarray, digit_size: int) -> np.ndarray:
    """[N, h, w] floats in [0, 1] -> [N, digit_size, digit_size], bicubic, clipped to [0, 1]."""
    from PIL import Image

    out = np.empty((len(images), digit_size, digit_size), dtype=np.float32)
    for i, image in enumerate(images):
        resized = Image.fromarray(image.astype(np.float32), mode="F")
        out[i] = np.asarray(resized.resize((digit_size, digit_size), Image.Resampling.BICUBIC))
    return np.clip(out, 0.0, 1.0, out=out)


@dataclass
class DigitPools:
    """Digit images in [0, 1] at their source resolution, one pool for train/valid and one for test."""

    train: np.ndarray
    test: np.ndarray
    source: str

    def glyphs(self, split: str, rng: np.random.Generator, shape: tuple[int, ...], digit_size: int) -> np.ndarray:
        pool = self.test if split == "test" else self.train
        picked = pool[rng.integers(0, len(pool), size=int(np.prod(shape)))]
        return _resize_glyphs(picked, digit_size).reshape(*shape, digit_size, digit_size)


def load_digit_pools(mnist: str | os.PathLike | None = None) -> DigitPools:
    """MNIST from a local idx file or folder, else scikit-learn's bundled digits (no download either way)."""
    if mnist is not None:
        path = Path(mnist)
        if path.is_dir():
            train_file = _find_idx(path, "train-images-idx3-ubyte")
            test_file = _find_idx(path, "t10k-images-idx3-ubyte")
            if train_file is None:
                raise StochliftError(f"no train-images-idx3-ubyte[.gz] in {path}")
        elif path.is_file():
            train_file, test_file = path, None
        else:
            raise StochliftError(f"no such MNIST file or folder: {path}")
        train = read_idx_images(train_file).astype(np.float32) / 255.0
        if test_file is not None:
            return DigitPools(train, read_idx_images(test_file).astype(np.float32) / 255.0, f"mnist:{path.resolve()}")
        cut = int(round(0.8 * len(train)))
        if cut < 1 or cut >= len(train):
            raise StochliftError(f"{train_file} holds {len(train)} images; need at least 2 to split train/test digits")
        return DigitPools(train[:cut], train[cut:], f"mnist:{path.resolve()}")
    datasets = require("sklearn.datasets", "Stochastic Moving Digits without local MNIST files (--mnist)")
    images = datasets.load_digits().images.astype(np.float32) / 16.0
    images = np.pad(images, ((0, 0), (1, 1), (1, 1)))  # the margin MNIST digits have
    cut = int(round(0.8 * len(images)))
    return DigitPools(images[:cut], images[cut:], "sklearn.datasets.load_digits (8x8, upscaled)")


def make_moving_digits(
    out: str | os.PathLike,
    *,
    trajectories: int | None = None,
    frames: int = 20,
    size: int = 64,
    digit_size: int | None = None,
    digits: int = 2,
    max_speed: int = 4,
    seed: int = 0,
    mnist: str | os.PathLike | None = None,
    progress: bool = True,
) -> Path:
    """Stochastic Moving Digits (see the module docstring) as a uint8 gray video file with train/valid/test.

    trajectories: total count, split like 1024/64/256 (the default); digit_size defaults to size // 2.
    """
    digit_size = size // 2 if digit_size is None else digit_size
    checks = {"frames": frames, "size": size, "digit_size": digit_size, "digits": digits, "max_speed": max_speed}
    for name, value in checks.items():
        if not isinstance(value, (int, np.integer)) or value <= 0:
            raise StochliftError(f"{name} must be a positive integer, got {value!r}")
    if digit_size >= size:
        raise StochliftError(f"digit_size ({digit_size}) must be smaller than the canvas size ({size})")
    refuse_overwriting_inputs([out], [mnist])
    pools = load_digit_pools(mnist)
    splits = split_sizes(trajectories, DIGITS_SPLITS).as_dict()
    parameters = {
        "generator": "stochlift.data.synthetic_video.make_moving_digits",
        "rules": "Stochastic Moving MNIST (Denton & Fergus 2018)",
        "source": pools.source,
        "digits": digits,
        "digit_size": digit_size,
        "max_speed": max_speed,
        "seed": seed,
        "fps": None,
    }
    meta = video_meta("moving-digits", "gray", frames, size, size, 1, parameters)
    return _write_generated(out, meta, splits, seed, progress, lambda split, rng, start, n: render_digits(
        digit_paths(rng, n, frames, digits, size, digit_size, max_speed),
        pools.glyphs(split, rng, (n, digits), digit_size),
        size,
    )[:, :, None])


def _write_generated(out, meta, splits: dict[str, int], seed: int, progress: bool, generate) -> Path:
    """Write splits block by block; `generate(split, rng, start, n)` gives rows start.. as [n, T, C, H, W] in
    [0, 1]; `rng` is the split's own generator (seeded by seed and split)."""
    from stochlift.progress import tqdm

    block = int(np.clip(_BLOCK_BYTES // (4 * meta.frames * int(np.prod(meta.frame_shape))), 1, _BLOCK))
    with TrajectoryWriter(out, meta, splits) as writer, tqdm(
        total=sum(splits.values()), desc=meta.dataset_name, unit="video", disable=not progress
    ) as bar:
        for split, n in splits.items():
            rng = np.random.default_rng([seed, SPLIT_NAMES.index(split)])
            for start in range(0, n, block):
                videos = generate(split, rng, start, min(block, n - start))
                writer.write(split, start, {f: videos[:, :, c] for c, f in enumerate(meta.field_names)})
                bar.update(len(videos))
    return Path(out)


# ============================================================================================ balls

PALETTE = np.array(
    [
        (0.86, 0.20, 0.18),  # red
        (0.18, 0.36, 0.86),  # blue
        (0.20, 0.70, 0.30),  # green
        (0.92, 0.80, 0.18),  # yellow
        (0.60, 0.28, 0.76),  # purple
        (0.16, 0.76, 0.80),  # cyan
        (0.56, 0.34, 0.18),  # brown
        (0.95, 0.95, 0.95),  # white
    ],
    dtype=np.float32,
)


@dataclass(frozen=True)
class BallsParams:
    size: int = 32  # frame side in pixels
    frames: int = 32  # recorded frames
    max_balls: int = 3  # most balls in the world at once (visible or just outside the frame)
    entry_rate: float = 0.1  # mean entries per frame while fewer than max_balls are present
    radius: float = 0.12  # ball radius, fraction of the frame side
    speed: tuple[float, float] = (0.02, 0.05)  # speed range, frame sides per frame
    warmup: int = 16  # frames simulated before the first recorded one
    substeps: int = 2  # collision checks per frame
    shading: bool = True  # lit from the top left; False: flat discs
    background: float = 0.5  # grey level

    def validate(self) -> None:
        for name in ("size", "frames", "max_balls", "substeps"):
            if getattr(self, name) <= 0:
                raise StochliftError(f"{name} must be positive, got {getattr(self, name)}")
        if self.warmup < 0 or self.entry_rate < 0:
            raise StochliftError(f"warmup and entry_rate must be >= 0, got {self.warmup}, {self.entry_rate}")
        if not 0 < self.radius < 0.5:
            raise StochliftError(f"radius must be in (0, 0.5) of the frame side, got {self.radius}")
        if not 0 < self.speed[0] <= self.speed[1]:
            raise StochliftError(f"speed must be a range 0 < low <= high, got {self.speed}")
        if not 0 <= self.background <= 1:
            raise StochliftError(f"background must be in [0, 1], got {self.background}")


@dataclass
class BallsScene:
    centres: np.ndarray  # [T, N, 2] (row, column) in pixels; NaN while a ball is not in the world
    colours: np.ndarray  # [N] indices into PALETTE
    entered: np.ndarray  # [N] frame of entry (negative: during the warm-up)
    radius: float  # pixels

    def visible(self, size: int) -> np.ndarray:
        """[T, N] whether each ball's disc overlaps the frame."""
        c = self.centres
        with np.errstate(invalid="ignore"):
            return cast(np.ndarray, ((c > -self.radius) & (c < size + self.radius)).all(axis=-1))


def elastic_collisions(pos: np.ndarray, vel: np.ndarray, radius: float) -> int:
    """Resolve collisions of equal discs in place: overlapping pairs that approach exchange the velocity
    components along their line of centres (equal masses, elastic). Returns the number of collisions."""
    hits = 0
    for i in range(len(pos)):
        for j in range(i + 1, len(pos)):
            d = pos[j] - pos[i]
            dist2 = float(d @ d)
            if 0.0 < dist2 < (2 * radius) ** 2:
                approach = float((vel[j] - vel[i]) @ d)
                if approach < 0:
                    impulse = (approach / dist2) * d
                    vel[i] += impulse
                    vel[j] -= impulse
                    hits += 1
    return hits


def simulate_balls(params: BallsParams, rng: np.random.Generator) -> BallsScene:
    """One scene: entries, straight flight, elastic collisions, exits (see the module docstring)."""
    s, r = float(params.size), params.radius * params.size
    pos, vel = np.zeros((0, 2)), np.zeros((0, 2))
    ids: list[int] = []  # ball id of each row of pos/vel
    colours: list[int] = []
    entered: list[int] = []
    track: list[dict[int, np.ndarray]] = []
    for step in range(params.warmup + params.frames):
        room = params.max_balls - len(ids)
        for _ in range(min(int(rng.poisson(params.entry_rate)), room)):
            edge, along = int(rng.integers(4)), rng.uniform(0.0, s)
            outside = (-r - 0.5, s + r + 0.5)[edge % 2]
            start = np.array([outside, along] if edge < 2 else [along, outside])
            target = rng.uniform(0.25 * s, 0.75 * s, size=2)
            speed = rng.uniform(*params.speed) * s
            colour = int(rng.integers(len(PALETTE)))
            if len(pos) and (np.linalg.norm(pos - start, axis=1) < 2 * r + 1).any():
                continue  # the entry point is taken: this ball does not come in
            pos = np.vstack([pos, start])
            vel = np.vstack([vel, speed * (target - start) / np.linalg.norm(target - start)])
            ids.append(len(colours))
            colours.append(colour)
            entered.append(step - params.warmup)
        if step >= params.warmup:
            track.append({ball: pos[k].copy() for k, ball in enumerate(ids)})
        for _ in range(params.substeps):
            pos += vel / params.substeps
            elastic_collisions(pos, vel, r)
        keep = cast(np.ndarray, ((pos > -2 * r - 1) & (pos < s + 2 * r + 1)).all(axis=1))
        pos, vel, ids = pos[keep], vel[keep], [b for b, k in zip(ids, keep) if k]
    centres = np.full((params.frames, len(colours), 2), np.nan)
    for t, frame in enumerate(track):
        for ball, centre in frame.items():
            centres[t, ball] = centre
    return BallsScene(centres, np.asarray(colours, dtype=np.int64), np.asarray(entered, dtype=np.int64), r)


def render_balls(scene: BallsScene, params: BallsParams) -> np.ndarray:
    """Frames [T, 3, size, size] in [0, 1]: antialiased discs over the grey background, drawn in entry order."""
    size, r = params.size, scene.radius
    grid = np.arange(size) + 0.5  # pixel centres
    image = np.full((params.frames, 3, size, size), params.background, dtype=np.float32)
    for ball in range(len(scene.colours)):
        c = scene.centres[:, ball]  # [T, 2]
        shown = np.isfinite(c[:, 0])
        if not shown.any():
            continue
        dy = grid[None, :, None] - c[shown, 0, None, None]  # [t, H, 1]
        dx = grid[None, None, :] - c[shown, 1, None, None]  # [t, 1, W]
        cover = np.clip(r + 0.5 - np.sqrt(dy**2 + dx**2), 0.0, 1.0).astype(np.float32)
        colour = PALETTE[scene.colours[ball]][None, :, None, None]
        if params.shading:  # brighter towards the top left, darker at the bottom right
            light = np.clip(1.0 - 0.3 * (dy + dx) / (np.sqrt(2) * r), 0.55, 1.3).astype(np.float32)
            colour = np.clip(colour * light[:, None], 0.0, 1.0)
        frames = image[shown]
        image[shown] = frames * (1 - cover[:, None]) + colour * cover[:, None]
    return image


def make_bouncing_balls(
    out: str | os.PathLike,
    *,
    trajectories: int | None = None,
    seed: int = 0,
    progress: bool = True,
    **params,
) -> Path:
    """The CLEVRER-like ball scene as a uint8 RGB video file with train/valid/test splits.

    params: the fields of BallsParams (size, frames, max_balls, entry_rate, radius, speed, warmup, substeps,
    shading, background); trajectories: total count, split like 1024/64/256 (the default).
    """
    try:
        p = BallsParams(**params)
    except TypeError as exc:
        raise StochliftError(f"bad ball-scene parameter: {exc}") from None
    p.validate()
    splits = split_sizes(trajectories, BALLS_SPLITS).as_dict()
    from stochlift.progress import tqdm

    # scenes first (a few kB of positions each), so their statistics can go into the file's header
    scenes: dict[str, list[BallsScene]] = {}
    with tqdm(total=sum(splits.values()), desc="simulating", unit="scene", disable=not progress) as bar:
        for split, n in splits.items():
            rng = np.random.default_rng([seed, SPLIT_NAMES.index(split)])
            scenes[split] = []
            for _ in range(n):
                scenes[split].append(simulate_balls(p, rng))
                bar.update()
    observed = {
        split: {
            "mean_entries": float(np.mean([(sc.entered >= 0).sum() for sc in group])),
            "max_visible_balls": int(max(sc.visible(p.size).sum(axis=1).max(initial=0) for sc in group)),
        }
        for split, group in scenes.items()
    }
    parameters = {
        "generator": "stochlift.data.synthetic_video.make_bouncing_balls",
        **{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(p).items() if k not in ("size", "frames")},
        "observed": observed,
        "seed": seed,
        "fps": None,
    }
    meta = video_meta("bouncing-balls", "rgb", p.frames, p.size, p.size, 1, parameters)

    def render(split: str, rng: np.random.Generator, start: int, n: int) -> np.ndarray:
        return np.stack([render_balls(scene, p) for scene in scenes[split][start : start + n]])

    return _write_generated(out, meta, splits, seed, progress, render)
