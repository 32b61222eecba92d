"""Random log-normal permeability K = exp(eps Z + Zbar + Y) of the Flow problem (paper Appendix D.2).

Z and Y are independent zero-mean Gaussian random fields with the Matérn covariance

    C(r) = sigma^2 2^(1 - nu) / Gamma(nu) (sqrt(2 nu) r / ell)^nu K_nu(sqrt(2 nu) r / ell),   C(0) = sigma^2,

with r and the correlation length ell both in grid cells (the paper's ell = 10 on 100 x 100 cells).
This is the Rasmussen-Williams (and scikit-learn) convention; libraries that write sqrt(nu) r / ell or
r / ell instead mean a length sqrt(2) or sqrt(2 nu) times shorter or longer for the same number.

Zbar is not defined in the paper. We read it as the mean of Z (its spatial average over the grid, one
number per field): "Zbar + eps Z" is then a mean plus a small noisy fluctuation around it. Any constant
added to log K scales K, hence the pressure, by a constant and leaves the Darcy fluxes and the saturation
unchanged (incompressible flow driven by fixed rates), so this reading only shifts the stored
log-permeability; the saturation statistics come from Y and eps Z.

Sampling is exact: circulant embedding on a torus of twice the grid in each direction (grown if an
eigenvalue were negative), one complex FFT per pair of independent fields (Dietrich and Newsam 1997).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.fft
from scipy.special import gamma, kv

from stochlift.errors import StochliftError

__all__ = ["MaternSampler", "PermeabilityParams", "log_permeability", "matern_covariance", "sample_log_permeability"]


@dataclass(frozen=True)
class PermeabilityParams:
    """The paper's permeability model: sigma = 3, ell = 10 cells, nu = 1, eps = 0.01."""

    sigma: float = 3.0
    correlation_length: float = 10.0  # in cells, Rasmussen-Williams convention (module docstring)
    nu: float = 1.0
    eps: float = 0.01

    def validate(self) -> None:
        for name in ("sigma", "correlation_length", "nu", "eps"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise StochliftError(f"permeability: {name} must be a finite number, got {value!r}")
        if self.sigma < 0 or self.eps < 0:
            raise StochliftError(f"permeability: sigma and eps must be >= 0, got {self.sigma}, {self.eps}")
        if self.correlation_length <= 0 or self.nu <= 0:
            raise StochliftError(
                f"permeability: correlation_length and nu must be > 0, got {self.correlation_length}, {self.nu}")


def matern_covariance(r: np.ndarray, sigma: float, length: float, nu: float) -> np.ndarray:
    """Matérn covariance C(r) (module docstring) for distances r >= 0, same units as `length`."""
    x = np.sqrt(2.0 * nu) * np.asarray(r, dtype=np.float64) / length
    out = np.full(x.shape, float(sigma) ** 2)
    pos = x > 0
    with np.errstate(under="ignore"):
        out[pos] = sigma**2 * 2.0 ** (1.0 - nu) / gamma(nu) * x[pos] ** nu * kv(nu, x[pos])
    return out


class MaternSampler:
    """Exact samples of a stationary Matérn field on a `shape` grid of unit cells (circulant embedding).

    The covariance is evaluated at wrapped distances on an (m0, m1) torus, m = 2 * shape to start;
    its 2-D FFT holds the eigenvalues of that circulant covariance. If they are all >= 0 (to round-off),
    FFT(sqrt(eigenvalues / (m0 m1)) * (g1 + i g2)) has real and imaginary parts that are two independent
    fields with exactly this covariance on the torus, so any (shape)-block of them has it exactly.
    """

    def __init__(self, shape: tuple[int, int], sigma: float, length: float, nu: float, max_factor: int = 8):
        self.shape = (int(shape[0]), int(shape[1]))
        if min(self.shape) < 1:
            raise StochliftError(f"permeability: grid shape must be positive, got {shape}")
        for factor in range(2, max_factor + 1):
            torus = (factor * self.shape[0], factor * self.shape[1])
            eig = self._eigenvalues(torus, sigma, length, nu)
            if eig.min() >= -1e-10 * max(eig.max(), 1e-300):
                break
        else:
            raise StochliftError(f"permeability: no non-negative circulant embedding up to {max_factor}x the grid "
                                 f"{self.shape} (correlation length {length} cells is too long for it)")
        self.torus = torus
        self._scale = np.sqrt(np.maximum(eig, 0.0) / (torus[0] * torus[1]))

    @staticmethod
    def _eigenvalues(torus: tuple[int, int], sigma: float, length: float, nu: float) -> np.ndarray:
        d0 = np.arange(torus[0])
        d1 = np.arange(torus[1])
        d0 = np.minimum(d0, torus[0] - d0)
        d1 = np.minimum(d1, torus[1] - d1)
        cov = matern_covariance(np.hypot(d0[:, None], d1[None, :]), sigma, length, nu)
        return scipy.fft.fft2(cov).real  # the wrapped covariance is even, so its spectrum is real

    def sample_pair(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Two independent fields [rows, cols] (float64) from one complex FFT."""
        noise = rng.standard_normal((2, *self.torus))
        field = scipy.fft.fft2(self._scale * (noise[0] + 1j * noise[1]))[: self.shape[0], : self.shape[1]]
        return field.real.copy(), field.imag.copy()


@lru_cache(maxsize=8)
def _sampler(shape: tuple[int, int], sigma: float, length: float, nu: float) -> MaternSampler:
    return MaternSampler(shape, sigma, length, nu)


def sample_log_permeability(shape: tuple[int, int], params: PermeabilityParams,
                            rng: np.random.Generator) -> np.ndarray:
    """log K = eps Z + Zbar + Y [rows, cols] with Z, Y one independent Matérn pair, Zbar = mean of Z."""
    params.validate()
    sampler = _sampler(tuple(shape), float(params.sigma), float(params.correlation_length), float(params.nu))
    z, y = sampler.sample_pair(rng)
    return params.eps * z + z.mean() + y


def log_permeability(seed: int, index: int, shape: tuple[int, int],
                     params: PermeabilityParams = PermeabilityParams()) -> np.ndarray:
    """Trajectory `index`'s log-permeability: a pure function of (seed, index, shape, params)."""
    if seed < 0 or index < 0:
        raise StochliftError(f"permeability: seed and index must be >= 0, got {seed}, {index}")
    return sample_log_permeability(shape, params, np.random.default_rng([seed, index]))
