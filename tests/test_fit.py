"""The three-line Python path (stochlift.fit / FittedGenerator.sample / stochlift.score) on a small
4-variable linear-Gaussian AR(1) process sampled exactly, and its one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import stochlift
from stochlift.errors import StochliftError
from stochlift.lifting.recipe import parse_budget

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DIM = 4
A = 0.8 * np.eye(DIM) + 0.1 * np.diag(np.ones(DIM - 1), 1)  # stable: eigenvalues 0.8
S = 0.3 * np.eye(DIM) + 0.05 * np.tril(np.ones((DIM, DIM)), -1)
X0 = np.array([1.0, -0.5, 0.5, 0.0])


def ar1(n: int, frames: int, seed: int) -> np.ndarray:
    """[n, frames, 4] of x_{t+1} = A x_t + S eps from the shared start X0, sampled exactly."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, frames, DIM))
    x[:, 0] = X0
    for t in range(frames - 1):
        x[:, t + 1] = x[:, t] @ A.T + rng.normal(size=(n, DIM)) @ S.T
    return x.astype(np.float32)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> stochlift.FittedGenerator:
    out = tmp_path_factory.mktemp("fit") / "run"
    return stochlift.fit(ar1(256, 12, seed=0), overrides=["train.steps=300"], out=out, progress=False)


@pytest.mark.slow
def test_fit_sample_score(fitted: stochlift.FittedGenerator) -> None:
    truth = ar1(256, 12, seed=1)
    ens = fitted.sample(X0, frames=12, n=256, seed=3)
    assert ens.shape == (256, 12, DIM) and np.isfinite(ens).all()
    np.testing.assert_allclose(ens[:, 0], np.tile(X0, (256, 1)), atol=1e-6)  # the given start comes first
    spread = ens[:, 1:].std(axis=0).mean() / truth[:, 1:].std(axis=0).mean()
    assert spread > 0.5, spread  # not collapsed to the conditional mean (d = 0 gives 0)
    scores = stochlift.score(ens, truth)
    ratios = scores.ratios()
    assert {"energy_score", "sliced_w2"} <= set(ratios)
    assert all(r is None or np.isfinite(r) for r in ratios.values())
    assert 0 < ratios["energy_score"] < 5 and 0 < ratios["sliced_w2"] < 20
    assert "ratio" in scores.summary()


@pytest.mark.slow
def test_fit_records_the_recipe_in_its_run(fitted: stochlift.FittedGenerator) -> None:
    assert fitted.config.model.backbone == "mlp" and fitted.config.train.steps == 300
    assert fitted.config.train.warmup_steps < 300  # the schedule follows the overridden steps
    recipe = json.loads((fitted.run_dir / "recipe.json").read_text())
    assert any(c["setting"] == "model.label_dim" for c in recipe["choices"])
    assert (fitted.run_dir / "config.yaml").is_file()


@pytest.mark.slow
def test_sample_from_histories(fitted: stochlift.FittedGenerator) -> None:
    history = ar1(8, 3, seed=2)
    assert fitted.sample(history[0], frames=5, n=4).shape == (4, 5, DIM)  # one history [k, D] shared
    assert fitted.sample(history, frames=5, n=8).shape == (8, 5, DIM)  # one per member [n, k, D]


@pytest.mark.slow
@pytest.mark.parametrize("x0", [np.zeros(3), np.zeros((2, 2, 3)), np.zeros((2, 1, DIM))])
def test_sample_refuses_a_wrong_start(fitted: stochlift.FittedGenerator, x0: np.ndarray) -> None:
    with pytest.raises(StochliftError) as info:
        fitted.sample(x0, frames=5, n=4)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("budget", "seconds"), [("90s", 90.0), ("10m", 600.0), ("1.5h", 5400.0), (30, 30.0),
                                                 (None, None)])
def test_parse_budget(budget, seconds) -> None:
    assert parse_budget(budget) == seconds


@pytest.mark.parametrize("budget", ["ten minutes", "0m", "-5s", 0, float("inf")])
def test_a_bad_budget_is_one_line(budget) -> None:
    with pytest.raises(StochliftError, match="budget"):
        parse_budget(budget)


def test_fit_refuses_bad_data_in_one_line() -> None:
    with pytest.raises(StochliftError, match=r"\[N, T, \*state\]"):
        stochlift.fit(np.zeros((4, 3)), progress=False)
    with pytest.raises(StochliftError, match="at least 2 frames"):
        stochlift.fit(np.zeros((4, 1, 2)), progress=False)


def test_a_budget_too_small_is_refused(tmp_path) -> None:
    with pytest.raises(StochliftError, match="affords only"):
        stochlift.fit(ar1(16, 4, seed=0), budget=0.001, out=tmp_path / "run", progress=False)
