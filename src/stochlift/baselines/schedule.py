"""The diffusion noise schedule, separate from the network and the sampler (as in diffusers).

The ARDM baseline (ACDM, Kohl et al. 2023; anchors.md section 2) uses the linear beta schedule of DDPM
rescaled to S steps: beta runs linearly from 1e-4 * 500/S to 0.02 * 500/S, clipped to [1e-4, 0.9999],
so that S steps cover roughly the same total noise as DDPM's 1000 steps at any S. At S <= 10 its last
beta is ~1, where an epsilon-predicting sampler divides the noise error by sqrt(abar) ~ 0.01.

Few-step alternatives: the cosine schedule (Nichol and Dhariwal 2021) evaluated at the S steps the
model trains and samples with; a shift of the signal-to-noise ratio of every step by a constant factor
(Hoogeboom et al. 2023; Esser et al. 2024), which at S = 2 moves the one intermediate level from the
cosine's abar = 0.49 (an output blurred by the noise it removes) towards the clean end; and the
zero-terminal-SNR rescaling of either (Lin et al. 2024), which makes the last step pure noise (abar = 0)
so that training sees the noise level sampling starts from.
"""

from __future__ import annotations

import math

import torch

SCHEDULES = ("linear", "cosine")  # model.diffusion_schedule


class NoiseSchedule:
    """The forward process q(z_t | z_0) = N(sqrt(abar_t) z_0, (1 - abar_t) I) for t = 0 .. S-1, from its betas."""

    def __init__(self, betas: torch.Tensor) -> None:
        if len(betas) < 1:
            raise ValueError("a diffusion schedule needs at least one step")
        # on the CPU always (also under a meta-device context): the sampler reads them as numbers
        self.betas = betas.to(dtype=torch.float64, device="cpu")
        self.steps = len(self.betas)
        self.alphas = 1.0 - self.betas
        self.alpha_bars = torch.cumprod(self.alphas, dim=0)

    def _at(self, values: torch.Tensor, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """values[t] shaped to broadcast against a batch `like` [B, ...]."""
        picked = values.to(like.device)[t.to(like.device)].to(like.dtype)
        return picked.reshape(-1, *([1] * (like.dim() - 1)))

    def factors(self, t: torch.Tensor, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(sqrt(abar_t), sqrt(1 - abar_t)) per sample step t [B], shaped to broadcast against `like`."""
        return self._at(self.alpha_bars.sqrt(), t, like), self._at((1 - self.alpha_bars).sqrt(), t, like)

    def add_noise(self, clean: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """A draw of z_t given z_0 = clean, per sample step t [B], with the given standard-normal noise."""
        signal, spread = self.factors(t, clean)
        return signal * clean + spread * noise

    def marginal(self, t: int) -> tuple[float, float]:
        """(mean factor sqrt(abar_t), standard deviation sqrt(1 - abar_t)) of q(z_t | z_0)."""
        abar = float(self.alpha_bars[t])
        return abar**0.5, (1 - abar) ** 0.5


class LinearBetaSchedule(NoiseSchedule):
    """DDPM's linear betas, rescaled to S steps (ACDM's schedule)."""

    def __init__(self, steps: int, beta_start: float = 1e-4, beta_end: float = 0.02,
                 reference_steps: int = 500) -> None:
        if steps < 1:
            raise ValueError(f"a diffusion schedule needs at least one step, got {steps}")
        scale = reference_steps / steps
        betas = torch.linspace(beta_start * scale, beta_end * scale, steps, dtype=torch.float64, device="cpu")
        super().__init__(betas.clamp(1e-4, 0.9999))


class CosineSchedule(NoiseSchedule):
    """abar(u) = f(u) / f(0), f(u) = cos^2((u + s) / (1 + s) pi / 2), at u = (t + 1) / S: the noise level
    moves evenly in log-SNR through the middle, so few steps do not jump from almost clean to pure noise.
    Betas are capped at `max_beta` as in the paper (abar at the last step is then ~1e-3 x the previous)."""

    def __init__(self, steps: int, offset: float = 0.008, max_beta: float = 0.999) -> None:
        if steps < 1:
            raise ValueError(f"a diffusion schedule needs at least one step, got {steps}")

        def f(u: float) -> float:
            return math.cos((u + offset) / (1 + offset) * math.pi / 2) ** 2

        betas = [min(1 - f((t + 1) / steps) / f(t / steps), max_beta) for t in range(steps)]
        super().__init__(torch.tensor(betas, dtype=torch.float64))


def zero_terminal_snr(schedule: NoiseSchedule) -> NoiseSchedule:
    """Lin et al. (2024), Algorithm 1: shift and scale sqrt(abar) so that its first value is kept and its last
    is 0. Sampling then starts exactly where training's noisiest step is; the last step carries no signal,
    so the network must predict x0 or v there (epsilon is undetermined)."""
    root = schedule.alpha_bars.sqrt()
    first, last = root[0].clone(), root[-1].clone()
    if schedule.steps < 2 or first <= last:
        raise ValueError("zero terminal SNR needs a schedule of at least two steps")
    abar = ((root - last) * first / (first - last)) ** 2
    alphas = torch.cat([abar[:1], abar[1:] / abar[:-1]])
    return NoiseSchedule(1 - alphas)


def shift_snr(schedule: NoiseSchedule, factor: float) -> NoiseSchedule:
    """Every step's SNR abar / (1 - abar) multiplied by `factor` (> 1: less noise at every step)."""
    if factor <= 0:
        raise ValueError(f"an SNR shift must be > 0, got {factor}")
    abar = schedule.alpha_bars * factor / (1 + (factor - 1) * schedule.alpha_bars)
    return NoiseSchedule(1 - torch.cat([abar[:1], abar[1:] / abar[:-1]]))


def build_schedule(name: str, steps: int, terminal_snr_zero: bool = False, snr_shift: float = 1.0) -> NoiseSchedule:
    """The schedule of model.diffusion_schedule at S steps, its SNR shifted by `snr_shift` (1: as is), then
    rescaled to zero terminal SNR when asked."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown diffusion schedule {name!r}; choose from {list(SCHEDULES)}")
    schedule: NoiseSchedule = LinearBetaSchedule(steps) if name == "linear" else CosineSchedule(steps)
    if snr_shift != 1.0:
        schedule = shift_snr(schedule, snr_shift)
    return zero_terminal_snr(schedule) if terminal_snr_zero else schedule
