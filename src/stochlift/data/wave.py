"""The "Wave" problem: 2-D wave equation u_tt = c(x)^2 Lap(u) in random media on [0, 2pi)^2.

Spectral (FFT) Laplacian, leapfrog in time, many trajectories at once as one [B, n, n] array.
Every random draw comes from ``numpy.random.default_rng([seed, i])`` for trajectory index i, so a
result depends only on (seed, index): not on batch_size, nor on how a caller splits the set.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import scipy.fft

from stochlift.errors import StochliftError
from stochlift.progress import tqdm

#: Solver precision. float64 costs 2.3-3x float32 per step; float32 stays within 4e-5 of max|u| of the
#: float64 solution over 2016 steps, and both drift the same 3e-4 in energy (the O(dt^2) scheme error).
SOLVER_DTYPE = np.float32
#: FFT threads (scipy.fft workers). Plain threads, unlike torch's OpenMP pool, do not collapse when
#: other processes share the cores (torch.fft ran 3-9x slower than this on a busy 2-core machine).
FFT_WORKERS = min(2, os.cpu_count() or 1)


@dataclass(frozen=True)
class WaveParams:
    """Settings of the Wave data set; defaults follow the paper (t_end 8, 64 frames, 32x32)."""

    size: int = 32
    frames: int = 64
    t_end: float = 8.0
    dt_max: float = 4e-3
    solve_factor: int = 2
    speed_range: tuple[float, float] = (0.0, 1.0)
    bump_sharpness: float = 30.0
    spectrum_peak: float = 1.0
    spectrum_width: float = 0.5

    def validate(self) -> None:
        """Raise StochliftError naming the first bad setting."""
        numbers = {"t_end": self.t_end, "dt_max": self.dt_max, "bump_sharpness": self.bump_sharpness,
                   "spectrum_peak": self.spectrum_peak, "spectrum_width": self.spectrum_width,
                   "speed_range[0]": self.speed_range[0], "speed_range[1]": self.speed_range[1]}
        for name, value in numbers.items():
            if not math.isfinite(value):
                raise StochliftError(f"wave: {name} must be a finite number, got {value}")
        checks = [
            (self.size > 0, f"size must be > 0, got {self.size}"),
            (self.frames >= 2, f"frames must be >= 2 (initial + final), got {self.frames}"),
            (self.t_end > 0, f"t_end must be > 0, got {self.t_end}"),
            (self.dt_max > 0, f"dt_max must be > 0, got {self.dt_max}"),
            (self.solve_factor >= 1, f"solve_factor must be >= 1, got {self.solve_factor}"),
            (0 <= self.speed_range[0] < self.speed_range[1],
             f"speed_range must satisfy 0 <= lo < hi, got {self.speed_range}"),
            (self.bump_sharpness > 0, f"bump_sharpness must be > 0, got {self.bump_sharpness}"),
            (self.spectrum_peak > 0, f"spectrum_peak must be > 0, got {self.spectrum_peak}"),
            (self.spectrum_width > 0, f"spectrum_width must be > 0, got {self.spectrum_width}"),
        ]
        for ok, message in checks:
            if not ok:
                raise StochliftError(f"wave: {message}")


@dataclass
class WaveSimulation:
    """Trajectories in physical units (not normalised) plus everything needed to reproduce them."""

    u: np.ndarray  # [N, frames, size, size] float32
    speed: np.ndarray  # [N, size, size] float32, c subsampled to the stored grid (scaled on the fine grid)
    time: np.ndarray  # [frames] float64, 0..t_end
    x: np.ndarray  # [size] float64, 2 pi j / size
    params: WaveParams
    seed: int
    solver_steps: int
    dt: float


def grid(n: int) -> np.ndarray:
    """Points x_j = 2 pi j / n; subsampling x[::f] keeps pi (the bump centre) on the grid."""
    return 2.0 * np.pi * np.arange(n) / n


def initial_bump(n: int, sharpness: float) -> np.ndarray:
    """u0 = exp(-sharpness |x - (pi, pi)|^2), plain Euclidean distance (no periodic images)."""
    x = grid(n) - np.pi
    return np.exp(-sharpness * (x[:, None] ** 2 + x[None, :] ** 2))


def step_count(params: WaveParams) -> int:
    """Smallest multiple of (frames - 1) with t_end / steps <= dt_max, so frames are evenly spaced."""
    intervals = params.frames - 1  # the 1e-12 absorbs round-off such as 8 / 4e-3 = 2000.0000000000002
    per_frame = math.ceil(params.t_end / (params.dt_max * intervals) * (1 - 1e-12))
    return max(1, per_frame) * intervals


def sample_speed_fields(n: int, n_grid: int, params: WaveParams, seed: int,
                        first_index: int = 0) -> np.ndarray:
    """Random smooth speed fields [n, n_grid, n_grid], each min-max scaled to params.speed_range.

    c = Re IFFT2(a(|k|) * (g1 + i g2)), g1, g2 standard normal per mode, with the log-normal amplitude
    a(|k|) = exp(-(ln(|k| / spectrum_peak))^2 / (2 spectrum_width^2)) for |k| > 0 and a(0) = 0.
    This is one isotropic scalar field (the paper summed the two components of a filtered random
    velocity field; both are smooth isotropic fields with power near |k| = peak). Trajectory i uses
    default_rng([seed, i]) so fields do not depend on how the index range is split.
    """
    if seed < 0 or first_index < 0:
        raise StochliftError(f"wave: seed and first_index must be >= 0, got {seed}, {first_index}")
    k = np.fft.fftfreq(n_grid) * n_grid
    k_abs = np.hypot(k[:, None], k[None, :])
    amplitude = np.zeros_like(k_abs)
    nonzero = k_abs > 0
    amplitude[nonzero] = np.exp(-np.log(k_abs[nonzero] / params.spectrum_peak) ** 2
                                / (2 * params.spectrum_width**2))
    lo, hi = params.speed_range
    fields = np.empty((n, n_grid, n_grid))
    for j in range(n):
        rng = np.random.default_rng([seed, first_index + j])
        noise = rng.standard_normal((2, n_grid, n_grid))
        field = np.fft.ifft2(amplitude * (noise[0] + 1j * noise[1])).real
        span = field.max() - field.min()
        fields[j] = lo + (hi - lo) * (field - field.min()) / span
    return fields


def _minus_k_squared(n: int) -> np.ndarray:
    """-(kx^2 + ky^2) on the rfft2 half-spectrum of an n x n 2pi-periodic grid."""
    ky = np.fft.fftfreq(n) * n
    kx = np.fft.rfftfreq(n) * n
    return -(ky[:, None] ** 2 + kx[None, :] ** 2)


def solve_wave(u0: np.ndarray, speed: np.ndarray, t_end: float, steps: int, frame_every: int, *,
               stride: int = 1, dtype: type = SOLVER_DTYPE, workers: int = FFT_WORKERS) -> np.ndarray:
    """Leapfrog for u_tt = c^2 Lap u with zero initial velocity; returns [B, steps/frame_every + 1, ...].

    u0: [n, n] or [B, n, n]; speed: [B, n, n]. Frame k is step k * frame_every, frame 0
    is u0. ``stride`` subsamples the stored frames ([..., ::stride, ::stride]) to save memory.
    Stable only for dt * max(c) * max|k| < 2 (simulate_wave checks this; callers here must).
    """
    if steps < 1 or frame_every < 1 or steps % frame_every:
        raise StochliftError(f"wave: steps ({steps}) must be a positive multiple of frame_every ({frame_every})")
    speed = np.asarray(speed)
    if speed.ndim != 3:
        raise StochliftError(f"wave: speed must be [B, n, n], got shape {speed.shape}")
    n = speed.shape[-1]
    dt = t_end / steps
    c2dt2: np.ndarray = (speed.astype(np.float64) ** 2 * dt**2).astype(dtype)
    symbol: np.ndarray = _minus_k_squared(n).astype(dtype)

    def c2dt2_lap(v: np.ndarray) -> np.ndarray:
        """dt^2 c^2 Lap(v), computed in the dtype of v."""
        v_hat = scipy.fft.rfft2(v, workers=workers)
        v_hat *= symbol
        lap = scipy.fft.irfft2(v_hat, s=(n, n), workers=workers)
        lap *= c2dt2
        return lap

    u: np.ndarray = np.broadcast_to(np.asarray(u0, dtype=dtype), speed.shape).copy()
    frames = np.empty((speed.shape[0], steps // frame_every + 1, *u[0, ::stride, ::stride].shape), dtype)
    frames[:, 0] = u[:, ::stride, ::stride]
    u_prev, u = u, u + 0.5 * c2dt2_lap(u)  # zero initial velocity
    for step in range(1, steps + 1):
        if step % frame_every == 0:
            frames[:, step // frame_every] = u[:, ::stride, ::stride]
        if step < steps:  # u_next = 2u - u_prev + dt^2 c^2 Lap(u), written into u_prev's buffer
            np.subtract(u, u_prev, out=u_prev)
            u_prev += u
            u_prev += c2dt2_lap(u)
            u_prev, u = u, u_prev
    return frames


def _check_stability(params: WaveParams, dt: float) -> None:
    """Leapfrog with a spectral Laplacian is stable only for dt * c_max * k_max < 2."""
    n_solve = params.size * params.solve_factor
    k_max = math.sqrt(2.0) * (n_solve // 2)
    if dt * params.speed_range[1] * k_max >= 2.0:
        raise StochliftError(f"wave: dt={dt:.3g} is unstable for speed {params.speed_range[1]} on a "
                             f"{n_solve}^2 grid; lower dt_max below {2.0 / (params.speed_range[1] * k_max):.3g}")


def simulate_wave(n_trajectories: int, params: WaveParams = WaveParams(), *, seed: int = 0,
                  batch_size: int = 128, progress: bool = False, first_index: int = 0) -> WaveSimulation:
    """Simulate trajectories [first_index, first_index + n_trajectories) of the seeded Wave set."""
    params.validate()
    if n_trajectories <= 0:
        raise StochliftError(f"wave: n_trajectories must be > 0, got {n_trajectories}")
    if batch_size <= 0:
        raise StochliftError(f"wave: batch_size must be > 0, got {batch_size}")
    steps = step_count(params)
    dt = params.t_end / steps
    _check_stability(params, dt)
    f, n_solve = params.solve_factor, params.size * params.solve_factor
    speed = sample_speed_fields(n_trajectories, n_solve, params, seed, first_index)
    u0 = initial_bump(n_solve, params.bump_sharpness)
    u = np.empty((n_trajectories, params.frames, params.size, params.size), dtype=np.float32)
    starts = range(0, n_trajectories, batch_size)
    for start in tqdm(starts, desc="wave", unit="batch", disable=not progress):
        stop = min(start + batch_size, n_trajectories)
        u[start:stop] = solve_wave(u0, speed[start:stop], params.t_end, steps,
                                   steps // (params.frames - 1), stride=f)
    return WaveSimulation(
        u=u, speed=speed[:, ::f, ::f].astype(np.float32),
        time=np.linspace(0.0, params.t_end, params.frames), x=grid(n_solve)[::f],
        params=params, seed=seed, solver_steps=steps, dt=dt)
