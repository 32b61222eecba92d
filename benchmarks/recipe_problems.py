"""Study problems of benchmarks/recipe_rules.py: exact or finely simulated stochastic processes, and scores.

Each problem draws trajectories [N, T, *state] from its law, from a shared start or from random starts.
A run trains on `n_train` of them and is scored against two fresh, independent true ensembles A and B:
the model rolls out from A's starts, and every score is given relative to its floor, the same score of
A against B (two exact samples of the same sizes), so 1.0 is the sampling error of the law itself.

- lg4: a 4-variable linear-Gaussian SDE x_{t+1} = A x_t + S eps (exact law), the issue's vector problem;
  lg4short: the same with 8 frames instead of 32.
- ac1d: stochastic Allen-Cahn u_t = nu u_xx + u - u^3 + sigma W' on a periodic line of 32 points.
- ac2d: the same on a periodic 16x16 grid.
- wave: the project's Wave problem (32x32, 64 frames; the initial bump is shared), for the 2-D U-Net.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from stochlift.metrics.ensemble import energy_score_fair_unpaired, sliced_wasserstein2

# ------------------------------------------------------------------------------------ linear-Gaussian SDE


def _lg4_matrices() -> tuple[np.ndarray, np.ndarray]:
    """A = Q blockdiag(0.95 R(0.15), 0.85 R(0.6)) Q^T (two damped rotations, mixed), S with correlated noise."""
    def rot(a: float) -> np.ndarray:
        return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])

    q, _ = np.linalg.qr(np.random.default_rng(2024).normal(size=(4, 4)))
    b = np.zeros((4, 4))
    b[:2, :2], b[2:, 2:] = 0.95 * rot(0.15), 0.85 * rot(0.6)
    s = np.array([[0.30, 0, 0, 0], [0.12, 0.20, 0, 0], [0.0, -0.10, 0.25, 0], [0.05, 0.0, 0.10, 0.15]])
    return q @ b @ q.T, s


LG4_A, LG4_S = _lg4_matrices()
LG4_START = np.array([2.0, -1.0, 1.0, 0.5])


def simulate_lg4(n: int, frames: int, shared: bool, seed: int) -> np.ndarray:
    """[n, frames, 4]; x_0 = LG4_START (shared) or N(0, 1.5^2 I) per trajectory."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, frames, 4))
    x[:, 0] = LG4_START if shared else 1.5 * rng.normal(size=(n, 4))
    for t in range(frames - 1):
        x[:, t + 1] = x[:, t] @ LG4_A.T + rng.normal(size=(n, 4)) @ LG4_S.T
    return x.astype(np.float32)


# ------------------------------------------------------------------------------- stochastic Allen-Cahn


