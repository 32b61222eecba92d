"""The ARDM baseline: its schedule, its sampler, its network-call count, and its training through train()."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_config
from stochlift.baselines.sampler import DDPMSampler
from stochlift.baselines.schedule import LinearBetaSchedule
from stochlift.config import apply_overrides, load_config
from stochlift.errors import StochliftError
from stochlift.lifting.generator import build_model
from stochlift.lifting.rollout import rollout
from stochlift.lifting.runs import load_run
from stochlift.lifting.train import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ARDM = ("model.method=ardm", "model.label_dim=0", "model.loss=huber", "train.input_noise=0")


def test_schedule_is_the_linear_beta_schedule_rescaled_to_s_steps() -> None:
    s = LinearBetaSchedule(20)  # 500 / 20 = 25: beta from 2.5e-3 to 0.5
    assert s.betas[0].item() == pytest.approx(2.5e-3) and s.betas[-1].item() == pytest.approx(0.5)
    assert torch.allclose(s.alpha_bars, torch.cumprod(1 - s.betas, 0))
    two = LinearBetaSchedule(2)  # 0.02 * 250 = 5 is clipped to 0.9999
    assert two.betas.tolist() == pytest.approx([0.025, 0.9999])
    with pytest.raises(ValueError):
        LinearBetaSchedule(0)


@pytest.mark.parametrize("steps", [2, 10, 40])
def test_forward_noising_marginals_match_their_closed_form(steps: int) -> None:
    schedule = LinearBetaSchedule(steps)
    generator = torch.Generator().manual_seed(0)
    clean = torch.tensor([1.5, -0.5, 0.0])
    n = 200_000
    for t in (0, steps // 2, steps - 1):
        noise = torch.randn(n, 3, generator=generator)
        z = schedule.add_noise(clean.expand(n, 3), noise, torch.full((n,), t))
        mean_factor, std = schedule.marginal(t)
        assert mean_factor == pytest.approx(math.sqrt(float(torch.prod(1 - schedule.betas[: t + 1]))))
        # sampling error of a mean of n draws is std / sqrt(n) ~ 0.002; of a std, std / sqrt(2n)
        assert torch.allclose(z.mean(0), mean_factor * clean, atol=5 * std / math.sqrt(n) + 1e-6)
        assert torch.allclose(z.std(0), torch.full((3,), std), rtol=5 / math.sqrt(2 * n) + 1e-6)


@pytest.mark.parametrize("steps", [1, 3, 40])
def test_sampler_calls_the_predictor_once_per_step_from_noisiest_to_cleanest(steps: int) -> None:
    sampler = DDPMSampler(LinearBetaSchedule(steps))
    seen: list[int] = []

    def predict(z: torch.Tensor, t: int) -> torch.Tensor:
        seen.append(t)
        return torch.zeros_like(z)

    sampler.denoise(predict, torch.randn(2, steps, 4))
    assert seen == list(reversed(range(steps)))


def test_sampler_with_the_exact_noise_predictor_samples_the_data_law() -> None:
    """For data N(0, v) the optimal predictor is known in closed form, eps(z, t) = sqrt(1 - a) z / (a v + 1 - a)
    with a = abar_t; ancestral sampling with it must return (nearly) N(0, v). With S = 200 steps the
    discretisation error in the variance is a few percent; 40,000 samples give a 1.4% standard error."""
    v, steps, n = 0.25, 200, 40_000
    sampler = DDPMSampler(LinearBetaSchedule(steps))
    abar = sampler.schedule.alpha_bars

    def predict(z: torch.Tensor, t: int) -> torch.Tensor:
        a = float(abar[t])
        return math.sqrt(1 - a) * z / (a * v + 1 - a)

    noise = torch.randn(n, steps, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    samples = sampler.denoise(predict, noise)
    assert abs(samples.mean().item()) < 0.02
    assert samples.var().item() == pytest.approx(v, rel=0.08)


class _CountingBackbone(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.inner(x, t)


@pytest.mark.parametrize("steps", [1, 5])
@pytest.mark.parametrize("conditioning", ["clean", "noisy"])
def test_ardm_calls_the_network_s_times_per_frame(steps: int, conditioning: str) -> None:
    config = apply_overrides(load_config(None), [
        *ARDM, f"model.diffusion_steps={steps}", f"model.conditioning={conditioning}", "model.frame_shape=[1, 8, 8]",
        "model.options={depths: [8, 16], mid_blocks: 1, embed_width: 16, groups: 4}",
    ]).model
    model = build_model(config)
    model.backbone = _CountingBackbone(model.backbone)
    frames, n = 4, 3
    out = rollout(model, torch.zeros(n, 1, 1, 8, 8), frames, seed=0)
    assert out.shape == (n, frames, 1, 8, 8) and np.isfinite(out).all()
    assert model.backbone.calls == steps * (frames - 1)  # one batch: S calls for each of the 3 new frames
    assert model.noise_shape == (steps, 1 if conditioning == "clean" else 1 + config.window, 8, 8)


def test_ardm_config_errors() -> None:
    base = load_config(None)
    with pytest.raises(StochliftError, match="label_dim=0"):
        apply_overrides(base, ["model.method=ardm", "model.loss=huber"])
    with pytest.raises(StochliftError, match="unroll"):
        apply_overrides(base, [*ARDM, "train.unroll=1"])
    with pytest.raises(StochliftError, match="huber"):
        apply_overrides(base, ["model.method=ardm", "model.label_dim=0", "model.loss=bce"])
    with pytest.raises(StochliftError, match="method"):
        apply_overrides(base, ["model.method=flow-matching"])


def test_ardm_trains_resumes_exactly_and_samples(tmp_path: Path, tiny_data: Path) -> None:
    config = tiny_config(tiny_data, *ARDM, "model.diffusion_steps=3", "train.steps=8")
    straight = train(config, tmp_path / "straight", progress=False)
    train(config, tmp_path / "split", progress=False, stop_after=4)
    resumed = train(config, tmp_path / "split", progress=False, resume=True)
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    losses = [h["loss"] for h in straight.history]
    assert all(math.isfinite(x) for x in losses)
    model, saved, _ = load_run(tmp_path / "straight")
    assert saved.model.method == "ardm" and saved.model.frame_scale > 0 and saved.model.residual_scale > 0
    first = rollout(model, np.zeros((2, 1, 1, 8, 8), np.float32), 3, seed=5)
    again = rollout(model, np.zeros((2, 1, 1, 8, 8), np.float32), 3, seed=5)
    other = rollout(model, np.zeros((2, 1, 1, 8, 8), np.float32), 3, seed=6)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert not np.array_equal(first[0, 1], first[1, 1])  # the same start, different noise: different frames


def test_clipped_sampler_equals_the_plain_one_within_range_and_bounds_it_outside() -> None:
    sampler = DDPMSampler(LinearBetaSchedule(10))
    generator = torch.Generator().manual_seed(3)
    z, eps, n = (torch.randn(64, 4, generator=generator, dtype=torch.float64) for _ in range(3))
    for t in (9, 4, 0):  # a clip far outside the clean estimates changes nothing
        assert torch.allclose(sampler.step(eps, t, z, n), sampler.step(eps, t, z, n, clip=1e9), atol=1e-9)
    # at the first reverse step (beta ~ 1) a noise prediction off by 0.05 moves z by 0.05 / sqrt(alpha) = 5
    wild = sampler.step(z + 0.05, 9, z, None)
    tame = sampler.step(z + 0.05, 9, z, None, clip=3.0)
    assert (wild + 5.0).abs().max() < 0.1 and tame.abs().max() < 0.2
