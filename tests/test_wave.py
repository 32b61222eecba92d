"""Tests of the Wave data generator: accuracy against exact solutions, conservation, seeding, API checks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stochlift.data.wave import (
    WaveParams,
    grid,
    initial_bump,
    sample_speed_fields,
    simulate_wave,
    solve_wave,
    step_count,
)
from stochlift.errors import StochliftError

SMALL = WaveParams(size=16, frames=5, t_end=1.0)


def _wavenumbers(n: int) -> tuple[np.ndarray, np.ndarray]:
    k = np.fft.fftfreq(n) * n
    return k, np.hypot(k[:, None], k[None, :])


def _exact_constant_speed(u0: np.ndarray, c: float, times: np.ndarray) -> np.ndarray:
    """Exact solution of the semi-discrete spectral problem: u_hat(t) = u0_hat cos(c |k| t)."""
    _, k_abs = _wavenumbers(u0.shape[-1])
    u0_hat = np.fft.fft2(u0)
    return np.stack([np.fft.ifft2(u0_hat * np.cos(c * k_abs * t)).real for t in times])


def _energy(u: np.ndarray, speed: np.ndarray, dt: float) -> np.ndarray:
    """E = 1/2 sum u_t^2 / c^2 + 1/2 sum |grad u|^2 (u_t by central differences) at steps 1..T-1."""
    u = u.astype(np.float64)
    u_t = (u[2:] - u[:-2]) / (2 * dt)
    _, k_abs = _wavenumbers(u.shape[-1])
    grad2 = (k_abs**2 * np.abs(np.fft.fft2(u[1:-1])) ** 2).sum((-2, -1)) / u.shape[-1] ** 2
    return 0.5 * (u_t**2 / speed**2).sum((-2, -1)) + 0.5 * grad2


def _reflect(u: np.ndarray, axis: int) -> np.ndarray:
    """u at the mirror point x -> 2 pi - x, i.e. index j -> -j mod n (a reflection about pi)."""
    return np.roll(np.flip(u, axis), 1, axis)


# --- solver accuracy ------------------------------------------------------------------------------

def test_constant_speed_matches_exact_solution_with_second_order_error():
    n, c, t_end = 32, 0.7, 2.0
    u0 = initial_bump(n, 30.0)
    speed = np.full((1, n, n), c)
    exact = _exact_constant_speed(u0, c, np.linspace(0, t_end, 5))
    errors = []
    for steps in (200, 400):
        u = solve_wave(u0, speed, t_end, steps, steps // 4, dtype=np.float64)[0]
        errors.append(np.abs(u - exact).max())
    assert errors[1] < 1e-3, errors
    assert 3.5 < errors[0] / errors[1] < 4.5, errors  # leapfrog is O(dt^2)
    # the default (float32) path is just as close at the dt used for the data set
    u32 = solve_wave(u0, speed, t_end, 500, 125)[0]
    assert np.abs(u32 - exact).max() < 1e-3


def test_energy_is_conserved_in_variable_medium():
    params = WaveParams(speed_range=(0.5, 1.0))
    n, steps = 32, step_count(params)
    speed = sample_speed_fields(2, n, params, seed=1)
    u = solve_wave(initial_bump(n, params.bump_sharpness), speed, params.t_end, steps, 1)
    dt = params.t_end / steps
    for b in range(2):
        energy = _energy(u[b], speed[b], dt)
        assert np.abs(energy / energy[0] - 1).max() < 1e-2
        # the wave has moved: most energy left the initial bump region (guards a frozen solver)
        assert np.abs(u[b, -1] - u[b, 0]).max() > 0.3


def test_constant_speed_solution_keeps_mirror_symmetry_about_pi():
    n = 32
    u = solve_wave(initial_bump(n, 30.0), np.full((2, n, n), 0.8), 4.0, 1000, 250)
    for axis in (-1, -2):
        np.testing.assert_allclose(_reflect(u, axis), u, atol=1e-5)
    np.testing.assert_allclose(np.swapaxes(u, -1, -2), u, atol=1e-5)


# --- time grid and frames -------------------------------------------------------------------------

@pytest.mark.parametrize("frames, t_end, dt_max, expected", [(64, 8.0, 4e-3, 2016), (2, 8.0, 4e-3, 2000),
                                                             (5, 1.0, 4e-3, 252), (3, 1.0, 0.6, 2)])
def test_step_count_is_smallest_multiple_of_frame_intervals(frames, t_end, dt_max, expected):
    steps = step_count(WaveParams(frames=frames, t_end=t_end, dt_max=dt_max))
    assert steps == expected
    assert t_end / steps <= dt_max * (1 + 1e-12)


def test_simulation_time_grid_initial_frame_and_shapes():
    sim = simulate_wave(3, SMALL, seed=0)
    assert sim.u.shape == (3, 5, 16, 16) and sim.u.dtype == np.float32
    assert sim.speed.shape == (3, 16, 16) and sim.speed.dtype == np.float32
    np.testing.assert_array_equal(sim.time, np.linspace(0.0, 1.0, 5))
    np.testing.assert_allclose(sim.x, grid(16), rtol=0, atol=1e-14)
    assert sim.solver_steps % 4 == 0 and sim.dt <= SMALL.dt_max
    assert math.isclose(sim.dt * sim.solver_steps, SMALL.t_end)
    for b in range(3):
        np.testing.assert_allclose(sim.u[b, 0], initial_bump(16, 30.0), atol=1e-7)
    assert np.isfinite(sim.u).all() and not np.allclose(sim.u[:, -1], sim.u[:, 0], atol=1e-2)


def test_last_frame_is_t_end():
    """The stored last frame is the solution at t_end: compare with a run that stores every step."""
    sim = simulate_wave(2, SMALL, seed=5)
    n = SMALL.size * SMALL.solve_factor
    speed = sample_speed_fields(2, n, SMALL, seed=5)
    dense = solve_wave(initial_bump(n, 30.0), speed, SMALL.t_end, sim.solver_steps, 1, stride=2)
    np.testing.assert_array_equal(sim.u, dense[:, :: sim.solver_steps // 4].astype(np.float32))


# --- seeding --------------------------------------------------------------------------------------

def test_same_seed_identical_and_different_seed_differs():
    a, b, c = (simulate_wave(4, SMALL, seed=s) for s in (3, 3, 4))
    np.testing.assert_array_equal(a.u, b.u)
    np.testing.assert_array_equal(a.speed, b.speed)
    assert not np.allclose(a.speed, c.speed) and not np.allclose(a.u[:, -1], c.u[:, -1])


def test_result_independent_of_batch_size_and_pieces():
    whole = simulate_wave(5, SMALL, seed=7, batch_size=64)
    for batch_size in (1, 2, 3):
        np.testing.assert_array_equal(simulate_wave(5, SMALL, seed=7, batch_size=batch_size).u, whole.u)
    first = simulate_wave(1, SMALL, seed=7)
    rest = simulate_wave(4, SMALL, seed=7, first_index=1, batch_size=3)
    np.testing.assert_array_equal(np.concatenate([first.u, rest.u]), whole.u)
    np.testing.assert_array_equal(np.concatenate([first.speed, rest.speed]), whole.speed)


# --- speed fields ---------------------------------------------------------------------------------

def test_speed_fields_fill_speed_range():
    params = WaveParams(speed_range=(0.2, 0.9))
    fields = sample_speed_fields(8, 64, params, seed=0)
    assert fields.shape == (8, 64, 64)
    assert np.allclose(fields.min((-2, -1)), 0.2, rtol=0, atol=1e-12)
    assert np.allclose(fields.max((-2, -1)), 0.9, rtol=0, atol=1e-12)
    assert not np.allclose(fields[0], fields[1])


def test_speed_fields_are_smooth_with_power_near_wavenumber_one():
    fields = sample_speed_fields(16, 64, WaveParams(), seed=2)
    _, k_abs = _wavenumbers(64)
    power = np.abs(np.fft.fft2(fields - fields.mean((-2, -1), keepdims=True))) ** 2
    assert power[:, k_abs <= 3].sum() > 0.95 * power.sum()
    per_mode = [power[:, np.isclose(k_abs, k)].mean() for k in (1, 2, 3)]
    assert per_mode[0] > per_mode[1] > per_mode[2]


# --- validation -----------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [dict(size=0), dict(frames=1), dict(t_end=0.0), dict(dt_max=-1e-3),
                                 dict(solve_factor=0), dict(speed_range=(1.0, 0.5)),
                                 dict(speed_range=(-0.1, 1.0)), dict(t_end=float("nan")),
                                 dict(dt_max=float("inf")), dict(speed_range=(0.0, float("inf")))])
def test_invalid_params_raise(bad):
    with pytest.raises(StochliftError):
        WaveParams(**bad).validate()
    with pytest.raises(StochliftError):
        simulate_wave(1, WaveParams(**bad))


def test_invalid_calls_raise():
    for kwargs in (dict(n_trajectories=0), dict(n_trajectories=1, seed=-1),
                   dict(n_trajectories=1, first_index=-2), dict(n_trajectories=1, batch_size=0)):
        with pytest.raises(StochliftError):
            simulate_wave(params=SMALL, **kwargs)
    with pytest.raises(StochliftError, match="unstable"):
        simulate_wave(1, WaveParams(size=64, dt_max=0.1))


def test_quiet_without_progress_and_bar_with_it(capsys):
    simulate_wave(1, SMALL)
    assert capsys.readouterr() == ("", "")
    simulate_wave(2, SMALL, batch_size=1, progress=True)
    assert "wave" in capsys.readouterr().err