@dataclass(frozen=True)
class AllenCahn:
    """du = (nu Lap u + u - u^3) dt + sigma dW on a periodic box [0, 2 pi)^dims, semi-implicit spectral steps."""

    size: int
    dims: int
    nu: float
    sigma: float
    frame_dt: float = 0.25
    substeps: int = 25

    def _decay(self) -> np.ndarray:
        k = np.fft.fftfreq(self.size, d=1.0 / self.size)
        k2 = sum(np.meshgrid(*([k**2] * self.dims), indexing="ij"))
        return 1.0 / (1.0 + (self.frame_dt / self.substeps) * self.nu * k2)

    def initial(self, n: int, shared: bool, rng: np.random.Generator) -> np.ndarray:
        """A shared weak pattern near the unstable u = 0 (the noise decides the domains), or random smooth fields."""
        x = np.linspace(0, 2 * np.pi, self.size, endpoint=False)
        grids = np.meshgrid(*([x] * self.dims), indexing="ij")
        if shared:
            pattern = 0.3 * np.sin(grids[0]) + 0.2 * np.cos(2 * grids[-1] + 1.0)
            return np.broadcast_to(pattern, (n, *pattern.shape)).copy()
        white = rng.normal(size=(n, *([self.size] * self.dims)))
        k = np.fft.fftfreq(self.size, d=1.0 / self.size)
        k2 = sum(np.meshgrid(*([k**2] * self.dims), indexing="ij"))
        axes = tuple(range(1, self.dims + 1))
        smooth = np.real(np.fft.ifftn(np.fft.fftn(white, axes=axes) * np.exp(-k2 / 8.0), axes=axes))
        return 0.8 * smooth / smooth.std(axis=axes, keepdims=True)

    def simulate(self, n: int, frames: int, shared: bool, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        dt = self.frame_dt / self.substeps
        dx = 2 * np.pi / self.size
        noise = self.sigma * np.sqrt(dt / dx**self.dims)  # space-time white noise on the grid
        axes = tuple(range(1, self.dims + 1))
        decay = self._decay()
        u = self.initial(n, shared, rng)
        out = np.empty((n, frames, *u.shape[1:]), dtype=np.float32)
        out[:, 0] = u
        for t in range(1, frames):
            for _ in range(self.substeps):
                explicit = u + dt * (u - u**3) + noise * rng.normal(size=u.shape)
                u = np.real(np.fft.ifftn(np.fft.fftn(explicit, axes=axes) * decay, axes=axes))
            out[:, t] = u
        return out


AC1D = AllenCahn(size=32, dims=1, nu=0.04, sigma=0.35)
AC2D = AllenCahn(size=16, dims=2, nu=0.08, sigma=0.35)


def simulate_wave(n: int, frames: int, shared: bool, seed: int) -> np.ndarray:
    """[n, 64, 32, 32] of the Wave problem (its start is always shared; `frames` is fixed at 64)."""
    from stochlift.data.wave import WaveParams
    from stochlift.data.wave import simulate_wave as wave

    return wave(n, WaveParams(), seed=seed).u


@dataclass(frozen=True)
class Problem:
    name: str
    frames: int
    simulate: Callable[[int, int, bool, int], np.ndarray]  # (n, frames, shared, seed) -> [n, T, *state]
    channel_axis: bool  # fields get a channel axis [C, ...] for the U-Nets
    ensemble: int  # size of each true ensemble (A, B) and of the generated one


PROBLEMS = {
    "lg4": Problem("lg4", 32, simulate_lg4, False, 1024),
    "lg4short": Problem("lg4short", 8, simulate_lg4, False, 1024),  # 4x fewer pairs per trajectory
    "ac1d": Problem("ac1d", 32, AC1D.simulate, True, 256),
    "ac2d": Problem("ac2d", 24, AC2D.simulate, True, 256),
    "wave": Problem("wave", 64, simulate_wave, True, 256),
}


def problem_data(problem: Problem, n: int, shared: bool, seed: int) -> np.ndarray:
    """Trajectories [n, T, *frame]: fields with a channel axis (C = 1), vectors as they are."""
    data = problem.simulate(n, problem.frames, shared, seed)
    return data[:, :, None] if problem.channel_axis else data


# -------------------------------------------------------------------------------------------- scores


def floor_scores(truth_a: np.ndarray, truth_b: np.ndarray) -> dict[str, list[float]]:
    """Per frame t >= 1: energy score and sliced W2 of true ensemble A against B, the floors of `time_scores`."""
    out: dict[str, list[float]] = {"es_floor": [], "sw2_floor": []}
    for t in range(1, truth_a.shape[1]):
        a, b = (x[:, t].reshape(len(x), -1).astype(np.float64) for x in (truth_a, truth_b))
        out["es_floor"].append(energy_score_fair_unpaired(a, b))
        out["sw2_floor"].append(sliced_wasserstein2(a, b, seed=t))
    return out


def time_scores(generated: np.ndarray, truth_b: np.ndarray, floors: dict[str, list[float]]) -> dict[str, list[float]]:
    """Per frame t >= 1: energy score and sliced W2 of the generated ensemble against B, with their floors
    (`floor_scores`), and the spread ratio (total std generated / total std of B). Inputs [M, T, *frame]."""
    out: dict[str, list[float]] = {"es": [], "sw2": [], "spread": [], **floors}
    for t in range(1, generated.shape[1]):
        g, b = (x[:, t].reshape(len(x), -1).astype(np.float64) for x in (generated, truth_b))
        out["es"].append(energy_score_fair_unpaired(g, b))
        out["sw2"].append(sliced_wasserstein2(g, b, seed=t))
        out["spread"].append(float(np.sqrt(g.var(axis=0).sum() / b.var(axis=0).sum())))
    return out


def summary_scores(curves: dict[str, list[float]]) -> dict[str, float]:
    """Means over time of the ratios to the floor (the issue's acceptance measure) and of the spread ratio."""
    es = np.array(curves["es"]) / np.array(curves["es_floor"])
    sw2 = np.array(curves["sw2"]) / np.array(curves["sw2_floor"])
    spread = np.array(curves["spread"])
    return {"es_ratio": float(es.mean()), "sw2_ratio": float(sw2.mean()), "spread": float(spread.mean()),
            "spread_first": float(spread[0]), "spread_last": float(spread[-1]),
            "sw2_ratio_max": float(sw2.max())}
