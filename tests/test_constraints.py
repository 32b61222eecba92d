"""Constraints on generated frames: the Flow water balance, alone, inside rollouts and through sampling."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_UNET, tiny_config
from stochlift.config import ModelConfig
from stochlift.data.flow import FlowParams, fractional_flow
from stochlift.data.flow_datasets import make_flow_dataset
from stochlift.data.trajectories import TrajectoryFile
from stochlift.errors import StochliftError
from stochlift.lifting.generator import build_model
from stochlift.lifting.rollout import rollout, sample_to_file
from stochlift.lifting.train import train
from stochlift.problems import constraint_for
from stochlift.problems.flow import WaterBalance, water_balance_for

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def flow_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("flow") / "flow.h5"
    return make_flow_dataset(path, seed=0, workers=1, trajectories=6, frames=8, size=12, progress=False)


def _increments(frames: np.ndarray) -> np.ndarray:
    """[N, T-1] water added per step, in saturation x cells."""
    return np.diff(frames.sum(axis=(-3, -2, -1)), axis=1)


def test_water_balance_reads_the_wells_from_the_flow_metadata(flow_file: Path):
    balance = water_balance_for(TrajectoryFile(flow_file).meta)
    assert balance.producer == (11, 11)
    np.testing.assert_allclose(balance.inflow, 0.1 * 144)  # rate 1 x 0.7 / 7 frames, unit square, porosity 1


def test_true_steps_are_almost_fixed_points(flow_file: Path):
    truth = torch.from_numpy(TrajectoryFile(flow_file).read("test"))
    balance = water_balance_for(TrajectoryFile(flow_file).meta)
    before, after = truth[:, :-1].flatten(0, 1), truth[:, 1:].flatten(0, 1)
    projected = balance(before, after)
    # the trapezoid estimate of the producer's share misses the true change by a little only (on these 7
    # coarse steps by up to 13 % of a step's inflow; 0.1 % on the quick data set's 49 steps)
    assert (projected - after).norm() < 0.1 * (after - before).norm()
    np.testing.assert_allclose((projected - before).sum((1, 2, 3)), balance.target(before, after), atol=1e-4)


def test_a_bad_step_is_moved_onto_the_balance_and_into_the_bounds():
    params = FlowParams(mu_w=1.0, mu_o=2.0, swc=0.1, sor=0.05)
    balance = WaterBalance(inflow=3.0, producer=(7, 7), params=params)
    generator = torch.Generator().manual_seed(0)
    before = 0.1 + 0.5 * torch.rand(5, 1, 8, 8, generator=generator)
    proposed = before + 0.3 * torch.randn(5, 1, 8, 8, generator=generator)  # too much water, out of bounds
    after = balance(before, proposed)
    assert after.min() >= 0.1 and after.max() <= 0.95
    added = (after - before).sum((1, 2, 3))
    np.testing.assert_allclose(added, balance.target(before, proposed), atol=1e-3)
    s_end = proposed[:, 0, 7, 7].clamp(0.1, 0.95).numpy()
    expected = 3.0 * (1 - 0.5 * (fractional_flow(before[:, 0, 7, 7].numpy(), params) + fractional_flow(s_end, params)))
    np.testing.assert_allclose(balance.target(before, proposed), expected, rtol=1e-5)
    # where the proposal loses water, the losses stay and only the gains are scaled
    lost = proposed < before
    np.testing.assert_allclose(after[lost], torch.maximum(proposed, torch.tensor(0.1))[lost], atol=1e-6)


def test_rollout_with_the_balance_adds_the_wells_water_every_step(flow_file: Path):
    data = TrajectoryFile(flow_file)
    torch.manual_seed(0)
    model = build_model(ModelConfig(window=3, label_dim=4, frame_shape=[1, 12, 12], residual_scale=1.0,
                                    options=TINY_UNET))
    balance = water_balance_for(data.meta)
    start = data.read("test")[:, :1]
    free = rollout(model, start, 8, seed=1)
    kept = rollout(model, start, 8, seed=1, constraint=balance)
    assert kept.min() >= 0 and kept.max() <= 1
    assert kept[:, :, 0, 11, 11].max() == 0  # no water at the producer: every step owes the full inflow
    gained = _increments(kept)
    np.testing.assert_allclose(gained[:, :4], balance.inflow, rtol=1e-4)
    assert gained.max() < balance.inflow * (1 + 1e-4)  # later, too few cells have room left for all of it
    assert np.abs(_increments(free)[:, :4] - balance.inflow).max() > 0.2 * balance.inflow  # the net alone is off


def test_sampling_uses_the_runs_constraint_unless_told_otherwise(flow_file: Path, tmp_path: Path):
    config = tiny_config(flow_file, "model.constraint=water_balance", "train.steps=2")
    train(config, tmp_path / "run", progress=False)
    kept = sample_to_file(tmp_path / "run", tmp_path / "kept.h5", trajectories=3, progress=False)
    free = sample_to_file(tmp_path / "run", tmp_path / "free.h5", trajectories=3, progress=False, constraint="none")
    kept, free = TrajectoryFile(kept), TrajectoryFile(free)
    assert kept.meta.parameters["sampling_constraint"] == "water_balance"
    assert free.meta.parameters["sampling_constraint"] == "none"
    inflow = water_balance_for(kept.meta).inflow
    assert np.abs(_increments(kept.read("generated")) - inflow).max() < 0.5 * inflow
    assert not np.array_equal(kept.read("generated"), free.read("generated"))


def test_water_balance_needs_flow_data(tiny_data: Path):
    with pytest.raises(StochliftError, match="water_balance needs a Flow data file"):
        constraint_for("water_balance", TrajectoryFile(tiny_data).meta)
    assert constraint_for("none", TrajectoryFile(tiny_data).meta) is None
    with pytest.raises(StochliftError, match="model.constraint must be one of"):
        ModelConfig(constraint="mass").validate()
