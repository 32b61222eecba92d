"""The diffusion noise schedule, separate from the network and the sampler (as in diffusers).

The ARDM baseline (ACDM, Kohl et al. 2023; anchors.md section 2) uses the linear beta schedule of DDPM
rescaled to S steps: beta runs linearly from 1e-4 * 500/S to 0.02 * 500/S, clipped to [1e-4, 0.9999],
so that S steps cover roughly the same total noise as DDPM's 1000 steps at any S.
"""

from __future__ import annotations

import torch


class LinearBetaSchedule:
    """The forward process q(z_t | z_0) = N(sqrt(abar_t) z_0, (1 - abar_t) I) for t = 0 .. S-1."""

    def __init__(self, steps: int, beta_start: float = 1e-4, beta_end: float = 0.02, reference_steps: int = 500) -> None:
        if steps < 1:
            raise ValueError(f"a diffusion schedule needs at least one step, got {steps}")
        scale = reference_steps / steps
        self.steps = steps
        self.betas = torch.linspace(beta_start * scale, beta_end * scale, steps, dtype=torch.float64, device="cpu").clamp(
            1e-4, 0.9999
        )  # on the CPU always (also under a meta-device context): the sampler reads them as numbers
        self.alphas = 1.0 - self.betas
        self.alpha_bars = torch.cumprod(self.alphas, dim=0)

    def _at(self, values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """values[t] shaped to broadcast against a batch `like` [B, ...]."""
        picked = values.to(like.device)[t.to(like.device)].to(like.dtype)
        return picked.reshape(-1, *([1] * (like.dim() - 1)))

    def add_noise(self, clean: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """A draw of z_t given z_0 = clean, per sample step t [B], with the given standard-normal noise."""
        return self._at(self.alpha_bars.sqrt(), t, clean) * clean + self._at((1 - self.alpha_bars).sqrt(), t, clean) * noise

    def marginal(self, t: int) -> tuple[float, float]:
        """(mean factor sqrt(abar_t), standard deviation sqrt(1 - abar_t)) of q(z_t | z_0)."""
        abar = float(self.alpha_bars[t])
        return abar**0.5, (1 - abar) ** 0.5
