"""The "Flow" problem: incompressible, immiscible two-phase (water/oil) flow through a porous medium.

IMPES after Aarnes, Gimse and Lie (2007), "An Introduction to the Numerics of Flow in Porous Media
using Matlab": each pressure step solves the elliptic pressure equation -div(K lambda_t(s) grad p) = q
with a two-point flux approximation (TPFA), then advances the saturation phi ds/dt + div(f(s) v) = q_w
with explicit single-point upstream weighting in CFL-limited sub-steps.

Conventions (why they matter: the data set and the crossing-time QoI depend on them):
- Arrays are [rows, cols] = [y, x]; row 0 is drawn at the top. Cell (i, j) covers
  [j hx, (j + 1) hx] x [i hy, (i + 1) hy] of the rectangle `extent` = (height, width), unit square by default.
- The injector is cell (0, 0) (the upper-left corner, as in the paper), the producer the opposite
  corner cell (rows - 1, cols - 1). Both are rates per cell (volume per unit time), +rate and -rate.
- Units are the listing's dimensionless ones: with a unit square, porosity 1 and rate 1, time equals the
  pore volumes injected, so the end time 0.7 means 70 % of the pore space has been flooded.
- Saturation s is the water saturation in [swc, 1 - sor]; the reservoir starts at s = swc (no mobile water,
  zero with the default swc = 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from stochlift.errors import StochliftError

if TYPE_CHECKING:
    import torch

__all__ = ["FlowParams", "FlowRun", "fractional_flow", "mobilities", "run_flow", "solve_flow", "solve_pressure",
           "step_plan"]


@dataclass(frozen=True)
class FlowParams:
    """Physical and numerical settings. Defaults: the listing's fluids and wells on the paper's grid.

    shape: cells (rows, cols); 100 x 100 in the paper. extent: (height, width) of the domain.
    porosity, mu_w, mu_o: porosity and water/oil viscosities. swc, sor: connate water and residual oil
    saturations. rate: injection rate q (the producer takes out the same). t_end: end time (0.7 pore
    volumes). dt: the IMPES pressure step (see `step_plan`). frames: stored frames, t = 0 included.
    """

    shape: tuple[int, int] = (100, 100)
    extent: tuple[float, float] = (1.0, 1.0)
    porosity: float = 1.0
    mu_w: float = 1.0
    mu_o: float = 1.0
    swc: float = 0.0
    sor: float = 0.0
    rate: float = 1.0
    t_end: float = 0.7
    dt: float = 0.007
    frames: int = 50

    def validate(self) -> None:
        """Raise StochliftError naming the first bad setting."""
        numbers = {"extent[0]": self.extent[0], "extent[1]": self.extent[1], "porosity": self.porosity,
                   "mu_w": self.mu_w, "mu_o": self.mu_o, "swc": self.swc, "sor": self.sor, "rate": self.rate,
                   "t_end": self.t_end, "dt": self.dt}
        for name, value in numbers.items():
            if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(value):
                raise StochliftError(f"flow: {name} must be a finite number, got {value!r}")
        checks = [
            (len(self.shape) == 2 and all(isinstance(n, (int, np.integer)) and n >= 1 for n in self.shape)
             and self.shape[0] * self.shape[1] >= 2,
             f"shape must be two positive cell counts (at least 2 cells), got {self.shape}"),
            (len(self.extent) == 2 and min(self.extent) > 0, f"extent must be two lengths > 0, got {self.extent}"),
            (0 < self.porosity <= 1, f"porosity must be in (0, 1], got {self.porosity}"),
            (self.mu_w > 0, f"mu_w (water viscosity) must be > 0, got {self.mu_w}"),
            (self.mu_o > 0, f"mu_o (oil viscosity) must be > 0, got {self.mu_o}"),
            (self.swc >= 0 and self.sor >= 0 and self.swc + self.sor < 1,
             f"residual saturations need swc >= 0, sor >= 0, swc + sor < 1, got swc={self.swc}, sor={self.sor}"),
            (self.rate > 0, f"rate must be > 0, got {self.rate}"),
            (self.dt > 0, f"dt (pressure step) must be > 0, got {self.dt}"),
            (self.t_end >= self.dt, f"t_end ({self.t_end}) must be at least one pressure step dt ({self.dt})"),
            (isinstance(self.frames, (int, np.integer)) and self.frames >= 2,
             f"frames must be an integer >= 2 (initial + final), got {self.frames}"),
        ]
        for ok, message in checks:
            if not ok:
                raise StochliftError(f"flow: {message}")


@dataclass
class FlowRun:
    """One simulated trajectory with its bookkeeping (volumes in the units of rate * time)."""

    saturation: np.ndarray  # [frames, rows, cols] float64
    time: np.ndarray  # [frames]
    injected: np.ndarray  # [frames] cumulative injected water volume
    produced: np.ndarray  # [frames] cumulative produced water volume
    pressure_steps: int
    transport_steps: int
    pore_volume: float  # of one cell
    swc: float

    @property
    def water_volume(self) -> np.ndarray:
        """[frames] water in place above connate water, sum((s - swc) * pore volume); = injected - produced."""
        return (self.saturation - self.swc).sum(axis=(1, 2)) * self.pore_volume


# saturations as numpy arrays or torch tensors (array methods only: the sampling constraint passes tensors)
_Field = TypeVar("_Field", np.ndarray, "torch.Tensor")


def mobilities(s: _Field, params: FlowParams) -> tuple[_Field, _Field]:
    """Quadratic Corey mobilities: lambda_w = S^2 / mu_w, lambda_o = (1 - S)^2 / mu_o, S normalised.
    Array methods only, so torch tensors work too (the sampling constraint's water balance)."""
    norm = ((s - params.swc) / (1.0 - params.swc - params.sor)).clip(0.0, 1.0)
    return norm * norm / params.mu_w, (1.0 - norm) * (1.0 - norm) / params.mu_o


def fractional_flow(s: _Field, params: FlowParams) -> _Field:
    """Water fractional flow f = lambda_w / (lambda_w + lambda_o) (the total mobility is never zero)."""
    lw, lo = mobilities(s, params)
    return lw / (lw + lo)


def _fractional_flow_fast(s: np.ndarray, params: FlowParams, buffers: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """fractional_flow(s) for the transport loop, in preallocated buffers (it runs ~20,000 times a trajectory).

    f = S^2 / (S^2 + (mu_w / mu_o) (1 - S)^2), the same as lambda_w / (lambda_w + lambda_o).
    """
    norm, oil = buffers
    np.subtract(s, params.swc, out=norm)
    norm *= 1.0 / (1.0 - params.swc - params.sor)
    np.clip(norm, 0.0, 1.0, out=norm)
    np.subtract(1.0, norm, out=oil)
    oil *= oil
    oil *= params.mu_w / params.mu_o
    norm *= norm
    oil += norm
    norm /= oil
    return norm


def _max_slope(params: FlowParams) -> float:
    """max df/dS over the normalised saturation S (2 for equal viscosities)."""
    norm = np.linspace(0.0, 1.0, 20001)
    lw, lo = norm**2 / params.mu_w, (1.0 - norm) ** 2 / params.mu_o
    return float(np.max(np.abs(np.diff(lw / (lw + lo)))) / (norm[1] - norm[0]))


def step_plan(params: FlowParams) -> tuple[int, float]:
    """(pressure steps per stored frame, pressure step length).

    Frames are evenly spaced over [0, t_end]; each frame interval is split into the whole number of equal
    pressure steps nearest to `dt`, so every frame is hit exactly. The paper's 50 frames over 0.7 give
    2 steps of 0.00714 per frame (98 pressure solves; dt = 0.007 itself with 51 frames).
    """
    interval = params.t_end / (params.frames - 1)
    per_frame = max(1, round(interval / params.dt))
    return per_frame, interval / per_frame


def _check_permeability(perm: np.ndarray, params: FlowParams) -> np.ndarray:
    perm = np.asarray(perm, dtype=np.float64)
    if perm.shape != tuple(params.shape):
        raise StochliftError(f"flow: permeability has shape {perm.shape}, the grid is {tuple(params.shape)}")
    if not np.all(np.isfinite(perm)):
        raise StochliftError("flow: permeability contains NaN or Inf")
    if not np.all(perm > 0):
        raise StochliftError(f"flow: permeability must be > 0 everywhere, minimum is {perm.min():.3g}")
    return perm


def _sources(params: FlowParams) -> np.ndarray:
    """Flat source vector: +rate in the injector (first) cell, -rate in the producer (last) cell."""
    q = np.zeros(params.shape[0] * params.shape[1])
    q[0], q[-1] = params.rate, -params.rate
    return q


def _transmissibilities(kl: np.ndarray, params: FlowParams) -> tuple[np.ndarray, np.ndarray]:
    """TPFA face transmissibilities [rows, cols - 1] (x faces) and [rows - 1, cols] (y faces).

    T = 2 (face area / distance) / (1/k_a + 1/k_b): the harmonic average of k = K lambda_t of the two
    cells, which is exact for a layered medium. Boundary faces are absent: no flow through them.
    """
    hy, hx = params.extent[0] / params.shape[0], params.extent[1] / params.shape[1]
    inv = 1.0 / kl
    tx = 2.0 * (hy / hx) / (inv[:, :-1] + inv[:, 1:])
    ty = 2.0 * (hx / hy) / (inv[:-1, :] + inv[1:, :])
    return tx, ty


def solve_pressure(kl: np.ndarray, params: FlowParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pressure [rows, cols] and face fluxes (vx [rows, cols-1] to +x, vy [rows-1, cols] to +y).

    kl = K * lambda_t(s). The TPFA matrix of a closed domain is singular (p is defined up to a constant);
    as in the listing, adding the cell's directional k's to A[0, 0] fixes the gauge p(injector) = 0
    without changing the fluxes (the rows of A sum to zero and so do the sources). Sparse direct LU.
    """
    rows, cols = params.shape
    n = rows * cols
    tx, ty = _transmissibilities(kl, params)
    east = np.zeros((rows, cols))  # transmissibility to the right-hand neighbour (0 on the last column)
    south = np.zeros((rows, cols))  # ... to the neighbour below (0 on the last row)
    east[:, :-1], south[:-1, :] = tx, ty
    diag = east + south
    diag[:, 1:] += tx
    diag[1:, :] += ty
    diag = diag.ravel()
    diag[0] += 2.0 * kl[0, 0]
    e, s = east.ravel(), south.ravel()
    a = sp.diags([-s[: n - cols], -e[: n - 1], diag, -e[: n - 1], -s[: n - cols]],
                 [-cols, -1, 0, 1, cols], shape=(n, n), format="csc")
    lu = spla.splu(a, permc_spec="MMD_AT_PLUS_A", diag_pivot_thresh=0.0,
                   options={"SymmetricMode": True})  # SPD: no pivoting, a symmetric fill-reducing order
    q = _sources(params)
    p = lu.solve(q)
    p += lu.solve(q - a @ p)  # one step of iterative refinement: fluxes nearly divergence-free at contrast e^18
    p = p.reshape(rows, cols)
    return p, tx * (p[:, :-1] - p[:, 1:]), ty * (p[:-1, :] - p[1:, :])


def _upwind_operator(vx: np.ndarray, vy: np.ndarray, params: FlowParams) -> tuple[sp.csr_matrix, np.ndarray]:
    """Upstream-weighted transport matrix A (A @ f = net water inflow per cell) and each cell's influx.

    A face flux v from cell a to cell b carries v f(s_a): column a loses it, row b gains it. The producer
    removes rate * f(s) of its own cell. Columns of A sum to zero apart from the producer, so the scheme
    conserves water to round-off.
    """
    rows, cols = params.shape
    n = rows * cols
    xp: np.ndarray
    xn: np.ndarray
    yp: np.ndarray
    yn: np.ndarray
    xp, xn, yp, yn = (np.zeros((rows, cols)) for _ in range(4))
    xp[:, :-1], xn[:, :-1] = np.maximum(vx, 0.0), np.minimum(vx, 0.0)
    yp[:-1, :], yn[:-1, :] = np.maximum(vy, 0.0), np.minimum(vy, 0.0)
    diag: np.ndarray = -(xp + yp)  # outflow to the right / below
    diag[:, 1:] += xn[:, :-1]  # outflow to the left (negative flux of the face on the left)
    diag[1:, :] += yn[:-1, :]  # outflow upwards
    influx = np.zeros((rows, cols))
    influx[:, 1:] += xp[:, :-1]
    influx[1:, :] += yp[:-1, :]
    influx -= xn + yn
    diag = diag.ravel()
    diag[-1] -= params.rate
    xp, xn, yp, yn = xp.ravel(), xn.ravel(), yp.ravel(), yn.ravel()
    a = sp.diags([yp[: n - cols], xp[: n - 1], diag, -xn[: n - 1], -yn[: n - cols]],
                 [-cols, -1, 0, 1, cols], shape=(n, n), format="csr")
    return a, influx.ravel()


def run_flow(perm: np.ndarray, params: FlowParams = FlowParams()) -> FlowRun:
    """Simulate one trajectory in permeability `perm` [rows, cols] (any positive array, homogeneous too).

    Each pressure step: solve the pressure with the saturation at its start, then transport with
    n = ceil(step / dt_cfl) equal explicit sub-steps, where (the listing's rule)
        dt_cfl = (1 - swc - sor) / 3 * min_i pv_i / (influx_i + q+_i).
    The 3 is 1.5 times the largest slope of f for equal viscosities (2); for other viscosity ratios the
    divisor becomes 1.5 times that slope (never below 3), keeping the listing's safety margin.
    """
    params.validate()
    perm = _check_permeability(perm, params)
    rows, cols = params.shape
    pore_volume = params.porosity * params.extent[0] * params.extent[1] / (rows * cols)
    divisor = max(3.0, 1.5 * _max_slope(params))
    per_frame, step = step_plan(params)
    s = np.full(rows * cols, params.swc, dtype=np.float64)
    buffers = (np.empty_like(s), np.empty_like(s))
    frames = np.empty((params.frames, rows, cols))
    frames[0] = s.reshape(rows, cols)
    injected, produced = np.zeros(params.frames), np.zeros(params.frames)
    produced_total, transport_steps = 0.0, 0
    for k in range(1, params.frames):
        for _ in range(per_frame):
            lw, lo = mobilities(s, params)
            _, vx, vy = solve_pressure(perm * (lw + lo).reshape(rows, cols), params)
            a, influx = _upwind_operator(vx, vy, params)
            influx[0] += params.rate
            dt_cfl = (1.0 - params.swc - params.sor) / divisor * pore_volume / influx.max()
            count = math.ceil(step / dt_cfl * (1 - 1e-12))
            dt_sub = step / count
            a = a * (dt_sub / pore_volume)
            inject = params.rate * dt_sub / pore_volume
            for _ in range(count):
                f = _fractional_flow_fast(s, params, buffers)
                produced_total += params.rate * dt_sub * f[-1]
                s += a @ f
                s[0] += inject
            transport_steps += count
        frames[k] = s.reshape(rows, cols)
        injected[k] = params.rate * step * per_frame * k
        produced[k] = produced_total
    return FlowRun(frames, np.linspace(0.0, params.t_end, params.frames), injected, produced,
                   per_frame * (params.frames - 1), transport_steps, pore_volume, params.swc)


def solve_flow(perm: np.ndarray, params: FlowParams = FlowParams()) -> np.ndarray:
    """Water saturation frames [frames, rows, cols] (float64) at evenly spaced times 0..t_end."""
    return run_flow(perm, params).saturation
