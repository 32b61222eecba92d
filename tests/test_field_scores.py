"""Field-level ensemble scores relative to their truth-vs-truth floor (stochlift.metrics.field_scores)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from conftest import tiny_meta
from stochlift.data.trajectories import TrajectoryFile, write_trajectories
from stochlift.errors import StochliftError
from stochlift.metrics.ensemble import energy_distance, random_directions
from stochlift.metrics.field_scores import field_scores, field_scores_files, truth_splits
from stochlift.metrics.qoi import load_qoi, load_qois
from stochlift.metrics.spectrum import radial_power_spectrum, spectrum_error

BUILT_IN = {"energy_score", "crps", "spread_skill", "rank_deviation", "sliced_w2", "energy_distance", "mean_w2",
            "abs_mean_w2"}


def random_walks(n: int, frames: int, state: tuple[int, ...], seed: int) -> np.ndarray:
    """[n, frames, *state]: independent Gaussian random walks from a shared start (frame 0 is all zeros)."""
    steps = np.random.default_rng(seed).standard_normal((n, frames, *state))
    steps[:, 0] = 0.0
    return steps.cumsum(axis=1)


def w2_sorted(a: np.ndarray, b: np.ndarray) -> float:
    """W2 of two equal-size 1-D samples by sorting: an implementation independent of wasserstein.py."""
    return float(np.sqrt(np.mean((np.sort(a) - np.sort(b)) ** 2)))


# ---------------------------------------------------------------------------------- against references


@pytest.mark.parametrize("state", [(3,), (2, 6), (1, 4, 5)])
def test_energy_score_and_crps_match_scoringrules_on_every_split(state: tuple[int, ...]) -> None:
    sr = pytest.importorskip("scoringrules")
    gen, truth = random_walks(9, 3, state, seed=1), random_walks(10, 3, state, seed=2)
    scores = field_scores(gen, truth, n_splits=2, seed=5)
    splits = truth_splits(9, 10, n_splits=2, seed=5)
    for i, t in enumerate(scores.frames):
        g, r = gen[:, t].reshape(9, -1), truth[:, t].reshape(10, -1)
        for name, side, rows in [("value", 0, "generated"), ("floor", 1, "truth_half")]:
            es, crps = [], []
            for split in splits:
                ens, ref = getattr(split, rows), split.reference
                es.append(np.mean([sr.es_ensemble(r[j], g[ens] if side == 0 else r[ens], m_axis=-2, v_axis=-1,
                                                  estimator="fair", backend="numpy") for j in ref]))
                crps.append(np.mean([sr.crps_ensemble(r[j], (g[ens] if side == 0 else r[ens]).T, m_axis=-1,
                                                      estimator="fair", backend="numpy") for j in ref]))
            np.testing.assert_allclose(scores.scores["energy_score"].per_time[name][i], np.mean(es), rtol=1e-6)
            np.testing.assert_allclose(scores.scores["crps"].per_time[name][i], np.mean(crps), rtol=1e-6)


def test_divergences_match_independent_implementations() -> None:
    """W2 of summaries and sliced W2 by sorting (equal sizes: |G'| = |A| = |B|), energy distance by cdist."""
    gen, truth = random_walks(30, 3, (2, 8), seed=3) * 1.3, random_walks(24, 3, (2, 8), seed=4)
    scores = field_scores(gen, truth, n_splits=1, n_projections=16, seed=7)
    split = truth_splits(30, 24, n_splits=1, seed=7)[0]
    directions = random_directions(16, 16, seed=7)
    for i, t in enumerate(scores.frames):
        g, b = gen[split.generated, t], truth[split.reference, t]
        assert len(g) == len(b) == 12
        mean_w2 = np.mean([w2_sorted(g[:, c].mean(-1), b[:, c].mean(-1)) for c in range(2)])
        abs_w2 = np.mean([w2_sorted(np.abs(g[:, c]).mean(-1), np.abs(b[:, c]).mean(-1)) for c in range(2)])
        pg, pb = g.reshape(12, -1) @ directions, b.reshape(12, -1) @ directions
        sliced = np.sqrt(np.mean([w2_sorted(pg[:, k], pb[:, k]) ** 2 for k in range(16)]))
        x, y = g.reshape(12, -1), b.reshape(12, -1)
        energy = 2 * cdist(x, y).mean() - cdist(x, x).mean() - cdist(y, y).mean()
        for name, want in [("mean_w2", mean_w2), ("abs_mean_w2", abs_w2), ("sliced_w2", sliced),
                           ("energy_distance", energy)]:
            np.testing.assert_allclose(scores.scores[name].per_time["value"][i], want, rtol=1e-9, err_msg=name)


def test_biased_energy_distance_is_the_v_statistic_and_never_negative() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 5)), rng.normal(size=(9, 5))
    want = 2 * cdist(x, y).mean() - cdist(x, x).mean() - cdist(y, y).mean()
    np.testing.assert_allclose(energy_distance(x, y, biased=True), want, rtol=1e-10)
    assert energy_distance(x, x, biased=True) >= 0.0
    assert energy_distance(x, y, biased=True) > energy_distance(x, y)  # the V-statistic adds a positive bias


