"""Tests of the Flow problem: the IMPES simulator, the Matérn permeability, the data sets, the breakthrough
QoI in evaluation and the `stochlift data flow` command. Grids are tiny (<= 32 x 32) to stay fast."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import h5py
import numpy as np
import pytest

import stochlift.data.flow_datasets as flow_datasets
from stochlift.data.flow import FlowParams, fractional_flow, run_flow, solve_flow, step_plan
from stochlift.data.flow_datasets import FLOW_PRESETS, area_resample, make_flow_dataset
from stochlift.data.permeability import (
    MaternSampler,
    PermeabilityParams,
    log_permeability,
    matern_covariance,
    sample_log_permeability,
)
from stochlift.data.trajectories import TrajectoryFile, TrajectoryMeta, write_trajectories
from stochlift.errors import StochliftError
from stochlift.evaluation.evaluate import evaluate_files
from stochlift.metrics.physics import evaluate_physics
from stochlift.problems.flow import CornerBreakthrough, corner_breakthrough_time, corner_mask

SMALL = FlowParams(shape=(16, 16), frames=11)


def _random_perm(shape: tuple[int, int], index: int = 3) -> np.ndarray:
    return np.exp(log_permeability(0, index, shape, PermeabilityParams(correlation_length=0.1 * shape[0])))


# --- simulator -------------------------------------------------------------------------------------


def test_water_volume_equals_injected_minus_produced_at_every_frame():
    run = run_flow(_random_perm(SMALL.shape), SMALL)
    np.testing.assert_allclose(run.water_volume, run.injected - run.produced, rtol=0, atol=1e-13)
    np.testing.assert_allclose(run.injected, SMALL.rate * run.time, rtol=1e-12)
    early = run.produced == 0  # before breakthrough all injected water is in place, to round-off
    assert early.sum() >= 3 and run.produced[-1] > 0
    np.testing.assert_allclose(run.water_volume[early], SMALL.rate * run.time[early], rtol=0, atol=1e-13)


def test_saturation_stays_between_the_residual_saturations():
    params = dataclasses.replace(SMALL, swc=0.1, sor=0.2, mu_w=0.5, porosity=0.3)
    s = solve_flow(_random_perm(params.shape, 5), params)
    assert s.min() >= params.swc - 1e-9 and s.max() <= 1 - params.sor + 1e-9
    assert s[0].min() == s[0].max() == params.swc  # no mobile water at t = 0
    s = solve_flow(_random_perm(SMALL.shape, 6), SMALL)
    assert s.min() >= -1e-9 and s.max() <= 1 + 1e-9


def test_homogeneous_medium_is_symmetric_about_the_well_diagonal():
    s = solve_flow(np.full(SMALL.shape, 0.3), SMALL)
    np.testing.assert_allclose(s, s.transpose(0, 2, 1), rtol=0, atol=1e-10)
    assert s[-1, 0, 0] > 0.9 and s[-1].mean() > 0  # flooded near the injector


def test_saturation_ignores_a_constant_factor_in_the_permeability():
    """Why Zbar (a constant in log K) cannot change the data: fixed rates make the fluxes scale-free."""
    perm = _random_perm(SMALL.shape, 7)
    np.testing.assert_allclose(solve_flow(perm * math.exp(2.5), SMALL), solve_flow(perm, SMALL), atol=1e-9)


def test_buckley_leverett_front_within_one_cell():
    """1-D column: the shock of f = s^2 / (s^2 + (1 - s)^2) sits at x_f = f(s_f)/s_f * t, s_f = 1/sqrt(2)."""
    n, t_end = 100, 0.5
    params = FlowParams(shape=(1, n), t_end=t_end, dt=0.05, frames=2)  # unit square: t = pore volumes
    s = solve_flow(np.ones((1, n)), params)[-1, 0]
    s_front = 1 / math.sqrt(2)
    x_front = float(fractional_flow(np.array(s_front), params)) / s_front * t_end
    x = (np.arange(n) + 0.5) / n
    level = s_front / 2  # the midpoint of the exact jump from s_front to 0
    i = int(np.argmax(s < level))
    x_num = x[i - 1] + (s[i - 1] - level) / (s[i - 1] - s[i]) * (x[i] - x[i - 1])
    assert abs(x_num - x_front) * n <= 1.0
    # behind the front the rarefaction f'(s) = x / t holds to a few percent
    fine = np.linspace(s_front, 1, 2001)
    slope = np.gradient(fractional_flow(fine, params), fine)
    j = int(0.3 * n)
    exact = np.interp(x[j] / t_end, slope[::-1], fine[::-1])
    assert abs(s[j] - exact) < 0.03


def test_step_plan_hits_every_frame():
    per_frame, step = step_plan(FlowParams())
    assert per_frame == 2 and step == pytest.approx(0.7 / 98)
    assert step_plan(FlowParams(frames=51)) == (2, pytest.approx(0.007))


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"mu_w": 0.0}, "mu_w"),
        ({"mu_o": -1.0}, "mu_o"),
        ({"t_end": 0.001}, "at least one pressure step"),
        ({"swc": 0.6, "sor": 0.5}, "residual saturations"),
        ({"frames": 1}, "frames"),
        ({"porosity": float("nan")}, "porosity"),
        ({"shape": (0, 4)}, "shape"),
    ],
)
def test_bad_parameters_are_named(change, fragment):
    params = dataclasses.replace(SMALL, **change)
    with pytest.raises(StochliftError, match=fragment):
        params.validate()


@pytest.mark.parametrize(
    "perm, fragment",
    [
        (np.ones((16, 15)), "shape"),
        (np.where(np.eye(16) > 0, np.nan, 1.0), "NaN"),
        (np.where(np.eye(16) > 0, 0.0, 1.0), "> 0"),
        (-np.ones((16, 16)), "> 0"),
    ],
)
def test_bad_permeability_is_refused(perm, fragment):
    with pytest.raises(StochliftError, match=fragment):
        solve_flow(perm, SMALL)


# --- permeability ----------------------------------------------------------------------------------


def test_matern_convention():
    r = np.array([0.0, 1.0, 5.0, 20.0])
    np.testing.assert_allclose(matern_covariance(r, 2.0, 5.0, 0.5), 4.0 * np.exp(-r / 5.0))  # nu = 1/2
    from scipy.special import kv

    x = math.sqrt(2) * 10.0 / 10.0  # nu = 1 at r = ell: sigma^2 x K_1(x)
    assert matern_covariance(np.array([10.0]), 3.0, 10.0, 1.0)[0] == pytest.approx(9 * x * kv(1, x))


def test_matern_sampler_matches_the_covariance():
    """Empirical variance and covariances of 4000 fields vs C(r), within 4 standard errors (batch spread)."""
    sigma, ell, nu, size = 3.0, 10.0, 1.0, 24
    sampler = MaternSampler((size, size), sigma, ell, nu)
    rng = np.random.default_rng(1)
    fields = np.stack([f for _ in range(2000) for f in sampler.sample_pair(rng)])  # [4000, 24, 24]
    lags = [(0, 0), (0, 1), (1, 0), (0, 3), (2, 2), (0, 10), (7, 0), (5, 9)]
    batches = fields.reshape(20, -1, size, size)
    for di, dj in lags:
        a = batches[:, :, : size - di, : size - dj]
        b = batches[:, :, di:, dj:]
        per_batch = (a * b).mean(axis=(1, 2, 3))  # zero mean is known: no mean is subtracted
        estimate, error = per_batch.mean(), per_batch.std(ddof=1) / math.sqrt(len(per_batch))
        expected = matern_covariance(np.array([math.hypot(di, dj)]), sigma, ell, nu)[0]
        assert abs(estimate - expected) < 4 * error + 1e-3, (di, dj, estimate, expected, error)
    z, y = fields[0::2], fields[1::2]  # the real and imaginary parts are independent
    assert abs((z * y).mean()) < 0.1


def test_permeability_is_a_pure_function_of_seed_and_index():
    shape, params = (20, 20), PermeabilityParams()
    a = log_permeability(4, 7, shape, params)
    np.testing.assert_array_equal(a, log_permeability(4, 7, shape, params))
    assert not np.allclose(a, log_permeability(4, 8, shape, params))
    assert not np.allclose(a, log_permeability(5, 7, shape, params))
    # log K = eps Z + mean(Z) + Y with (Z, Y) one sampled pair
    z, y = MaternSampler(shape, 3.0, 10.0, 1.0).sample_pair(np.random.default_rng([4, 7]))
    np.testing.assert_allclose(a, 0.01 * z + z.mean() + y)
    with pytest.raises(StochliftError, match="nu"):
        sample_log_permeability(shape, PermeabilityParams(nu=0.0), np.random.default_rng(0))


def test_area_resample_keeps_the_mean_and_the_range():
    field = np.random.default_rng(0).uniform(size=(3, 100, 100))
    small = area_resample(field, 96)
    assert small.shape == (3, 96, 96)
    np.testing.assert_allclose(small.mean(axis=(1, 2)), field.mean(axis=(1, 2)), rtol=1e-12)
    assert small.min() >= field.min() and small.max() <= field.max()
    np.testing.assert_allclose(area_resample(field, 50), field.reshape(3, 50, 2, 50, 2).mean(axis=(2, 4)))


# --- data sets -------------------------------------------------------------------------------------

TINY = {"trajectories": 6, "frames": 6, "size": 12, "progress": False}


def _arrays(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        out = {}
        f.visititems(lambda name, obj: out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
        return out


def test_dataset_layout_and_metadata(tmp_path: Path):
    path = make_flow_dataset(tmp_path / "flow.h5", seed=3, workers=1, **TINY)
    assert not (tmp_path / "flow.h5.parts").exists()
    data = TrajectoryFile(path)
    meta = data.meta
    assert meta.problem == "flow" and meta.field_names == ("saturation",) and not meta.periodic
    assert data.splits == {"train": 2, "valid": 1, "test": 3}
    assert meta.field_scales == {"saturation": 1.0} and meta.frames == 6 and meta.frame_shape == (1, 12, 12)
    p = meta.parameters
    assert p["preset"] == "quick" and p["seed"] == 3 and p["generator"].endswith("run_flow")
    assert p["qoi_corner_size"] == 2 and p["qoi_crossing_threshold"] == 0.5
    for field in dataclasses.fields(FlowParams):
        assert field.name in p
    assert p["shape"] == [12, 12] and p["t_end"] == 0.7 and p["perm_sigma"] == 3.0
    u = data.read("test")
    assert u.shape == (3, 6, 1, 12, 12) and u[:, 0].max() == 0 and u.min() >= 0 and u.max() <= 1
    assert data.read_static("train", "log_permeability").shape == (2, 12, 12)
    # trajectory i is the same simulation whatever the split: test row 0 is index 3 of the set
    expected, log_k = flow_datasets.simulate_trajectory(3, 3, FlowParams(shape=(12, 12), frames=6),
                                                        PermeabilityParams(correlation_length=0.1 * 12), 12)
    np.testing.assert_array_equal(u[0, :, 0], expected)
    np.testing.assert_array_equal(data.read_static("test", "log_permeability", 0), log_k)


def test_paper_preset_is_the_papers_table_3():
    paper = FLOW_PRESETS["paper"]
    assert paper.params.shape == (100, 100) and paper.params.t_end == 0.7 and paper.params.dt == 0.007
    assert paper.params.frames == 50 and paper.stored == 96 and paper.splits.train == 1000
    params, stored = flow_datasets._resolve(paper, None, None, None)
    assert params.shape == (100, 100) and stored == 96
    params, stored = flow_datasets._resolve(FLOW_PRESETS["quick"], None, 16, None)
    assert params.shape == (16, 16) and stored == 16


def test_interrupted_generation_continues_without_redoing_parts(tmp_path: Path, monkeypatch):
    fresh = make_flow_dataset(tmp_path / "fresh.h5", seed=1, workers=1, **TINY)

    calls: list[int] = []
    real = flow_datasets.simulate_trajectory

    def failing(index, *args):
        if len(calls) == 4:
            raise KeyboardInterrupt  # as a Ctrl-C after 4 trajectories
        calls.append(index)
        return real(index, *args)

    monkeypatch.setattr(flow_datasets, "simulate_trajectory", failing)
    out = tmp_path / "flow.h5"
    with pytest.raises(KeyboardInterrupt):
        make_flow_dataset(out, seed=1, workers=1, **TINY)
    parts = tmp_path / "flow.h5.parts"
    assert not out.exists() and sorted(p.name for p in parts.glob("*.npz")) == [f"{i:06d}.npz" for i in range(4)]

    calls.clear()
    monkeypatch.setattr(flow_datasets, "simulate_trajectory", lambda index, *a: calls.append(index) or real(index, *a))
    make_flow_dataset(out, seed=1, workers=1, **TINY)
    assert calls == [4, 5] and not parts.exists()
    a, b = _arrays(out), _arrays(fresh)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


def test_leftover_parts_with_other_settings_are_refused(tmp_path: Path):
    parts = tmp_path / "flow.h5.parts"
    parts.mkdir()
    (parts / "manifest.json").write_text(json.dumps({"seed": 99}))
    with pytest.raises(StochliftError, match="other settings"):
        make_flow_dataset(tmp_path / "flow.h5", workers=1, **TINY)
    assert not (tmp_path / "flow.h5").exists()


def test_same_seed_same_data_and_workers_do_not_matter(tmp_path: Path):
    one = _arrays(make_flow_dataset(tmp_path / "one.h5", seed=2, workers=1, **TINY))
    two = _arrays(make_flow_dataset(tmp_path / "two.h5", seed=2, workers=2, **TINY))
    again = _arrays(make_flow_dataset(tmp_path / "again.h5", seed=2, workers=1, **TINY))
    other = _arrays(make_flow_dataset(tmp_path / "other.h5", seed=3, workers=1, **{**TINY, "trajectories": 4}))
    for key in one:
        np.testing.assert_array_equal(one[key], two[key])
        np.testing.assert_array_equal(one[key], again[key])
    assert not np.array_equal(one["train/t0_fields/saturation"][0], other["train/t0_fields/saturation"][0])


# --- quantities of interest and evaluation ---------------------------------------------------------


def test_corner_breakthrough_time():
    assert corner_mask(4, 5, 2).sum() == 4 and corner_mask(4, 5, 2)[3, 4] and not corner_mask(4, 5, 2)[1, 4]
    frames = np.zeros((3, 11, 1, 8, 8))
    frames[0, 4:, 0, 7, 7] = 0.6  # reaches the producer pixel at frame 4
    frames[1, 2:, 0, 5, 6] = 0.9  # inside a 3-pixel corner, outside a 2-pixel one
    frames[2, :, 0, 0, 0] = 1.0  # water at the injector only: never breaks through
    np.testing.assert_allclose(corner_breakthrough_time(frames, 0.5, 3), [0.4, 0.2, 1.0])
    np.testing.assert_allclose(corner_breakthrough_time(frames, 0.5, 2), [0.4, 1.0, 1.0])
    np.testing.assert_allclose(corner_breakthrough_time(frames, 0.6, 3), [1.0, 0.2, 1.0])  # strictly above
    with pytest.raises(StochliftError, match="corner_size"):
        corner_breakthrough_time(frames, 0.5, 9)
    result = evaluate_physics([frames], [frames[:2]], CornerBreakthrough(0.5, 3))
    np.testing.assert_allclose(result.tau_reference, [0.4, 0.2, 1.0])
    assert result.to_dict()["crossing"] == "corner" and result.to_dict()["corner_size"] == 3


def _flow_file(path: Path, frames: np.ndarray, corner: int) -> Path:
    meta = TrajectoryMeta(
        dataset_name="flow-hand", problem="flow", field_names=("saturation",),
        time=np.linspace(0, 0.7, frames.shape[1]), x=np.arange(8.0), y=np.arange(8.0),
        parameters={"qoi_corner_size": corner, "qoi_crossing_threshold": 0.5},
    )
    write_trajectories(path, meta, {"test": frames})
    return path


def test_evaluate_picks_the_corner_breakthrough_for_flow_files(tmp_path: Path):
    frames = np.zeros((3, 11, 1, 8, 8), dtype=np.float32)
    frames[:, 1:] = 0.1
    frames[0, 3:, 0, 6, 6] = 0.7  # breakthrough at 0.3 with a 2-pixel corner, never with 1 pixel
    frames[1, 6:, 0, 7, 7] = 0.7
    path = _flow_file(tmp_path / "hand.h5", frames, corner=2)
    report, metrics = evaluate_files(path, path, tmp_path / "metrics.json")
    np.testing.assert_allclose(metrics.tau_reference, [0.3, 0.6, 1.0])
    assert report["wct"] == 0 and report["mass_w2"] == 0 and report["crossing"] == "corner"
    assert report["threshold"] == 0.5 and report["corner_size"] == 2
    one_pixel = _flow_file(tmp_path / "one.h5", frames, corner=1)
    np.testing.assert_allclose(evaluate_files(one_pixel, one_pixel)[1].tau_reference, [1.0, 0.6, 1.0])
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert {"wct", "wct_relative", "mass_w2", "mass_w2_relative"} <= saved.keys()


def test_evaluate_a_generated_flow_file_against_itself(tmp_path: Path):
    path = make_flow_dataset(tmp_path / "flow.h5", seed=0, workers=1, **{**TINY, "trajectories": 4})
    report, metrics = evaluate_files(path, path, reference_split="test", generated_split="test")
    assert report["wct"] == 0 and report["mass_w2"] == 0 and report["problem"] == "flow"
    expected = corner_breakthrough_time(TrajectoryFile(path).read("test"), 0.5, 2)
    np.testing.assert_array_equal(metrics.tau_reference, expected)


# --- command line ----------------------------------------------------------------------------------


def test_cli_data_flow_writes_a_file(run_cli, tmp_path: Path):
    out = tmp_path / "x.h5"
    result = run_cli("data", "flow", "--out", out, "--trajectories", "6", "--size", "16", "--frames", "5",
                     "--workers", "1", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "wrote" in result.stdout and TrajectoryFile(out).splits == {"train": 2, "valid": 1, "test": 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.h5"]


@pytest.mark.parametrize(
    "args, fragment",
    [(["--size", "0"], "must be a positive integer"), (["--preset", "huge"], "huge"),
     (["--workers", "-1"], "must be a positive integer")],
)
def test_cli_data_flow_bad_options(run_cli_inprocess, tmp_path: Path, args, fragment):
    result = run_cli_inprocess("data", "flow", "--out", tmp_path / "x.h5", *args)
    assert result.returncode == 2 and fragment in result.stderr and "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_cli_data_flow_stochlift_error_is_one_line(run_cli_inprocess, tmp_path: Path):
    result = run_cli_inprocess("data", "flow", "--out", tmp_path / "x.h5", "--frames", "1", "--quiet")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: flow: frames"), result.stderr
    assert list(tmp_path.iterdir()) == []
