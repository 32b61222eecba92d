"""Trajectory files of vectors, 1-D and 2-D fields: the schema, round trips, per-dim boundaries, and
train + sample end to end for each rank."""

from __future__ import annotations

import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from conftest import tiny_config
from stochlift.data.trajectories import TrajectoryFile, TrajectoryMeta, write_trajectories
from stochlift.errors import StochliftError
from stochlift.lifting.perturbations import perturbation, smooth_field
from stochlift.lifting.rollout import sample_to_file
from stochlift.lifting.train import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# per rank: the grid coordinates given, the frame's spatial shape, the backbone that takes it
RANKS = {
    0: ({}, (), "mlp"),
    1: ({"x": np.linspace(0.0, 1.0, 16, endpoint=False)}, (16,), "unet1d"),
    2: ({"x": np.arange(8.0), "y": np.arange(8.0) / 8}, (8, 8), "unet"),
}


def _meta(rank: int, frames: int = 6, **kwargs) -> TrajectoryMeta:
    coords, _, _ = RANKS[rank]
    return TrajectoryMeta("set", "generic", ("a", "b"), np.linspace(0.0, 1.0, frames), **coords,
                          field_scales={"a": 2.0}, parameters={"seed": 1}, **kwargs)


def _data(rank: int, n: int, frames: int = 6, seed: int = 0) -> np.ndarray:
    """[n, frames, 2, *spatial]: a smooth random walk, so consecutive frames are related."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(size=(n, frames, 2, *RANKS[rank][1])) * 0.1
    return np.cumsum(steps, axis=1).astype(np.float32)


@pytest.mark.parametrize("rank", [0, 1, 2])
def test_each_rank_round_trips_with_the_wells_schema(tmp_path: Path, rank: int) -> None:
    meta = _meta(rank)
    splits = {"train": _data(rank, 5), "test": _data(rank, 2, seed=1)}
    static = {s: {"k": np.ones((len(a), *RANKS[rank][1]), np.float32) * i} for i, (s, a) in enumerate(splits.items())}
    write_trajectories(tmp_path / "f.h5", meta, splits, static)
    f = TrajectoryFile(tmp_path / "f.h5")
    assert f.meta.spatial_dims == ("x", "y")[:rank] and f.meta.frame_shape == (2, *RANKS[rank][1])
    for split, values in splits.items():
        np.testing.assert_array_equal(f.read(split), values)
        np.testing.assert_array_equal(f.read(split, 1, slice(2, 4)), values[1, 2:4])
        np.testing.assert_array_equal(np.concatenate(list(f.iter_chunks(split, 2))), values)
        np.testing.assert_array_equal(f.read_static(split, "k"), static[split]["k"])
    for got, given in zip(f.meta.coords, RANKS[rank][0].values()):
        np.testing.assert_array_equal(got, given)
    assert f.meta.field_scales == {"a": 2.0, "b": 1.0} and f.meta.parameters == {"seed": 1}
    with h5py.File(tmp_path / "f.h5") as h5:
        assert h5.attrs["n_spatial_dims"] == rank
        assert [d.decode() if isinstance(d, bytes) else d for d in h5["dimensions"].attrs["spatial_dims"]] == \
            list("xy"[:rank])
        assert sorted(h5["dimensions"]) == sorted(["time", *"xy"[:rank]])
        assert sorted(h5["boundary_conditions"]) == [f"{d}_wall" for d in "xy"[:rank]]
        assert h5["train/t0_fields/a"].shape == (5, 6, *RANKS[rank][1])


def test_boundaries_per_dim(tmp_path: Path) -> None:
    mixed = _meta(2, boundaries=("periodic", "WALL"))
    assert mixed.periodic is False and mixed.axis_periodic == (True, False)
    write_trajectories(tmp_path / "m.h5", mixed, {"train": _data(2, 2)})
    read = TrajectoryFile(tmp_path / "m.h5").meta
    assert read.bc_types == ("PERIODIC", "WALL") and read.periodic is False
    with h5py.File(tmp_path / "m.h5") as h5:
        assert sorted(h5["boundary_conditions"]) == ["x_periodic", "y_wall"]
        assert h5["boundary_conditions/y_wall"].attrs["bc_type"] == "WALL"
    line = _meta(1, boundaries=("PERIODIC",))
    assert line.periodic is True
    write_trajectories(tmp_path / "p.h5", line, {"train": _data(1, 2)})
    read = TrajectoryFile(tmp_path / "p.h5").meta
    assert read.periodic is True and read.boundaries is None and read.bc_types == ("PERIODIC",)
    assert _meta(1, periodic=True).bc_types == ("PERIODIC",) and _meta(0).bc_types == ()


@pytest.mark.parametrize("kwargs,match", [
    ({"boundaries": ("PERIODIC",)}, "per spatial dim"),
    ({"boundaries": ("PERIODIC", "ROUND")}, "per spatial dim"),
    ({"boundaries": ("WALL", "PERIODIC"), "periodic": True}, "periodic=True but"),
])
def test_bad_boundaries_are_refused(kwargs, match) -> None:
    with pytest.raises(StochliftError, match=match):
        _meta(2, **kwargs)


def test_vectors_cannot_be_periodic_and_y_needs_x() -> None:
    with pytest.raises(StochliftError, match="vectors have no spatial dims"):
        _meta(0, periodic=True)
    with pytest.raises(StochliftError, match="needs a first one"):
        TrajectoryMeta("s", "generic", ("a",), np.arange(3.0), y=np.arange(4.0))


def test_smooth_input_noise_on_a_line() -> None:
    white = torch.randn(4000, 1, 1, 32, generator=torch.Generator().manual_seed(0))
    smooth = smooth_field(white, 2.0, spatial_dims=1)
    assert smooth.std().item() == pytest.approx(1.0, abs=0.02)
    # a Gaussian filter of std l gives the correlation exp(-r^2 / (4 l^2)) at a distance of r points
    for r in (1, 2, 4):
        assert (smooth * torch.roll(smooth, r, dims=-1)).mean().item() == pytest.approx(np.exp(-(r**2) / 16), abs=0.03)
    noise = perturbation(torch.zeros(3, 2, 1, 32), 0.5, seed=0, step=1, length=2.0)  # a window of 1-D frames
    assert noise.shape == (3, 2, 1, 32) and torch.equal(noise[:, 0], noise[:, 1])
    lag1 = (noise[:, 0] * torch.roll(noise[:, 0], 1, dims=-1)).mean() / noise[:, 0].pow(2).mean()
    assert lag1 > 0.5  # smooth along x (white noise: about 0)
    vectors = torch.zeros(3, 2, 4)
    assert perturbation(vectors, 0.5, seed=0, step=1, length=2.0).shape == (3, 2, 4)


@pytest.mark.parametrize("rank", [0, 1, 2])
def test_train_and_sample_from_a_file_of_each_rank(tmp_path: Path, rank: int) -> None:
    _, spatial, backbone = RANKS[rank]
    meta = _meta(rank, periodic=rank == 1)
    write_trajectories(tmp_path / "data.h5", meta, {"train": _data(rank, 6), "test": _data(rank, 3, seed=1)})
    options = {"hidden": 16, "layers": 2} if backbone == "mlp" else {"depths": [8, 16], "mid_blocks": 1,
                                                                       "embed_width": 16, "groups": 4}
    config = tiny_config(tmp_path / "data.h5", f"model.backbone={backbone}", f"model.options={options}",
                         "model.window=2", "train.input_noise=0.1", "train.input_noise_length=1.0")
    result = train(config, tmp_path / "run", progress=False)
    assert result.config.model.frame_shape == [2, *spatial]
    if backbone != "mlp":
        assert result.config.model.options["periodic"] is (rank == 1)  # follows the data's boundaries
    out = sample_to_file(tmp_path / "run", tmp_path / "samples.h5", trajectories=5, frames=8, initial_count=2,
                         progress=False)
    samples = TrajectoryFile(out)
    assert samples.splits == {"generated": 5} and samples.meta.frame_shape == (2, *spatial)
    assert samples.meta.frames == 8 and samples.meta.bc_types == meta.bc_types
    values = samples.read("generated")
    assert values.shape == (5, 8, 2, *spatial) and np.isfinite(values).all()
    test = TrajectoryFile(tmp_path / "data.h5").read("test")
    np.testing.assert_array_equal(values[:, :2], test[np.arange(5) % 3, :2])  # the given frames, kept
    assert not np.allclose(values[0, 2:], values[3, 2:])  # same start (row 0 and 3), different labels


@pytest.mark.parametrize("frame,given", [
    ([4], (3, 4)),  # the frames axis left out
    ([4], (3, 1, 5)),  # another vector size: torch's "mat1 and mat2 shapes cannot be multiplied" before
    ([2, 16], (3, 1, 2, 8)),
    ([1, 8, 8], (3, 2, 1, 8, 9)),
])
def test_rollout_from_initial_frames_of_the_wrong_shape_names_both_shapes(frame, given) -> None:
    from stochlift.config import ModelConfig
    from stochlift.lifting.generator import build_model
    from stochlift.lifting.rollout import rollout

    backbone = {1: "mlp", 2: "unet1d", 3: "unet"}[len(frame)]
    options = {} if backbone == "mlp" else {"depths": [8, 16], "embed_width": 16, "groups": 4}
    model = build_model(ModelConfig(backbone=backbone, window=2, label_dim=3, residual_scale=1.0, frame_shape=frame,
                                    options=options))
    expected = f"[N, k, {', '.join(map(str, frame))}]"
    with pytest.raises(StochliftError, match=rf"initial frames of shape \[{', '.join(map(str, given))}\] given; "
                                             rf"the model expects {re.escape(expected)}"):
        rollout(model, np.zeros(given, np.float32), frames=4)
    assert rollout(model, np.zeros((3, 1, *frame), np.float32), frames=4).shape == (3, 4, *frame)
