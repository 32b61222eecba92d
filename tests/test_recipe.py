"""The automatic recipe (stochlift.lifting.recipe): the data summary, the choices, the warnings, and one
end-to-end check that the recipe alone gives a calibrated ensemble on a small linear-Gaussian process."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from stochlift.config import RunConfig
from stochlift.errors import StochliftError
from stochlift.lifting import recipe
from stochlift.lifting.generator import build_model
from stochlift.lifting.pairs import ArraySource
from stochlift.lifting.recipe import DataSummary, auto_recipe, check_recipe, summarize

THETA = 0.3
A = 0.9 * np.array([[np.cos(THETA), -np.sin(THETA)], [np.sin(THETA), np.cos(THETA)]])
S = np.array([[0.3, 0.0], [0.15, 0.2]])


def linear_gaussian(n: int, frames: int, seed: int, shared: bool = False) -> np.ndarray:
    """[n, frames, 2] of x_{t+1} = A x_t + S eps (the process of test_linear_gaussian.py)."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, frames, 2))
    x[:, 0] = np.array([1.0, 0.5]) if shared else rng.normal(size=(n, 2))
    for t in range(frames - 1):
        x[:, t + 1] = x[:, t] @ A.T + rng.normal(size=(n, 2)) @ S.T
    return x.astype(np.float32)