# ---------------------------------------------------------------------------------------------- spectrum


def test_spectrum_of_a_pure_sine_sits_in_its_shell() -> None:
    k0 = 3
    x = np.arange(16)
    line = np.sin(2 * np.pi * k0 * x / 16)
    spectrum = radial_power_spectrum(line[None], spatial_ndim=1)[0]
    assert spectrum.shape == (7,)  # shells 1 .. 16 // 2 - 1
    # orthonormal FFT: |F(+-k0)|^2 = 16 / 4 each; shell k0 holds +k0 and -k0, so its mean power is 16 / 4
    np.testing.assert_allclose(spectrum[k0 - 1], 4.0, rtol=1e-12)
    assert np.all(np.delete(spectrum, k0 - 1) < 1e-20)
    # 2-D: the same sine along the first axis of a 16 x 12 grid; the ring round(|k|) = k0 holds `count` points
    plane = np.repeat(line[:, None], 12, axis=1)
    count = sum(round(np.hypot(a, b)) == k0 for a in range(-8, 8) for b in range(-6, 6))
    spectrum = radial_power_spectrum(plane[None, None], spatial_ndim=2)[0, 0]
    assert spectrum.shape == (5,)  # shells 1 .. min(16, 12) // 2 - 1
    np.testing.assert_allclose(spectrum[k0 - 1], 2 * (16 * 12 / 4) / count, rtol=1e-12)
    assert np.all(np.delete(spectrum, k0 - 1) < 1e-20)


