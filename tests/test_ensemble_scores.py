"""Ensemble scores (fair CRPS, energy score, spread-skill, rank histogram, sliced W2) and their streaming
evaluation in the two settings: distribution matching from a shared initial condition, and forecasting."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats

from conftest import TINY_UNET, smooth_trajectories, tiny_meta
from stochlift.config import ModelConfig
from stochlift.data.trajectories import write_trajectories
from stochlift.errors import StochliftError
from stochlift.evaluation.forecast import forecast_scores, write_forecast_samples
from stochlift.lifting.generator import build_model
from stochlift.metrics.distribution import (
    distribution_scores,
    distribution_scores_files,
)
from stochlift.metrics.ensemble import (
    _pool_ranks,
    crps_fair,
    crps_fair_unpaired,
    energy_distance,
    energy_score_fair,
    energy_score_fair_unpaired,
    ensemble_ranks,
    random_directions,
    rank_histogram,
    sliced_wasserstein2,
    spread_skill_ratio,
)
from stochlift.metrics.forecast import forecast_scores_files

pytestmark = pytest.mark.usefixtures("one_torch_thread")

# ------------------------------------------------------------------------------- brute-force definitions


def crps_brute(x: np.ndarray, y: float) -> float:
    """The fair CRPS straight from its definition, O(M^2)."""
    m = len(x)
    return float(np.mean(np.abs(x - y)) - np.abs(x[:, None] - x[None, :]).sum() / (2 * m * (m - 1)))


def es_brute(x: np.ndarray, y: np.ndarray) -> float:
    m = len(x)
    pairs = np.linalg.norm(x[:, None] - x[None, :], axis=-1).sum()
    return float(np.linalg.norm(x - y, axis=-1).mean() - pairs / (2 * m * (m - 1)))


# --------------------------------------------------------------------------------------- CRPS and ES


@pytest.mark.parametrize("m", [2, 5, 17])
def test_crps_fair_matches_definition(m: int) -> None:
    rng = np.random.default_rng(m)
    x, y = rng.normal(size=(m, 3, 4)) * 2 + 5, rng.normal(size=(3, 4)) + 5
    got = crps_fair(x, y)
    assert got.shape == (3, 4)
    want = np.array([[crps_brute(x[:, i, j], y[i, j]) for j in range(4)] for i in range(3)])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("m", [2, 7, 20])
def test_crps_and_energy_score_match_scoringrules(m: int) -> None:
    sr = pytest.importorskip("scoringrules")
    rng = np.random.default_rng(100 + m)
    x, y = rng.normal(size=(m, 50)), rng.normal(size=50)
    want_crps = sr.crps_ensemble(y, x, m_axis=0, estimator="fair", backend="numpy")
    # atol: with M = 2 the fair CRPS is exactly 0 wherever the truth lies between the members
    np.testing.assert_allclose(crps_fair(x, y), want_crps, rtol=1e-6, atol=1e-12)
    # energy score: 6 cases of an 11-dimensional field; ours is [M, case, D], scoringrules' [case, M, D]
    fields, truth = rng.gamma(2.0, size=(m, 6, 11)), rng.gamma(2.0, size=(6, 11))
    want_es = sr.es_ensemble(truth, np.moveaxis(fields, 0, 1), m_axis=-2, v_axis=-1, estimator="fair",
                              backend="numpy")
    np.testing.assert_allclose(energy_score_fair(fields, truth), want_es, rtol=1e-6)


def test_energy_score_matches_definition_and_equals_crps_in_1d() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(9, 4, 6)), rng.normal(size=(4, 6))
    got = energy_score_fair(x, y)
    np.testing.assert_allclose(got, [es_brute(x[:, b], y[b]) for b in range(4)], rtol=1e-12)
    # a one-dimensional field: ||.|| is |.|, so the energy score is the CRPS
    np.testing.assert_allclose(energy_score_fair(x[..., None], y[..., None]), crps_fair(x, y), rtol=1e-12, atol=1e-15)


def test_scores_reject_bad_input() -> None:
    with pytest.raises(StochliftError, match="at least 2"):
        crps_fair(np.zeros((1, 3)), np.zeros(3))
    with pytest.raises(StochliftError, match="shape|M,"):
        crps_fair(np.zeros((4, 3)), np.zeros(2))
    with pytest.raises(StochliftError, match="NaN"):
        energy_score_fair(np.full((3, 2), np.nan), np.zeros(2))


def test_unpaired_scores_are_averages_of_paired_ones() -> None:
    rng = np.random.default_rng(4)
    # integer values make many ties between members and observations: the pooled sort must handle them
    g, r = rng.integers(0, 4, size=(11, 7)).astype(float), rng.integers(0, 4, size=(5, 7)).astype(float)
    want = np.mean([crps_fair(g, r[j]) for j in range(len(r))], axis=0)
    np.testing.assert_allclose(crps_fair_unpaired(g, r), want, rtol=1e-12, atol=1e-14)
    g, r = rng.normal(size=(9, 13)) + 3, rng.normal(size=(6, 13)) + 3
    np.testing.assert_allclose(crps_fair_unpaired(g, r), np.mean([crps_fair(g, y) for y in r], axis=0), rtol=1e-12)
    assert energy_score_fair_unpaired(g, r) == pytest.approx(np.mean([es_brute(g, y) for y in r]), rel=1e-10)
    d = lambda a, b: np.linalg.norm(a[:, None] - b[None], axis=-1)
    n, m = len(g), len(r)
    brute = 2 * d(g, r).mean() - d(g, g).sum() / (n * (n - 1)) - d(r, r).sum() / (m * (m - 1))
    assert energy_distance(g, r) == pytest.approx(brute, rel=1e-10)


# ------------------------------------------------------------------------------------------ spread-skill


def test_spread_skill_ratio_hand_example() -> None:
    # members 1 and 3, truth 4: variance (ddof 1) 2, ensemble-mean error 2 -> sqrt(2)/2 * sqrt(3/2)
    assert spread_skill_ratio([[1.0], [3.0]], [4.0]) == pytest.approx(math.sqrt(3) / 2, rel=1e-14)
    # two points: the means run over points before the square roots
    x, y = np.array([[0.0, 0.0], [2.0, 4.0]]), np.array([2.0, -1.0])  # variances 2, 8; errors 1, 3
    assert spread_skill_ratio(x, y) == pytest.approx(math.sqrt(5 / 5) * math.sqrt(1.5), rel=1e-14)
    assert math.isnan(spread_skill_ratio([[1.0], [1.0]], [1.0]))


def test_spread_skill_ratio_of_a_calibrated_gaussian_ensemble_is_one() -> None:
    # truth and 10 members i.i.d. N(0, 1) at 20,000 points: the variance and squared-error means have
    # relative standard errors ~0.5% and ~1%, so the ratio's is ~0.6%; the bound is 5 of them
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(10, 20_000)), rng.normal(size=20_000)
    assert spread_skill_ratio(x, y) == pytest.approx(1.0, abs=0.03)
    assert spread_skill_ratio(0.5 * x, y) == pytest.approx(0.5, abs=0.03)  # under-dispersed


# --------------------------------------------------------------------------------------- rank histogram


def test_rank_histogram_is_flat_when_calibrated_and_u_shaped_when_under_dispersed() -> None:
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(9, 20_000)), rng.normal(size=20_000)
    counts = rank_histogram(x, y, np.random.default_rng(0))
    assert counts.shape == (10,) and counts.sum() == 20_000
    assert stats.chisquare(counts).pvalue > 1e-3
    narrow = rank_histogram(0.5 * x, y, np.random.default_rng(0))
    assert stats.chisquare(narrow).pvalue < 1e-12
    assert narrow[0] + narrow[-1] > 3 * (narrow[4] + narrow[5])  # the truth falls outside the ensemble


def test_rank_ties_are_broken_at_random() -> None:
    counts = rank_histogram(np.zeros((4, 5000)), np.zeros(5000), np.random.default_rng(1))
    assert stats.chisquare(counts).pvalue > 1e-3  # all tied: uniform on 0..4
    ranks = ensemble_ranks(np.array([[0.0], [1.0], [1.0], [2.0]]), np.array([1.0]), np.random.default_rng(2))
    assert 1 <= ranks[0] <= 3


def test_pooled_ranks_equal_direct_comparisons() -> None:
    rng = np.random.default_rng(7)
    pool, values = rng.integers(0, 5, size=(12, 9)).astype(float), rng.integers(0, 5, size=(8, 9)).astype(float)
    direct = ensemble_ranks(np.broadcast_to(pool[:, None], (12, 8, 9)), values, np.random.default_rng(3))
    np.testing.assert_array_equal(_pool_ranks(pool, values, np.random.default_rng(3)), direct)


# Scores that are zero in exact arithmetic, or equal for two blockings of the same data, are compared with
# these tolerances, never exactly: they pass through matrix products (BLAS), whose rounding depends on the
# CPU, the kernel OpenBLAS picks (OPENBLAS_CORETYPE) and the shapes of the blocks.
ZERO = 1e-12  # absolute, for scores of order 1e-2 .. 1e1
SAME = 1e-9  # relative, between two blockings


def assert_same_scores(got: dict, want: dict) -> None:
    """Score dicts (numbers, lists of numbers or None) equal to a relative SAME (None where None)."""
    assert got.keys() == want.keys()
    for key, value in want.items():
        values, others = (value, got[key]) if isinstance(value, list) else ([value], [got[key]])
        assert [v is None for v in others] == [v is None for v in values], key
        pairs = [(o, v) for o, v in zip(others, values) if v is not None]
        assert [o for o, _ in pairs] == pytest.approx([v for _, v in pairs], rel=SAME, abs=ZERO), key


# -------------------------------------------------------------------------------------------- sliced W2


def test_sliced_w2_identical_sets_and_ordering() -> None:
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(40, 6)), rng.normal(size=(25, 6)) + 1
    # zero up to rounding: the projections are matrix products, whose last bits may depend on a row's place
    # in the matrix (BLAS kernels treat edge tiles apart; OPENBLAS_CORETYPE picks other kernels)
    assert sliced_wasserstein2(x, x) == pytest.approx(0.0, abs=ZERO)
    assert sliced_wasserstein2(x, x[rng.permutation(40)]) == pytest.approx(0.0, abs=ZERO)
    assert sliced_wasserstein2(x[rng.permutation(40)], y[rng.permutation(25)]) == pytest.approx(
        sliced_wasserstein2(x, y), rel=1e-12)
    assert sliced_wasserstein2(x, y) == pytest.approx(sliced_wasserstein2(y, x), rel=1e-12)


def test_sliced_w2_of_a_shift() -> None:
    rng = np.random.default_rng(9)
    d, v = 8, rng.normal(size=8) * 3
    x = rng.normal(size=(300, d))
    # the same sample shifted: every projection is shifted by theta . v, exactly
    theta = random_directions(d, 64, seed=4)
    assert sliced_wasserstein2(x, x + v, n_projections=64, seed=4) == pytest.approx(
        math.sqrt(np.mean((theta.T @ v) ** 2)), rel=1e-10)
    # two independent Gaussians N(0, I) and N(v, I): projected W2 is |theta . v|, mean square |v|^2 / D.
    # 4000 directions: the Monte Carlo error of the mean square is ~2%, ~1% on its root; the sampling error
    # of 1000 points per set adds well under 1% (|v|^2 / D ~ 9 against W2^2 ~ 0.01 of two N(0, 1) samples)
    x, y = rng.normal(size=(1000, d)), rng.normal(size=(1000, d)) + v
    assert sliced_wasserstein2(x, y, n_projections=4000, seed=1) == pytest.approx(
        np.linalg.norm(v) / math.sqrt(d), rel=0.05)


# ------------------------------------------------------------------------------- streaming, setting (a)


def _shared_start_file(path: Path, n: int, seed: int, scale: float = 1.0) -> np.ndarray:
    """n trajectories (5 frames, 8x8) that all start from one frame; returns the array written."""
    data = smooth_trajectories(n, frames=5, seed=seed) * scale
    data[:, 0] = smooth_trajectories(1, frames=5, seed=99)[0, 0]
    write_trajectories(path, tiny_meta(frames=5), {"test": data})
    return data


def test_distribution_scores_stream_and_agree_with_direct_computation(tmp_path: Path) -> None:
    truth = _shared_start_file(tmp_path / "truth.h5", 7, seed=1)
    generated = _shared_start_file(tmp_path / "gen.h5", 6, seed=2, scale=0.8)
    kwargs = dict(n_projections=32, rank_points=20, seed=3)
    big = distribution_scores_files(tmp_path / "truth.h5", tmp_path / "gen.h5", chunk_size=1000, **kwargs)
    small = distribution_scores_files(tmp_path / "truth.h5", tmp_path / "gen.h5", chunk_size=3, **kwargs)
    one_frame = distribution_scores_files(tmp_path / "truth.h5", tmp_path / "gen.h5", chunk_size=3,
                                          max_block_bytes=1, **kwargs)
    assert big.options["frames_per_block"] == 5 and one_frame.options["frames_per_block"] == 1
    memory = distribution_scores(generated, truth, time=np.linspace(0, 1, 5), **kwargs)
    for other in (small, one_frame, memory):  # other blocks: other matrix shapes, the same scores to rounding
        assert_same_scores(other.per_time, big.per_time)
        assert_same_scores(other.mean, big.mean)
        assert other.rank_histogram == big.rank_histogram  # ranks compare the data's own values: exact
    # per-time values are the pure functions applied to frame t
    g3, r3 = generated[:, 3].reshape(6, -1), truth[:, 3].reshape(7, -1)
    want_sw2 = sliced_wasserstein2(g3, r3, n_projections=32, seed=3)
    assert big.per_time["sliced_w2"][3] == pytest.approx(want_sw2, rel=1e-6)
    assert big.per_time["crps"][3] == pytest.approx(crps_fair_unpaired(g3, r3).mean(), rel=1e-6)
    assert big.per_time["spread_skill"][3] == pytest.approx(
        spread_skill_ratio(np.broadcast_to(g3[:, None], (6, 7, 64)), r3), rel=1e-6)
    # the shared initial frame: zero distance, and no rank counts from it
    assert big.per_time["sliced_w2"][0] == pytest.approx(0.0, abs=ZERO)
    assert big.per_time["spread_skill"][0] is None
    assert big.mean["crps"] == pytest.approx(np.mean(big.per_time["crps"][1:]))
    assert sum(big.rank_histogram) == 7 * 20 * 4 and len(big.rank_histogram) == 7
    assert big.rank_histogram_per_time[0].sum() == 0
    report = json.loads(json.dumps(big.to_dict()))
    assert report["setting"] == "distribution" and report["time"] == pytest.approx(np.linspace(0, 1, 5).tolist())


# ------------------------------------------------------------------------------------ setting (b) models


class OracleModel(torch.nn.Module):
    """The next frame is the label itself: fields i.i.d. N(0, 1) at every point, like the oracle truth."""

    window, history_padding = 1, "repeat"

    def __init__(self, frame_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.frame_shape = frame_shape
        self.label_dim = int(np.prod(frame_shape))
        self.noise_shape = (self.label_dim,)

    def forward(self, window: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
        return xi.reshape(len(xi), *self.frame_shape)


def _oracle_truth(path: Path, n: int, frames: int = 4) -> None:
    rng = np.random.default_rng(10)
    data = rng.normal(size=(n, frames, 1, 8, 8)).astype(np.float32)
    write_trajectories(path, tiny_meta(frames=frames), {"test": data})


def test_forecast_oracle_is_calibrated_and_streams(tmp_path: Path) -> None:
    truth = tmp_path / "truth.h5"
    _oracle_truth(truth, n=30)
    oracle = OracleModel((1, 8, 8))
    scores = forecast_scores(oracle, truth, samples_per_trajectory=8, seed=1, batch_size=48, chunk_size=1000)
    # 30 truths x 64 points x 3 generated frames = 5760 i.i.d. cases: ratio standard error ~1%; bound 8%
    assert scores.mean["spread_skill"] == pytest.approx(1.0, abs=0.08)
    assert stats.chisquare(scores.rank_histogram).pvalue > 1e-3  # i.i.d. points: the chi-square is valid
    assert sum(scores.rank_histogram) == 30 * 64 * 3
    # the Gaussian limit of the CRPS: E CRPS_fair(N(0,1), y ~ N(0,1)) = 1/sqrt(pi)
    assert scores.mean["crps"] == pytest.approx(1 / math.sqrt(math.pi), rel=0.05)
    assert scores.per_time["crps"][0] == pytest.approx(0.0, abs=ZERO)  # the given frame is the truth itself
    # chunking is a memory knob only; the file variant scores exactly the same samples
    chunked = forecast_scores(oracle, truth, samples_per_trajectory=8, seed=1, batch_size=48, chunk_size=7)
    samples = write_forecast_samples(oracle, truth, tmp_path / "forecast.h5", samples_per_trajectory=8, seed=1,
                                     batch_size=48)
    from_file = forecast_scores_files(truth, samples, chunk_size=4)
    for other in (chunked, from_file):
        assert other.rank_histogram == scores.rank_histogram
        for name, values in scores.per_time.items():
            np.testing.assert_allclose(np.array(other.per_time[name], float), np.array(values, float), rtol=1e-12)
    assert json.loads(json.dumps(scores.to_dict()))["setting"] == "forecast"


def test_forecast_of_a_deterministic_model_has_zero_spread(tmp_path: Path) -> None:
    data = smooth_trajectories(4, frames=5, seed=3)
    write_trajectories(tmp_path / "truth.h5", tiny_meta(frames=5), {"test": data})
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="unet", window=2, label_dim=0, output="residual", residual_scale=0.5,
                                    frame_shape=[1, 8, 8], options=dict(TINY_UNET)))
    scores = forecast_scores(model, tmp_path / "truth.h5", samples_per_trajectory=3, batch_size=6, chunk_size=3)
    assert scores.mean["spread_skill"] == pytest.approx(0.0, abs=ZERO)
    assert scores.per_time["spread"] == pytest.approx([0.0] * len(scores.per_time["spread"]), abs=ZERO)
    assert all(s > 0 for s in scores.per_time["skill"][1:])
    # all K members equal: the CRPS is the mean absolute error and every rank is 0 or K
    counts = scores.rank_histogram
    assert counts[1] == counts[2] == 0 and counts[0] + counts[3] == 4 * 64 * 4


def test_forecast_file_convention_is_checked(tmp_path: Path) -> None:
    _oracle_truth(tmp_path / "truth.h5", n=3)
    _oracle_truth(tmp_path / "gen.h5", n=5)
    with pytest.raises(StochliftError, match="3 truths x 2 samples need 6"):
        forecast_scores_files(tmp_path / "truth.h5", tmp_path / "gen.h5", samples_per_trajectory=2)
    with pytest.raises(StochliftError, match="how many samples"):
        forecast_scores_files(tmp_path / "truth.h5", tmp_path / "gen.h5")
    with pytest.raises(StochliftError, match=">= 2 samples"):
        forecast_scores(OracleModel((1, 8, 8)), tmp_path / "truth.h5", samples_per_trajectory=1)
