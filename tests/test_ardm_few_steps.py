"""The few-step ARDM: schedules, parameterisations and samplers, and a two-step model of a bimodal transition.

The transition x_{t+1} = 0.5 x_t + b + 0.15 eps, b = +-1 with equal odds, has two sharp modes at
0.5 x_t +- 1 (each of std 0.15, nothing in between). A two-step diffusion model cannot sample it exactly:
its first step sees pure noise and can only return the conditional mean, so the second step has to
create both modes out of Gaussian noise around it. With the cosine schedule as it is (one intermediate
level at abar = 0.49) that second step blurs them into one flat bump (measured: 27% of the samples within
0.25 of the mean, as many as near either mode; the truth has none there); the SNR shift of 8 (abar = 0.89)
with zero terminal SNR and v-prediction gives two modes whose halves have means +-0.7, 23-38% of the
samples within 0.25 of each mode and 10-16% at the mean (four training seeds, DDPM and DDIM). The
tolerances below are that: two modes on the right sides, about evenly weighted, with the dip between them,
and nothing blowing up.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_config
from stochlift.baselines.parameterisation import PREDICTIONS, read_output, training_target
from stochlift.baselines.sampler import DDIMSampler, DDPMSampler, build_sampler
from stochlift.baselines.schedule import CosineSchedule, LinearBetaSchedule, build_schedule, zero_terminal_snr
from stochlift.config import ModelConfig, RunConfig, TrainConfig, apply_overrides, load_config
from stochlift.errors import StochliftError
from stochlift.lifting.pairs import ArraySource
from stochlift.lifting.rollout import rollout
from stochlift.lifting.train import train

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ARDM = ("model.method=ardm", "model.label_dim=0", "model.loss=l2", "train.input_noise=0")


# --------------------------------------------------------------------------------------------- schedules


@pytest.mark.parametrize("steps", [2, 5, 40])
def test_cosine_schedule_is_the_cosine_law_at_s_steps(steps: int) -> None:
    s = CosineSchedule(steps)

    def f(u: float) -> float:
        return math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2

    expected = [f((t + 1) / steps) / f(0) for t in range(steps - 1)]  # the last beta is capped at 0.999
    assert s.alpha_bars[:-1].tolist() == pytest.approx(expected, rel=1e-9)
    assert bool((s.alpha_bars[1:] < s.alpha_bars[:-1]).all()) and 0 < s.alpha_bars[-1] < 1e-3


@pytest.mark.parametrize("base", [LinearBetaSchedule(2), LinearBetaSchedule(10), CosineSchedule(5)])
def test_zero_terminal_snr_keeps_the_first_level_and_ends_in_pure_noise(base) -> None:
    rescaled = zero_terminal_snr(base)
    assert rescaled.alpha_bars[-1].item() == 0.0 and rescaled.betas[-1].item() == pytest.approx(1.0)
    assert rescaled.alpha_bars[0].item() == pytest.approx(base.alpha_bars[0].item(), rel=1e-9)
    assert bool((rescaled.alpha_bars[1:] < rescaled.alpha_bars[:-1]).all())


def test_snr_shift_multiplies_every_steps_signal_to_noise_ratio() -> None:
    base, shifted = CosineSchedule(4), build_schedule("cosine", 4, snr_shift=8.0)
    snr = base.alpha_bars / (1 - base.alpha_bars)
    assert torch.allclose(shifted.alpha_bars / (1 - shifted.alpha_bars), 8 * snr, rtol=1e-9)
    assert build_schedule("cosine", 2, snr_shift=8.0).alpha_bars[0].item() == pytest.approx(0.886, abs=1e-3)
    assert torch.equal(build_schedule("linear", 7).betas, LinearBetaSchedule(7).betas)  # the default is ACDM's


@pytest.mark.parametrize("kind", PREDICTIONS)
def test_each_parameterisation_reads_back_what_it_was_trained_on(kind: str) -> None:
    generator = torch.Generator().manual_seed(0)
    clean, noise = (torch.randn(100, 3, generator=generator, dtype=torch.float64) for _ in range(2))
    for abar in (0.999, 0.5, 0.01) + ((0.0,) if kind != "epsilon" else ()):  # pure noise: x0 and v only
        a, s = math.sqrt(abar), math.sqrt(1 - abar)
        z = a * clean + s * noise
        estimate = read_output(kind, training_target(kind, clean, noise, a, s), z, a, s)
        assert torch.allclose(estimate.clean, clean, atol=1e-9) and torch.allclose(estimate.noise, noise, atol=1e-9)


# ---------------------------------------------------------------------------------------------- samplers


def _exact_output(kind: str, variance: float, abar: torch.Tensor):
    """The optimal network output for data N(0, variance) at each step, as predict(z, t)."""

    def predict(z: torch.Tensor, t: int) -> torch.Tensor:
        a, s = math.sqrt(float(abar[t])), math.sqrt(1 - float(abar[t]))
        clean = a * variance * z / (a * a * variance + s * s)  # E[z_0 | z_t]
        noise = s * z / (a * a * variance + s * s)  # E[eps | z_t]
        return training_target(kind, clean, noise, a, s)

    return predict


@pytest.mark.parametrize(("sampler", "kind", "terminal"), [
    ("ddpm", "epsilon", False), ("ddpm", "v", True), ("ddim", "x0", True), ("ddim", "v", False),
])
def test_samplers_with_the_exact_predictor_sample_the_data_law(sampler: str, kind: str, terminal: bool) -> None:
    """With many steps every sampler, read through every parameterisation, returns (nearly) N(0, v): the
    cosine schedule at S = 100, 40,000 samples (1.4% standard error in the variance)."""
    v, n = 0.25, 40_000
    schedule = build_schedule("cosine", 100, terminal)
    chosen = build_sampler(sampler, schedule, kind)
    noise = torch.randn(n, 100, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    samples = chosen.denoise(_exact_output(kind, v, schedule.alpha_bars), noise)
    assert abs(samples.mean().item()) < 0.02
    assert samples.var().item() == pytest.approx(v, rel=0.08)


def test_ddim_at_eta_zero_ignores_the_step_noise_and_at_one_has_ddpms_steps() -> None:
    schedule = CosineSchedule(6)
    generator = torch.Generator().manual_seed(2)
    noise, other = (torch.randn(5, 6, 4, generator=generator, dtype=torch.float64) for _ in range(2))
    other[:, 0] = noise[:, 0]  # the same start, different per-step noise
    predict = _exact_output("epsilon", 0.5, schedule.alpha_bars)
    deterministic = DDIMSampler(schedule, eta=0.0)
    assert torch.equal(deterministic.denoise(predict, noise), deterministic.denoise(predict, other))
    ddpm, ddim = DDPMSampler(schedule), DDIMSampler(schedule, eta=1.0)
    z, eps = noise[:, 1], predict(noise[:, 1], 3)
    assert torch.allclose(ddpm.step(eps, 3, z, noise[:, 2]), ddim.step(eps, 3, z, noise[:, 2]), atol=1e-12)


# ------------------------------------------------------------------------------------------------ config


def test_few_step_config_errors() -> None:
    base = apply_overrides(load_config(None), list(ARDM))
    for override, message in [
        ("model.diffusion_schedule=quadratic", "diffusion_schedule"), ("model.prediction=score", "prediction"),
        ("model.sampler=heun", "sampler"), ("model.ddim_eta=0.5", "sampler=ddim"), ("model.snr_shift=0", "snr_shift"),
        ("model.zero_terminal_snr=true", "'x0' or 'v'"), ("model.zero_terminal_snr=yes please", "true or false"),
    ]:
        with pytest.raises(StochliftError, match=message):
            apply_overrides(base, [override])
    with pytest.raises(StochliftError, match="noisy"):
        apply_overrides(base, ["model.zero_terminal_snr=true", "model.prediction=v", "model.conditioning=noisy"])
    with pytest.raises(StochliftError, match="eta"):
        apply_overrides(base, ["model.sampler=ddim", "model.ddim_eta=1.5"])
    assert apply_overrides(base, ["model.sampler=ddim", "model.ddim_eta=0.5"]).model.ddim_eta == 0.5


# ------------------------------------------------------------------------- two steps, a bimodal transition


def simulate_mixture(n: int, frames: int, seed: int) -> np.ndarray:
    """Trajectories [n, frames, 1] of x_{t+1} = 0.5 x_t + b + 0.15 eps, b = +-1, x_0 ~ N(0, 1)."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, frames, 1))
    x[:, 0] = rng.normal(size=(n, 1))
    for t in range(frames - 1):
        x[:, t + 1] = 0.5 * x[:, t] + rng.choice([-1.0, 1.0], size=(n, 1)) + 0.15 * rng.normal(size=(n, 1))
    return x


