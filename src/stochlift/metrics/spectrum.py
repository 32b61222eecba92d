"""Radially averaged power spectra of fields on regular grids of any dimension (1-D, 2-D, 3-D, ...).

The spectrum says how much structure a field has at each spatial scale: a blurry generator loses power at
high wavenumbers, a noisy one gains it, while means and spreads can still match. Fields are treated as
periodic (plain FFT, no window), so a non-periodic field leaks some power from its edges into every shell;
generated and true fields leak alike, so the comparison stays fair.

Definition (for fields [..., *spatial]): subtract each field's spatial mean, take the orthonormal FFT over
the spatial axes (so the power sums to the field's sum of squares, Parseval), and average |F(k)|^2 over the
shell of integer wavenumber vectors k with round(|k|) = s, for s = 1 .. min(spatial) // 2 - 1: in 1-D the
shell s holds +s and -s; in 2-D it is a ring. The k = 0 shell (the mean) and the partly filled outermost
shells are left out. A grid with min(spatial) < 4 has no shell and no spectrum.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from stochlift.errors import StochliftError

__all__ = ["log_spectrum_error", "radial_power_spectrum", "shell_count", "spectrum_error"]

# a shell's power is clipped below at this fraction of the largest shell power of the reference, so an empty
# shell (a constant field) gives a large, finite error (about -log10 of this, in decades) instead of infinity
_POWER_FLOOR = 1e-12
_WORK_BYTES = 64 << 20  # target size of the complex FFT temporaries of one batch of fields


def shell_count(spatial_shape: tuple[int, ...]) -> int:
    """Number of wavenumber shells of a grid: min(spatial) // 2 - 1 (0 when it has none)."""
    return max(min(spatial_shape) // 2 - 1, 0) if spatial_shape else 0


def _shells(spatial_shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat grid indices sorted by shell, the start of each shell in that order, and each shell's size."""
    axes = np.meshgrid(*[np.fft.fftfreq(n) * n for n in spatial_shape], indexing="ij")
    radius = np.rint(np.sqrt(sum(k * k for k in axes))).astype(np.int64).ravel()
    keep = np.flatnonzero((radius >= 1) & (radius <= shell_count(spatial_shape)))
    order = keep[np.argsort(radius[keep], kind="stable")]
    sizes = np.bincount(radius[order] - 1, minlength=shell_count(spatial_shape))
    return order, np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes


def radial_power_spectrum(fields: ArrayLike, spatial_ndim: int) -> np.ndarray:
    """Shell-averaged power of each field: [..., *spatial] -> [..., K] float64 (see the module docstring).

    The last `spatial_ndim` axes are the grid; leading axes (members, channels, ...) are kept. Fields are
    transformed in batches, so memory stays a few times the input's.
    """
    arr = np.asarray(fields)
    if spatial_ndim < 1 or arr.ndim < spatial_ndim:
        raise StochliftError(f"need fields with {spatial_ndim} >= 1 spatial axes, got shape {arr.shape}")
    spatial = arr.shape[arr.ndim - spatial_ndim :]
    if shell_count(spatial) < 1:
        raise StochliftError(f"a power spectrum needs a grid of at least 4 points per axis, got {list(spatial)}")
    leading = arr.shape[: arr.ndim - spatial_ndim]
    flat = arr.reshape(-1, *spatial)
    order, starts, sizes = _shells(spatial)
    out = np.empty((len(flat), len(sizes)))
    axes = tuple(range(1, spatial_ndim + 1))
    batch = max(1, _WORK_BYTES // (16 * int(np.prod(spatial))))
    for b0 in range(0, len(flat), batch):
        block = np.asarray(flat[b0 : b0 + batch], dtype=np.float64)
        block = block - block.mean(axis=axes, keepdims=True)
        power = np.abs(np.fft.fftn(block, axes=axes, norm="ortho")) ** 2
        out[b0 : b0 + batch] = np.add.reduceat(power.reshape(len(block), -1)[:, order], starts, axis=1) / sizes
    return out.reshape(*leading, len(sizes))


def log_spectrum_error(spectrum: ArrayLike, reference: ArrayLike) -> float:
    """mean over shells of |log10 spectrum - log10 reference| (decades; 0 = the same power at every scale).

    Both are clipped below at 1e-12 of the reference's largest shell power, so an empty shell gives a large
    finite error.
    """
    s, r = np.asarray(spectrum, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if s.shape != r.shape or s.ndim != 1:
        raise StochliftError(f"spectra must be two [K] arrays of equal length, got {s.shape} and {r.shape}")
    floor = _POWER_FLOOR * max(float(r.max()), np.finfo(float).tiny)
    return float(np.abs(np.log10(np.maximum(s, floor)) - np.log10(np.maximum(r, floor))).mean())


def spectrum_error(generated: ArrayLike, truth: ArrayLike) -> float:
    """Error in decades of the ensemble-mean spectrum: frames [n, C, *spatial] (1 or more spatial axes).

    Each side's spectrum is averaged over members and channels, then compared shell by shell with
    `log_spectrum_error` (truth as the reference).
    """
    g, r = np.asarray(generated), np.asarray(truth)
    if g.ndim < 3 or g.shape[1:] != r.shape[1:]:
        raise StochliftError(f"generated {g.shape} and truth {r.shape} must both be [n, C, *spatial], equal frames")
    spatial_ndim = g.ndim - 2
    return log_spectrum_error(radial_power_spectrum(g, spatial_ndim).mean(axis=(0, 1)),
                              radial_power_spectrum(r, spatial_ndim).mean(axis=(0, 1)))
