"""Appendix B's explicit interpolating map: the non-neural check of the lifting idea.

From a fixed state x (the Wave and Flow problems start every trajectory from the same x_0) the training
targets are M next frames y_i with labels xi_i. The map

    F(x, xi) = b + sum_{i,k} (y_i - b) G^{-1}_{ik} (xi_k . xi),    G_ik = xi_i . xi_k,   b = mean_i y_i,

interpolates the targets exactly when the labels are linearly independent (d >= M), is affine in xi,
and with a fresh xi ~ N(0, I_d) generates b plus a Gaussian perturbation in the span of the targets.
Its spread tells what an ideal, smooth (affine-in-xi) interpolant does at a given d; with d < M the
pseudo-inverse gives the least-squares fit instead, which does not interpolate.
"""

from __future__ import annotations

import numpy as np


class ExplicitInterpolant:
    """F(x_fixed, xi) for targets [M, n] with labels [M, d]."""

    def __init__(self, targets: np.ndarray, labels: np.ndarray) -> None:
        targets = np.asarray(targets, dtype=np.float64).reshape(len(targets), -1)
        labels = np.asarray(labels, dtype=np.float64)
        if len(targets) != len(labels):
            raise ValueError(f"{len(targets)} targets but {len(labels)} labels")
        self.mean = targets.mean(axis=0)
        gram = labels @ labels.T
        # coefficients W [n, d] such that F(xi) = b + W xi; pinv = inverse whenever G is invertible (d >= M)
        self.weights = (targets - self.mean).T @ np.linalg.pinv(gram, hermitian=True) @ labels
        self.interpolates = labels.shape[1] >= len(labels)

    def __call__(self, xi: np.ndarray) -> np.ndarray:
        """Generated states [B, n] for labels [B, d]."""
        return self.mean + np.asarray(xi, dtype=np.float64) @ self.weights.T