@pytest.fixture(scope="module")
def two_step_ardm(one_torch_thread, tmp_path_factory):
    config = RunConfig(
        model=ModelConfig(method="ardm", backbone="mlp", window=1, label_dim=0, loss="l2", output="residual",
                          options={"hidden": 128, "layers": 3}, diffusion_steps=2, diffusion_schedule="cosine",
                          snr_shift=8.0, zero_terminal_snr=True, prediction="v"),
        train=TrainConfig(steps=1500, batch_size=256, lr=3e-3, weight_decay=0.0, seed=0, checkpoint_every=10**6,
                          log_every=100),
    )
    data = simulate_mixture(512, 8, seed=0)
    result = train(config, tmp_path_factory.mktemp("mixture"), source=ArraySource(data), progress=False)
    return result.model, float(np.abs(data).max())


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_two_step_ardm_samples_both_modes_of_a_mixture_without_blowing_up(two_step_ardm, sampler: str) -> None:
    model, data_max = two_step_ardm
    model.sampler = build_sampler(sampler, model.schedule, model.prediction)
    assert model.steps == 2
    for x in (0.0, 0.8, -0.8):
        y = rollout(model, np.full((4000, 1, 1), x, np.float32), 2, seed=1, batch_size=4000)[:, 1, 0]
        offset = y - 0.5 * x  # truth: +-1 (std 0.15)
        assert np.isfinite(y).all() and np.abs(y).max() < 1.2 * data_max
        upper, lower = offset[offset > 0], offset[offset <= 0]
        centre = np.mean(np.abs(offset) < 0.25)  # the truth: 0
        near_modes = [np.mean(np.abs(offset - m) < 0.25) for m in (1.0, -1.0)]  # the truth: 0.45 each
        assert 0.35 < len(upper) / len(offset) < 0.65, (x, len(upper) / len(offset))
        assert 0.5 < upper.mean() < 1.2 and -1.2 < lower.mean() < -0.5, (x, upper.mean(), lower.mean())
        assert min(near_modes) > 0.15 and centre < 0.2 and min(near_modes) > centre, (x, near_modes, centre)
    # a long rollout stays in the process's range (|x| < 2 + a few std): no drift, no blow-up
    long = rollout(model, np.zeros((1000, 1, 1), np.float32), 16, seed=2, batch_size=1000)
    assert np.isfinite(long).all() and np.abs(long).max() < 1.2 * data_max


def test_ardm_with_few_step_choices_trains_and_resumes_exactly(tmp_path: Path, tiny_data: Path) -> None:
    config = tiny_config(tiny_data, *ARDM, "model.diffusion_steps=3", "train.steps=8",
                         "model.diffusion_schedule=cosine",
                         "model.zero_terminal_snr=true", "model.prediction=x0", "model.sampler=ddim",
                         "model.snr_shift=4", "train.ema_decay=0.9")
    straight = train(config, tmp_path / "straight", progress=False)
    train(config, tmp_path / "split", progress=False, stop_after=4)
    resumed = train(config, tmp_path / "split", progress=False, resume=True)
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    out = rollout(straight.model, np.zeros((2, 1, 1, 8, 8), np.float32), 3, seed=5)
    assert np.isfinite(out).all() and not np.array_equal(out[0, 1], out[1, 1])