def oscillator(n: int, frames: int, seed: int) -> np.ndarray:
    """[n, frames, 1]: the position of a noisy oscillator, x_{t+1} = 2 cos(w) x_t - x_{t-1} + noise, whose
    next value depends on the last two (the velocity is not observed)."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, frames))
    x[:, 0], x[:, 1] = rng.normal(size=n), rng.normal(size=n)
    for t in range(1, frames - 1):
        x[:, t + 1] = 2 * np.cos(0.4) * x[:, t] - 0.98 * x[:, t - 1] + 0.05 * rng.normal(size=n)
    return x[:, :, None].astype(np.float32)


def summary(**changes) -> DataSummary:
    base = DataSummary(frame_shape=(4,), trajectories=256, frames=32, shared_start=False, value_range=(-3.0, 3.0),
                       history_gains=(0.0, 0.0), noise_rank=4)
    return dataclasses.replace(base, **changes)


def chosen(choices, setting: str):
    return next(c for c in choices if c.setting == setting)


# ------------------------------------------------------------------------------------------ the summary


def test_summary_of_vectors_reads_sizes_start_and_range() -> None:
    data = linear_gaussian(64, 12, seed=0, shared=True)
    s = summarize(ArraySource(data))
    assert (s.frame_shape, s.trajectories, s.frames, s.pairs) == ((2,), 64, 12, 64 * 11)
    assert s.shared_start and s.spatial_rank == 0 and not s.unit_range
    assert s.value_range == (pytest.approx(float(data.min())), pytest.approx(float(data.max())))
    assert not summarize(ArraySource(linear_gaussian(64, 12, seed=0))).shared_start


def test_history_test_finds_the_hidden_velocity_and_no_more() -> None:
    markov = summarize(ArraySource(linear_gaussian(128, 24, seed=1)))
    assert max(markov.history_gains) < recipe.HISTORY_GAIN  # a Markov state: history does not help
    second_order = summarize(ArraySource(oscillator(128, 24, seed=1)))
    assert second_order.history_gains[0] > 0.5  # x_{t-1} gives the velocity
    assert auto_recipe(markov)[0].model.window == 1
    assert auto_recipe(second_order)[0].model.window == 2


def test_noise_rank_counts_the_directions_the_noise_drives() -> None:
    rng = np.random.default_rng(3)
    n, frames, dim = 128, 16, 6
    x = np.zeros((n, frames, dim))
    x[:, 0] = rng.normal(size=(n, dim))
    for t in range(frames - 1):  # the noise drives two of six coordinates
        x[:, t + 1] = 0.9 * x[:, t]
        x[:, t + 1, :2] += 0.3 * rng.normal(size=(n, 2))
    assert summarize(ArraySource(x.astype(np.float32))).noise_rank == 2
    assert summarize(ArraySource(linear_gaussian(128, 16, seed=2))).noise_rank == 2


def test_summary_of_fields_and_unit_values() -> None:
    rng = np.random.default_rng(0)
    fields = rng.uniform(0, 1, size=(8, 5, 1, 16)).astype(np.float32)
    s = summarize(ArraySource(fields), periodic=True)
    assert s.spatial_rank == 1 and s.unit_range and s.periodic and s.state_size == 16
    assert any(c.setting == "model.loss" and "bce" in c.reason for c in auto_recipe(s)[1])


def test_summary_needs_two_frames() -> None:
    with pytest.raises(StochliftError, match="at least 2 frames"):
        summarize(ArraySource(np.zeros((4, 1, 3), dtype=np.float32)))


# ------------------------------------------------------------------------------------------- the choices


@pytest.mark.parametrize(("shape", "backbone"), [((4,), "mlp"), ((1, 32), "unet1d"), ((2, 16, 16), "unet")])
def test_backbone_follows_the_state_rank(shape, backbone) -> None:
    config, choices = auto_recipe(summary(frame_shape=shape))
    assert config.model.backbone == backbone == chosen(choices, "model.backbone").value
    assert isinstance(config, RunConfig)


def test_unsupported_rank_is_a_user_error() -> None:
    with pytest.raises(StochliftError, match="no backbone"):
        auto_recipe(summary(frame_shape=(1, 4, 4, 4)))


def test_learning_rate_and_batch_by_backbone() -> None:
    mlp, _ = auto_recipe(summary())
    unet, _ = auto_recipe(summary(frame_shape=(1, 16, 16)))
    assert mlp.train.lr == recipe.MLP["lr"] and mlp.train.batch_size == recipe.MLP["batch"]
    assert unet.train.lr == recipe.UNET["lr"] and unet.train.batch_size == recipe.UNET["batch"]
    assert mlp.train.lr > 1e-3  # the old default 1e-4 collapses an MLP's ensemble (issue 20)


def test_every_choice_has_a_reason_and_lands_in_the_config() -> None:
    config, choices = auto_recipe(summary(frame_shape=(1, 16, 16), shared_start=True, history_gains=(0.7, 0.3, 0.05)))
    flat = config.to_dict()
    for c in choices:
        assert c.reason
        section, key = c.setting.split(".", 1)
        value = flat[section]["options"][key.removeprefix("options.")] if key.startswith("options.") \
            else flat[section][key]
        if c.setting != "model.loss":  # the BCE line is a hint, not a choice
            assert value == c.value, c
    assert config.model.window == 3 and config.model.history_padding == "zeros" and config.train.start_weight > 1


def test_warmup_is_a_small_share_of_the_steps() -> None:
    config, _ = auto_recipe(summary())
    assert 0 < config.train.warmup_steps < config.train.steps / 10


# ---------------------------------------------------------------------------------------------- budget


def test_budget_caps_the_steps_and_check_warns() -> None:
    s = summary(trajectories=4096)
    need = auto_recipe(s)[0].train.steps
    config, choices = auto_recipe(s, budget_seconds=60, seconds_per_step=0.1)
    assert config.train.steps == int(recipe.BUDGET_SHARE * 60 / 0.1) < need
    assert "budget" in chosen(choices, "train.steps").reason
    assert any("fewer than" in w for w in check_recipe(config, s))
    roomy, _ = auto_recipe(s, budget_seconds=1e6, seconds_per_step=0.001)
    assert roomy.train.steps == need and check_recipe(roomy, s) == []


def test_budget_needs_a_measured_step_time() -> None:
    with pytest.raises(StochliftError, match="seconds per training step"):
        auto_recipe(summary(), budget_seconds=600)


# --------------------------------------------------------------------------------------------- warnings


def test_check_recipe_names_settings_that_cannot_work() -> None:
    s = summary()
    config, _ = auto_recipe(s)
    assert check_recipe(config, s) == []
    config.model.label_dim = 0
    config.train.warmup_steps = config.train.steps
    warnings = check_recipe(config, s)
    assert any("label_dim=0" in w for w in warnings)
    assert any("warm-up" in w for w in warnings)


# ------------------------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_the_recipe_alone_gives_a_calibrated_spread(one_torch_thread, tmp_path) -> None:
    """256 trajectories of 16 frames, nothing tuned: the one- and six-step spreads from a fixed start are within
    20% of the exact law's (measured 0.86-0.94 over three seeds; 64 trajectories give 0.79-0.91; the old default
    lr 1e-4 gave 0.11, d = 0 gives 0)."""
    from stochlift.lifting.rollout import rollout
    from stochlift.lifting.train import train

    data = linear_gaussian(256, 16, seed=0)
    s = summarize(ArraySource(data))
    config, _ = auto_recipe(s)
    assert check_recipe(config, s) == []
    model = train(config, tmp_path / "run", source=ArraySource(data), progress=False).model
    x0 = np.array([1.0, 0.5])
    samples = rollout(model, np.tile(x0, (2000, 1, 1)), 7, seed=1, batch_size=2000)
    for k in (1, 6):
        cov = sum(np.linalg.matrix_power(A, j) @ S @ S.T @ np.linalg.matrix_power(A, j).T for j in range(k))
        ratio = samples[:, k].std(axis=0) / np.sqrt(np.diag(cov))
        assert np.all((ratio > 0.8) & (ratio < 1.25)), (k, ratio)


def test_noise_independent_from_point_to_point_gets_label_planes() -> None:
    """KPZ-like data (the one-step noise spans most of the field's points) get the label laid out as planes of
    the field; smooth noise (a few directions) keeps FiLM alone."""
    white = summary(frame_shape=(1, 64), noise_rank=51)
    config, choices = auto_recipe(white)
    assert config.model.options["label_planes"] == 8 and config.model.label_dim == 8 * 64
    assert "51 of 64" in chosen(choices, "model.options.label_planes").reason
    config.model.frame_shape = [1, 64]  # training fills it from the data
    build_model(config.model)  # a label of k planes of the field is what the backbone accepts
    smooth = summary(frame_shape=(1, 64), noise_rank=14)
    config, _ = auto_recipe(smooth)
    assert "label_planes" not in config.model.options and config.model.label_dim == 512
    field = summary(frame_shape=(1, 32, 32), noise_rank=600)
    config, _ = auto_recipe(field)
    assert config.model.options["label_planes"] == 1 and config.model.label_dim == 1024


def test_a_label_dimension_of_zero_drops_the_recipes_label_planes() -> None:
    x = np.random.default_rng(0).normal(size=(16, 6, 1, 16)).astype(np.float32)
    x[:, 1:] = x[:, :1] + np.cumsum(x[:, 1:], axis=1)  # independent noise at every point: label planes chosen
    planes = recipe.recipe_for_source(ArraySource(x))
    assert planes.config.model.options.get("label_planes")
    regressor = recipe.recipe_for_source(ArraySource(x), overrides=["model.label_dim=0"])
    assert regressor.config.model.label_dim == 0 and "label_planes" not in regressor.config.model.options