def old_no_conditioning_spectrum(frames: np.ndarray) -> np.ndarray:
    """The definition no_conditioning used before stochlift.metrics.spectrum (kept to pin its numbers)."""
    power = (np.abs(np.fft.fft2(frames - frames.mean(axis=(-2, -1), keepdims=True))) ** 2).mean(axis=(0, 1))
    ky, kx = np.meshgrid(np.fft.fftfreq(power.shape[0]) * power.shape[0],
                         np.fft.fftfreq(power.shape[1]) * power.shape[1], indexing="ij")
    radius = np.rint(np.hypot(ky, kx)).astype(int)
    shells = slice(1, min(power.shape) // 2)
    return np.bincount(radius.ravel(), power.ravel())[shells] / np.bincount(radius.ravel())[shells]


@pytest.mark.parametrize("grid", [(16, 16), (12, 20)])
def test_spectrum_error_keeps_the_no_conditioning_numbers(grid: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    truth, generated = rng.normal(size=(6, 2, *grid)), rng.normal(size=(5, 2, *grid)).cumsum(-1)
    old = np.abs(np.log10(old_no_conditioning_spectrum(generated) / old_no_conditioning_spectrum(truth))).mean()
    np.testing.assert_allclose(spectrum_error(generated, truth), old, rtol=1e-9)


# ------------------------------------------------------------------------------------------------ floors


# Tolerances from the spread of the time-mean ratio over 40 seeds at these sizes (vectors of 3 variables,
# 400 + 400 trajectories; 1-D fields of 16 points, 200 + 200; the mean ratio was within 0.03 of 1 for every
# score): std 0.002 (energy score, CRPS), 0.013-0.027 (spread-skill, rank deviation), 0.04-0.09 (sliced W2),
# 0.09-0.16 (W2 of summaries), 0.12 (spectrum, heavy-tailed: 1.50 at most), 0.09-0.23 (energy distance, a
# skewed V-statistic). The bounds sit at about 5 of those std.
SAME_LAW_BOUNDS = {"energy_score": 0.01, "crps": 0.01, "spread_skill": 0.15, "rank_deviation": 0.1,
                   "sliced_w2": 0.45, "mean_w2": 0.8, "abs_mean_w2": 0.7, "spectrum_error": 0.6,
                   "energy_distance": 1.2}


@pytest.mark.parametrize("state, n", [((3,), 400), ((1, 16), 200)])
def test_two_samples_of_one_law_score_near_their_floor(state: tuple[int, ...], n: int) -> None:
    scores = field_scores(random_walks(n, 6, state, seed=10), random_walks(n, 6, state, seed=11),
                          n_projections=64, seed=3)
    for name, score in scores.scores.items():
        assert abs(score.ratio - 1.0) < SAME_LAW_BOUNDS[name], (name, score.ratio)
        assert score.floor > 0, name


@pytest.mark.parametrize("state, n", [((3,), 1000), ((1, 16), 600), ((1, 8, 8), 600)])
def test_a_collapsed_ensemble_is_far_above_its_floor(state: tuple[int, ...], n: int) -> None:
    truth = random_walks(n, 4, state, seed=12)
    collapsed = np.broadcast_to(truth.mean(axis=0), truth.shape)  # every member is the true mean
    scores = field_scores(collapsed, truth, n_projections=32, seed=1)
    ratio = scores.ratios()
    # proper scores: compressed (a point at the mean scores ~sqrt(2) of a calibrated ensemble in high dims)
    assert 1.1 < ratio["energy_score"] < 1.6 and 1.1 < ratio["crps"] < 1.6
    # divergences blow up
    assert ratio["sliced_w2"] > 5 and ratio["energy_distance"] > 5 and ratio["rank_deviation"] > 5
    assert scores.scores["spread_skill"].value == 0.0
    if len(state) > 1:
        assert ratio["spectrum_error"] > 5


# ------------------------------------------------------------------------------------ shapes and result


@pytest.mark.parametrize("state, spectrum", [((4,), False), ((2, 3), False), ((2, 10), True), ((1, 6, 8), True),
                                             ((1, 4, 4, 4), True)])
def test_every_state_rank_gets_its_scores_and_a_json_result(state: tuple[int, ...], spectrum: bool) -> None:
    gen, truth = random_walks(8, 5, state, seed=1), random_walks(9, 5, state, seed=2)
    scores = field_scores(gen, truth, initial_frames=2, n_splits=2, n_projections=8, time=np.linspace(0, 2, 5))
    assert set(scores.scores) == BUILT_IN | ({"spectrum_error"} if spectrum else set())
    assert scores.frames == [2, 3, 4] and scores.time == [1.0, 1.5, 2.0]
    assert (scores.ensemble_size, scores.reference_size) == (5, 4)  # m = min(8, 9 - 4)
    assert all(len(s.per_time["ratio"]) == 3 for s in scores.scores.values())
    assert sum(scores.rank_histogram["floor"]) == sum(scores.rank_histogram["value"]) > 0
    data = scores.to_dict()
    assert json.loads(json.dumps(data)) == data  # plain floats, ints, lists, None
    table = scores.summary()
    assert all(name in table for name in scores.scores)


def test_splits_are_disjoint_halves_of_equal_ensemble_sizes_and_seeded() -> None:
    splits = truth_splits(n_generated=50, n_truth=21, n_splits=3, seed=4)
    for split in splits:
        assert len(split.reference) == 10 and len(split.truth_half) == len(split.generated) == 11
        assert not set(split.reference) & set(split.truth_half)
    assert not np.array_equal(splits[0].reference, splits[1].reference)
    again = truth_splits(n_generated=50, n_truth=21, n_splits=3, seed=4)
    assert all(np.array_equal(a.generated, b.generated) for a, b in zip(splits, again))
    assert len(truth_splits(n_generated=3, n_truth=21)[0].truth_half) == 3  # a small generated ensemble sets m


def test_scores_are_determined_by_the_seed() -> None:
    gen, truth = random_walks(20, 4, (2, 8), seed=1), random_walks(16, 4, (2, 8), seed=2)
    first, again = field_scores(gen, truth, seed=3), field_scores(gen, truth, seed=3)
    other = field_scores(gen, truth, seed=4)
    for name in first.scores:
        np.testing.assert_allclose(first.scores[name].per_time["value"], again.scores[name].per_time["value"],
                                   rtol=1e-12, err_msg=name)
    assert first.rank_histogram == again.rank_histogram
    assert not np.allclose(first.scores["energy_score"].per_time["floor"],
                           other.scores["energy_score"].per_time["floor"])


def test_bad_inputs_are_one_line_errors() -> None:
    walks = random_walks(6, 3, (2,), seed=0)
    with pytest.raises(StochliftError, match="at least 4 true"):
        field_scores(walks, walks[:3])
    with pytest.raises(StochliftError, match="equal T"):
        field_scores(walks, walks[:, :2])
    with pytest.raises(StochliftError, match="state of at least one axis"):
        field_scores(walks[..., 0], walks[..., 0])
    with pytest.raises(StochliftError, match="initial_frames"):
        field_scores(walks, walks, initial_frames=3)
    with pytest.raises(StochliftError, match="one value per frame"):
        field_scores(walks, walks, time=[0.0, 1.0])


# -------------------------------------------------------------------------------- quantities of interest


def peak(frames: np.ndarray) -> np.ndarray:
    """Largest value of each frame: [n, T]."""
    return frames.reshape(*frames.shape[:2], -1).max(axis=-1)


def first_positive_peak(frames: np.ndarray) -> np.ndarray:
    """First frame whose peak exceeds 1 (the last frame if none): [n], a crossing time."""
    above = peak(frames) > 1.0
    return np.where(above.any(axis=1), above.argmax(axis=1), frames.shape[1] - 1).astype(float)


def test_quantities_of_interest_get_their_w2_per_time_or_once() -> None:
    gen, truth = random_walks(12, 5, (1, 6), seed=5) * 1.5, random_walks(12, 5, (1, 6), seed=6)
    scores = field_scores(gen, truth, qoi={"peak": peak, "onset": first_positive_peak}, n_splits=1, seed=2)
    split = truth_splits(12, 12, n_splits=1, seed=2)[0]
    per_time, once = scores.scores["peak_w2"], scores.scores["onset_w2"]
    want = [w2_sorted(peak(gen)[split.generated, t], peak(truth)[split.reference, t]) for t in scores.frames]
    np.testing.assert_allclose(per_time.per_time["value"], want, rtol=1e-9)
    assert once.per_time is None
    np.testing.assert_allclose(once.floor, w2_sorted(first_positive_peak(truth)[split.truth_half],
                                                     first_positive_peak(truth)[split.reference]), rtol=1e-9)


def test_quantities_of_interest_load_from_specs_and_fail_in_one_line(tmp_path: Path) -> None:
    from stochlift.metrics.quantities import mass

    assert load_qoi("stochlift.metrics.quantities:mass") is mass
    script = tmp_path / "my_qoi.py"
    script.write_text("def total(frames):\n    return frames.reshape(len(frames), -1).sum(axis=1)\n")
    assert set(load_qois([f"{script}:total", "stochlift.metrics.quantities:mass"])) == {"total", "mass"}
    for spec, message in [("nocolon", "module:function"), ("no_such_module_xyz:f", "cannot import"),
                          ("math:nosuch", "no attribute"), ("math:pi", "not a function"),
                          (f"{tmp_path / 'missing.py'}:f", "no such file")]:
        with pytest.raises(StochliftError, match=message) as caught:
            load_qoi(spec)
        assert "\n" not in str(caught.value)
    walks = random_walks(6, 3, (2,), seed=0)
    bad = [({"shape": lambda f: f[:, :1, 0]}, "must return"), ({"nan": lambda f: np.full(len(f), np.nan)}, "NaN"),
           ({"sliced": lambda f: f[:, :, 0]}, "clashes"), ({"broken": lambda f: 1 / 0}, "ZeroDivisionError")]
    for qoi, message in bad:
        with pytest.raises(StochliftError, match=message):
            field_scores(walks, walks, qoi=qoi)


# ------------------------------------------------------------------------------------------------- files


def test_files_stream_the_same_scores_as_arrays(tmp_path: Path) -> None:
    gen = random_walks(10, 5, (1, 8, 8), seed=1).astype(np.float32)
    truth = random_walks(12, 5, (1, 8, 8), seed=2).astype(np.float32)
    write_trajectories(tmp_path / "truth.h5", tiny_meta(frames=5), {"test": truth})
    write_trajectories(tmp_path / "gen.h5", tiny_meta(frames=5, initial_frames=2), {"generated": gen})
    # blocks of one frame and chunks of 3 rows: the streaming path crosses every boundary
    streamed = field_scores_files(tmp_path / "truth.h5", tmp_path / "gen.h5", qoi={"peak": peak}, chunk_size=3,
                                  max_block_bytes=1, n_splits=2, seed=4)
    in_memory = field_scores(gen, truth, qoi={"peak": peak}, initial_frames=2, n_splits=2, seed=4,
                             time=TrajectoryFile(tmp_path / "truth.h5").meta.time)
    assert streamed.frames == [2, 3, 4] and streamed.options["frames_per_block"] == 1
    assert streamed.time == in_memory.time
    for name, score in in_memory.scores.items():
        np.testing.assert_allclose(streamed.scores[name].per_time["value"], score.per_time["value"], rtol=1e-9)
        np.testing.assert_allclose(streamed.scores[name].per_time["floor"], score.per_time["floor"], rtol=1e-9)


class VectorReader:
    """The smallest reader field_scores_files accepts: TrajectoryFile's interface over arrays of any state."""

    class Meta:
        def __init__(self, frames: int, frame_shape: tuple[int, ...]) -> None:
            self.frames, self.frame_shape, self.time, self.parameters = frames, frame_shape, np.arange(frames), {}

    def __init__(self, split: str, data: np.ndarray) -> None:
        self.path, self.data, self.splits = Path(f"<{split}>"), data, {split: len(data)}
        self.meta = self.Meta(data.shape[1], data.shape[2:])

    def default_split(self, preferred: str = "test") -> str:
        return next(iter(self.splits))

    def read(self, split: str, rows: slice = slice(None), frames: slice = slice(None)) -> np.ndarray:
        return self.data[rows, frames].astype(np.float32)


def test_files_take_any_reader_with_the_trajectory_file_interface() -> None:
    gen, truth = random_walks(9, 4, (3,), seed=1), random_walks(8, 4, (3,), seed=2)
    streamed = field_scores_files(VectorReader("test", truth), VectorReader("generated", gen), max_block_bytes=1,
                                  chunk_size=2, seed=1)
    in_memory = field_scores(gen.astype(np.float32), truth.astype(np.float32), seed=1)
    assert streamed.state_shape == [3]
    for name, score in in_memory.scores.items():
        np.testing.assert_allclose(streamed.scores[name].per_time["value"], score.per_time["value"], rtol=1e-9)
