"""Ancestral DDPM sampling: the reverse process of a schedule, one network call per diffusion step.

The sampler knows the schedule, not the network: `denoise` is given a function eps(z_t, t) and the noise
to use, so another sampler (DDIM, fewer steps) can be swapped in without touching the model.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from stochlift.baselines.schedule import LinearBetaSchedule


class DDPMSampler:
    """z_{t-1} = (z_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) + sigma_t n, sigma_t^2 the posterior
    variance beta_t (1 - abar_{t-1}) / (1 - abar_t); no noise is added at the last step.

    With `clip` (DDPM's clip_denoised) the mean is written through the clean estimate
    z0 = (z_t - sqrt(1 - abar_t) eps) / sqrt(abar_t), clipped to [-clip, clip]: mean = a_t z0 + b_t z_t (the
    same mean when nothing is clipped). It matters at few steps: the schedule rescaled to S <= 10 ends with
    beta ~ 1, where 1 / sqrt(alpha_t) ~ 100 multiplies any error of the predicted noise."""

    def __init__(self, schedule: LinearBetaSchedule) -> None:
        self.schedule = schedule
        s = schedule
        previous = torch.cat([torch.ones(1, dtype=s.alpha_bars.dtype, device="cpu"), s.alpha_bars[:-1]])
        self.eps_factor = (s.betas / (1 - s.alpha_bars).sqrt()).tolist()
        self.inv_sqrt_alpha = (1 / s.alphas.sqrt()).tolist()
        self.sigma = (s.betas * (1 - previous) / (1 - s.alpha_bars)).sqrt().tolist()
        self.sqrt_abar = s.alpha_bars.sqrt().tolist()
        self.sqrt_one_minus_abar = (1 - s.alpha_bars).sqrt().tolist()
        self.clean_factor = (s.betas * previous.sqrt() / (1 - s.alpha_bars)).tolist()
        self.noisy_factor = ((1 - previous) * s.alphas.sqrt() / (1 - s.alpha_bars)).tolist()

    @property
    def steps(self) -> int:
        return self.schedule.steps

    def noise_count(self) -> int:
        """Standard-normal fields one sample uses: the start z_{S-1} and one per step but the last."""
        return self.steps

    def step(self, eps: torch.Tensor, t: int, z: torch.Tensor, noise: torch.Tensor | None,
             clip: float | None = None) -> torch.Tensor:
        """z_{t-1} from z_t and the predicted noise (the clean estimate clipped to +-clip when given)."""
        if clip is None:
            mean = (z - self.eps_factor[t] * eps) * self.inv_sqrt_alpha[t]
        else:
            clean = ((z - self.sqrt_one_minus_abar[t] * eps) / self.sqrt_abar[t]).clamp(-clip, clip)
            mean = self.clean_factor[t] * clean + self.noisy_factor[t] * z
        return mean + self.sigma[t] * noise if t > 0 and noise is not None else mean

    def denoise(self, predict: Callable[[torch.Tensor, int], torch.Tensor], noise: torch.Tensor,
                clip: float | None = None) -> torch.Tensor:
        """A sample z_0: `noise` [B, S, ...] holds the start (index 0) and the per-step noises; `predict`
        is called exactly S times, with t = S-1 .. 0."""
        z = noise[:, 0]
        for i, t in enumerate(reversed(range(self.steps))):
            z = self.step(predict(z, t), t, z, noise[:, i + 1] if t > 0 else None, clip)
        return z
