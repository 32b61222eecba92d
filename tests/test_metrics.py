"""Tests for the 1-D Wasserstein distance, the quantities of interest and the streaming physics metrics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from stochlift.errors import StochliftError
from stochlift.metrics.physics import PhysicsEvaluator, evaluate_physics
from stochlift.metrics.quantities import mass
from stochlift.metrics.wasserstein import wasserstein_1d, wasserstein_1d_per_column
from stochlift.problems.wave import RingCrossing, crossing_time, ring_mask

# ------------------------------------------------------------------------------------------ wasserstein


def w2_by_expansion(a: np.ndarray, b: np.ndarray) -> float:
    """Independent W2: repeat each sorted value so both samples have lcm(n, m) atoms of equal weight."""
    n, m = len(a), len(b)
    g = math.gcd(n, m)
    a_big = np.repeat(np.sort(a), m // g)
    b_big = np.repeat(np.sort(b), n // g)
    return float(np.sqrt(np.mean((a_big - b_big) ** 2)))


def test_w2_shift_is_exactly_the_shift() -> None:
    a = np.random.default_rng(0).normal(size=100)
    assert wasserstein_1d(a, a + 0.7) == pytest.approx(0.7, abs=1e-12)
    assert wasserstein_1d(a, a - 2.5) == pytest.approx(2.5, abs=1e-12)


def test_w2_ignores_order_and_is_symmetric() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=50), rng.exponential(size=50)
    assert wasserstein_1d(a, rng.permutation(a)) == 0.0
    assert wasserstein_1d(a, b) == pytest.approx(wasserstein_1d(b, a), rel=1e-14)
    assert wasserstein_1d(a, b) == pytest.approx(np.sqrt(np.mean((np.sort(a) - np.sort(b)) ** 2)), rel=1e-12)


def test_w2_unequal_sizes_closed_forms() -> None:
    a = np.random.default_rng(2).normal(size=37)
    assert wasserstein_1d(a, np.concatenate([a, a])) == pytest.approx(0.0, abs=1e-12)
    assert wasserstein_1d([0.0], [0.0, 1.0]) == pytest.approx(math.sqrt(0.5), rel=1e-12)
    # a point mass against a sample: W2 is the root mean square distance to the point
    b = np.random.default_rng(3).normal(size=41)
    assert wasserstein_1d([0.3], b) == pytest.approx(np.sqrt(np.mean((b - 0.3) ** 2)), rel=1e-12)


@pytest.mark.parametrize("seed", range(8))
def test_w2_unequal_sizes_matches_expansion(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, m = rng.integers(1, 60, size=2)
    a, b = rng.normal(size=n), rng.gamma(2.0, size=m) - 1.0
    assert wasserstein_1d(a, b) == pytest.approx(w2_by_expansion(a, b), rel=1e-10, abs=1e-12)


def test_w2_per_column_matches_scalar() -> None:
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(23, 6)), rng.normal(1.0, 2.0, size=(17, 6))
    per_column = wasserstein_1d_per_column(a, b)
    assert per_column.shape == (6,)
    for j in range(6):
        assert per_column[j] == pytest.approx(wasserstein_1d(a[:, j], b[:, j]), rel=1e-12)
        assert per_column[j] == pytest.approx(w2_by_expansion(a[:, j], b[:, j]), rel=1e-10)


@pytest.mark.parametrize(
    "a, b",
    [([], [1.0]), ([1.0], []), ([np.nan, 1.0], [1.0]), ([1.0], [np.inf]), (np.zeros((2, 2)), [1.0])],
)
def test_w2_rejects_bad_input(a, b) -> None:
    with pytest.raises(StochliftError):
        wasserstein_1d(a, b)


def test_w2_per_column_rejects_column_mismatch() -> None:
    with pytest.raises(StochliftError, match="columns"):
        wasserstein_1d_per_column(np.zeros((3, 2)), np.zeros((3, 3)))


# ----------------------------------------------------------------------------------------- quantities


def test_mass_of_constant_field() -> None:
    frames = np.full((2, 3, 2, 4, 5), -0.25, dtype=np.float32)
    frames[1] = 2.0
    out = mass(frames)
    assert out.shape == (2, 3)
    np.testing.assert_allclose(out[0], 0.25)
    np.testing.assert_allclose(out[1], 2.0)


def test_ring_mask_has_the_outer_ring_only() -> None:
    ring = ring_mask(5, 6, ring_width=1)
    assert ring.sum() == 5 * 6 - 3 * 4
    assert not ring[1:-1, 1:-1].any()
    assert ring_mask(6, 6, ring_width=2).sum() == 36 - 4


def test_crossing_time_first_hit_on_the_ring() -> None:
    frames = np.zeros((3, 11, 2, 8, 8), dtype=np.float32)
    frames[:, :, :, 3:5, 3:5] = 1.0  # the interior never counts
    frames[0, 5, 1, 0, 4] = 0.06  # trajectory 0: edge pixel of channel 1 at frame 5
    frames[0, 8, 0, 7, 7] = 0.9  # a later hit does not matter
    frames[1, :, 0, 0, 0] = -1.0  # trajectory 1: a trough, not an arrival
    frames[1, 3, 0, 6, 6] = 0.5  # one pixel inside a ring of width 1: not in B
    tau = crossing_time(frames, threshold=0.05, ring_width=1)
    np.testing.assert_allclose(tau, [0.5, 1.0, 1.0])
    # with a ring of width 2, trajectory 1's pixel at (6, 6) is in B
    assert crossing_time(frames, threshold=0.05, ring_width=2)[1] == pytest.approx(0.3)


def test_crossing_time_threshold_is_strict_and_frame_zero_counts() -> None:
    frames = np.zeros((2, 5, 1, 4, 4), dtype=np.float32)
    frames[0, :, 0, 0, 0] = 0.05  # equal to the threshold: not a hit
    frames[1, 0, 0, 3, 0] = 0.2
    np.testing.assert_allclose(crossing_time(frames, threshold=0.05), [1.0, 0.0])


def test_quantities_reject_wrong_rank() -> None:
    with pytest.raises(StochliftError, match="shape"):
        mass(np.zeros((2, 3, 4, 4)))
    with pytest.raises(StochliftError, match="2 frames"):
        crossing_time(np.zeros((2, 1, 1, 4, 4)))


# ------------------------------------------------------------------------------------- physics metrics


def wave_ensemble(n: int, seed: int, t: int = 9, size: int = 8) -> np.ndarray:
    """Rings expanding from the centre at a random speed: crossing times and masses vary per trajectory."""
    rng = np.random.default_rng(seed)
    coords = np.arange(size) - (size - 1) / 2
    radius = np.hypot(*np.meshgrid(coords, coords))
    times = np.linspace(0.0, 1.0, t)
    speed = rng.uniform(2.0, 8.0, size=n)
    amplitude = rng.uniform(0.5, 1.5, size=n)
    front = speed[:, None] * times[None, :]  # [n, T]
    field = np.exp(-((radius[None, None] - front[..., None, None]) ** 2))
    field = amplitude[:, None, None, None] * field * (times[None, :, None, None] > 0)
    return field[:, :, None].astype(np.float32)  # [n, T, 1, H, W]


def test_identical_ensembles_score_zero() -> None:
    ref = wave_ensemble(20, seed=0)
    result = evaluate_physics([ref], [ref.copy()], RingCrossing())
    assert result.wct == 0.0
    assert result.mass_w2 == 0.0
    assert result.mean_field_rmse == pytest.approx(0.0, abs=1e-12)
    assert result.std_field_rmse == pytest.approx(0.0, abs=1e-12)
    assert result.final_std_ratio == pytest.approx(1.0)
    assert result.wct_relative == 0.0 and result.mass_w2_relative == 0.0
    assert (result.n_reference, result.n_generated) == (20, 20)


def test_collapsed_model_scores_at_least_one() -> None:
    ref = wave_ensemble(40, seed=1)
    collapsed = np.repeat(ref.mean(axis=0, keepdims=True), 25, axis=0)
    result = evaluate_physics([ref], [collapsed], RingCrossing())
    # mass: W2 from a point mass to a distribution is >= its std at every time
    assert result.mass_w2_relative is not None and result.mass_w2_relative >= 1.0 - 1e-9
    assert result.wct_relative is not None and result.wct_relative >= 0.9
    assert result.final_std_ratio == pytest.approx(0.0, abs=1e-6)
    assert result.mean_field_rmse == pytest.approx(0.0, abs=1e-6)
    assert result.std_field_rmse > 0.01


def test_mass_w2_excludes_the_initial_frame() -> None:
    ref = wave_ensemble(10, seed=2)
    gen = ref.copy()
    gen[:, 0] += 1.0  # a different initial frame changes mass at t = 0 only
    result = evaluate_physics([ref], [gen], RingCrossing())
    assert result.mass_w2_per_time[0] > 0.5
    assert result.mass_w2 == pytest.approx(0.0, abs=1e-12)
    assert result.mean_field_rmse == pytest.approx(0.0, abs=1e-12)


def test_relative_scores_match_a_direct_computation() -> None:
    ref, gen = wave_ensemble(30, seed=3), wave_ensemble(21, seed=4)
    result = evaluate_physics([ref], [gen], RingCrossing(threshold=0.1))
    tau_ref = crossing_time(ref, threshold=0.1)
    m_ref, m_gen = mass(ref), mass(gen)
    assert result.wct_relative == pytest.approx(result.wct / tau_ref.std())
    per_time = [wasserstein_1d(m_ref[:, t], m_gen[:, t]) for t in range(ref.shape[1])]
    np.testing.assert_allclose(result.mass_w2_per_time, per_time, rtol=1e-12)
    assert result.mass_w2_relative == pytest.approx(np.mean(per_time[1:]) / m_ref[:, 1:].std(axis=0).mean())
    expected_rmse = np.sqrt(np.mean((gen.mean(0)[1:].astype(np.float64) - ref.mean(0)[1:]) ** 2))
    assert result.mean_field_rmse == pytest.approx(expected_rmse, rel=1e-5)
    expected_ratio = gen[:, -1].std(axis=0).mean() / ref[:, -1].std(axis=0).mean()
    assert result.final_std_ratio == pytest.approx(expected_ratio, rel=1e-5)


def test_streaming_in_chunks_matches_one_chunk() -> None:
    ref, gen = wave_ensemble(17, seed=5), wave_ensemble(11, seed=6)
    whole = evaluate_physics([ref], [gen], RingCrossing()).to_dict()
    evaluator = PhysicsEvaluator(RingCrossing())
    for start in range(0, 17, 3):  # interleaved, uneven final chunk
        evaluator.add_reference(ref[start : start + 3])
        if start < 11:
            evaluator.add_generated(gen[start : start + 3])
    chunked = evaluator.result().to_dict()
    assert chunked.keys() == whole.keys()
    for key, value in whole.items():
        assert chunked[key] == pytest.approx(value, rel=1e-10, abs=1e-12), key


def test_to_dict_is_plain_json() -> None:
    result = evaluate_physics([wave_ensemble(6, seed=7)], [wave_ensemble(5, seed=8)], RingCrossing(ring_width=2))
    data = json.loads(json.dumps(result.to_dict()))
    assert data["ring_width"] == 2 and data["threshold"] == 0.05
    assert len(data["mass_w2_per_time"]) == 9
    assert "tau_reference" not in data
    assert result.mass_reference.shape == (6, 9) and result.tau_generated.shape == (5,)


def test_zero_reference_spread_gives_none() -> None:
    ref = np.zeros((4, 5, 1, 6, 6), dtype=np.float32)
    result = evaluate_physics([ref], [ref + 0.01], RingCrossing())
    assert result.wct_relative is None
    assert result.mass_w2_relative is None
    assert result.final_std_ratio is None
    assert result.mass_w2 == pytest.approx(0.01, rel=1e-5)


def test_mismatched_shapes_raise_with_both_shapes() -> None:
    evaluator = PhysicsEvaluator(RingCrossing())
    evaluator.add_reference(np.zeros((3, 5, 1, 6, 6), dtype=np.float32))
    with pytest.raises(StochliftError, match=r"\(2, 5, 1, 6, 7\).*5, 1, 6, 6"):
        evaluator.add_generated(np.zeros((2, 5, 1, 6, 7), dtype=np.float32))
    with pytest.raises(StochliftError, match="T, C, H, W"):
        evaluator.add_reference(np.zeros((3, 4, 1, 6, 6), dtype=np.float32))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_values_raise(bad: float) -> None:
    chunk = np.zeros((2, 5, 1, 6, 6), dtype=np.float32)
    chunk[1, 3, 0, 2, 2] = bad
    evaluator = PhysicsEvaluator(RingCrossing())
    with pytest.raises(StochliftError, match="NaN or Inf"):
        evaluator.add_generated(chunk)


def test_empty_ensemble_raises() -> None:
    evaluator = PhysicsEvaluator(RingCrossing())
    evaluator.add_reference(wave_ensemble(3, seed=9))
    with pytest.raises(StochliftError, match="generated"):
        evaluator.result()
