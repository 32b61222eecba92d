"""Samplers: the reverse process of a schedule, one network call per diffusion step.

A sampler knows the schedule and how to read the network's output (stochlift.baselines.parameterisation),
not the network: `denoise` is given a function output(z_t, t) and the noise to use, so samplers can be
swapped without touching the model. Ancestral DDPM, and DDIM (deterministic at eta = 0, DDPM's law at
eta = 1), share one noise layout: index 0 the start z_{S-1}, index i + 1 the noise of reverse step i.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from stochlift.baselines.parameterisation import Estimate, read_output
from stochlift.baselines.schedule import NoiseSchedule

SAMPLERS = ("ddpm", "ddim")  # model.sampler


class Sampler:
    """The reverse loop shared by every sampler; `step` is the sampler's own update."""

    def __init__(self, schedule: NoiseSchedule, prediction: str = "epsilon") -> None:
        self.schedule, self.prediction = schedule, prediction
        s = schedule
        self.previous = torch.cat([torch.ones(1, dtype=s.alpha_bars.dtype, device="cpu"), s.alpha_bars[:-1]])
        self.sqrt_abar = s.alpha_bars.sqrt().tolist()
        self.sqrt_one_minus_abar = (1 - s.alpha_bars).sqrt().tolist()

    @property
    def steps(self) -> int:
        return self.schedule.steps

    def noise_count(self) -> int:
        """Standard-normal fields one sample uses: the start z_{S-1} and one per step but the last."""
        return self.steps

    def estimate(self, output: torch.Tensor, t: int, z: torch.Tensor, clip: float | None) -> Estimate:
        """(clean, noise) at step t; with `clip` the clean estimate is clipped to +-clip (DDPM's clip_denoised)
        and the noise estimate made consistent with it."""
        a, s = self.sqrt_abar[t], self.sqrt_one_minus_abar[t]
        estimate = read_output(self.prediction, output, z, a, s)
        if clip is None:
            return estimate
        clean = estimate.clean.clamp(-clip, clip)
        return Estimate(clean, (z - a * clean) / s)

    def step(self, output: torch.Tensor, t: int, z: torch.Tensor, noise: torch.Tensor | None,
             clip: float | None = None) -> torch.Tensor:
        raise NotImplementedError

    def denoise(self, predict: Callable[[torch.Tensor, int], torch.Tensor], noise: torch.Tensor,
                clip: float | None = None) -> torch.Tensor:
        """A sample z_0: `noise` [B, S, ...] holds the start (index 0) and the per-step noises; `predict`
        is called exactly S times, with t = S-1 .. 0."""
        z = noise[:, 0]
        for i, t in enumerate(reversed(range(self.steps))):
            z = self.step(predict(z, t), t, z, noise[:, i + 1] if t > 0 else None, clip)
        return z


class DDPMSampler(Sampler):
    """Ancestral sampling: z_{t-1} = a_t z0 + b_t z_t + sigma_t n, the posterior q(z_{t-1} | z_t, z0) at the
    clean estimate z0, sigma_t^2 = beta_t (1 - abar_{t-1}) / (1 - abar_t); no noise at the last step.

    With an epsilon-predicting network and no clip this is DDPM's (z_t - beta_t / sqrt(1 - abar_t) eps) /
    sqrt(alpha_t) + sigma_t n. The clip (DDPM's clip_denoised) matters at few steps: the linear schedule
    rescaled to S <= 10 ends with beta ~ 1, where 1 / sqrt(alpha_t) ~ 100 multiplies any error of the
    predicted noise."""

    def __init__(self, schedule: NoiseSchedule, prediction: str = "epsilon") -> None:
        super().__init__(schedule, prediction)
        s, previous = schedule, self.previous
        self.sigma = (s.betas * (1 - previous) / (1 - s.alpha_bars)).sqrt().tolist()
        self.clean_factor = (s.betas * previous.sqrt() / (1 - s.alpha_bars)).tolist()
        self.noisy_factor = ((1 - previous) * s.alphas.sqrt() / (1 - s.alpha_bars)).tolist()

    def step(self, output: torch.Tensor, t: int, z: torch.Tensor, noise: torch.Tensor | None,
             clip: float | None = None) -> torch.Tensor:
        """z_{t-1} from z_t and the network's output at step t."""
        clean = self.estimate(output, t, z, clip).clean
        mean = self.clean_factor[t] * clean + self.noisy_factor[t] * z
        return mean + self.sigma[t] * noise if t > 0 and noise is not None else mean


class DDIMSampler(Sampler):
    """DDIM (Song et al. 2021): z_{t-1} = sqrt(abar_{t-1}) z0 + sqrt(1 - abar_{t-1} - sigma_t^2) eps + sigma_t n
    with sigma_t = eta sqrt((1 - abar_{t-1}) / (1 - abar_t)) sqrt(1 - abar_t / abar_{t-1}).

    eta = 0 is deterministic given the start (the probability-flow path, the usual few-step choice);
    eta = 1 has DDPM's marginals."""

    def __init__(self, schedule: NoiseSchedule, prediction: str = "epsilon", eta: float = 0.0) -> None:
        super().__init__(schedule, prediction)
        if not 0 <= eta <= 1:
            raise ValueError(f"DDIM's eta must be in [0, 1], got {eta}")
        s, previous = schedule, self.previous
        sigma = eta * ((1 - previous) / (1 - s.alpha_bars) * (1 - s.alpha_bars / previous)).clamp(min=0).sqrt()
        self.eta = eta
        self.sigma = sigma.tolist()
        self.clean_factor = previous.sqrt().tolist()
        self.noise_factor = (1 - previous - sigma**2).clamp(min=0).sqrt().tolist()

    def step(self, output: torch.Tensor, t: int, z: torch.Tensor, noise: torch.Tensor | None,
             clip: float | None = None) -> torch.Tensor:
        clean, eps = self.estimate(output, t, z, clip)
        mean = self.clean_factor[t] * clean + self.noise_factor[t] * eps
        return mean + self.sigma[t] * noise if t > 0 and noise is not None and self.eta > 0 else mean


def build_sampler(name: str, schedule: NoiseSchedule, prediction: str = "epsilon", eta: float = 0.0) -> Sampler:
    """The sampler of model.sampler on a schedule, reading the network's output as `prediction`."""
    if name == "ddpm":
        return DDPMSampler(schedule, prediction)
    if name == "ddim":
        return DDIMSampler(schedule, prediction, eta)
    raise ValueError(f"unknown sampler {name!r}; choose from {list(SAMPLERS)}")
