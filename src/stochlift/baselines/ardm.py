"""The autoregressive conditional diffusion model (ARDM): the paper's baseline, on our own backbone.

As in ACDM (Kohl, Chen, Thuerey 2023; anchors.md section 2) by default: the Markov window enters by
channel concatenation with the noisy next frame, the network predicts the noise epsilon (Huber loss), the
schedule is the linear beta schedule rescaled to S steps, and sampling is ancestral DDPM with the same S.
The backbone is the lifting U-Net with a sinusoidal embedding of the diffusion step where the lifted
model embeds its label, so the two methods differ only in how the randomness enters.

The few-step choices are config fields, each in its own module: the schedule (model.diffusion_schedule,
model.snr_shift, model.zero_terminal_snr; schedule.py), what the network predicts (model.prediction: epsilon, x0, v;
parameterisation.py) and the sampler (model.sampler: ddpm, or ddim with model.ddim_eta; sampler.py).
The schedule is built for the S steps the model samples with, so it is trained at that S too.

The model diffuses the same quantity the lifted model regresses: the normalised increment
(x_{t+1} - anchor) / s with an anchored output ("residual": anchor x_t; "second_order"), or
x_{t+1} / frame_scale with output "direct". The condition window is divided by frame_scale (the std of
the training frames) so it enters at the noise's scale.
Conditioning "clean" passes the window as is; "noisy" diffuses it with the same forward process. Each
reverse step clips its clean estimate to the training data's range (DDPM's clip_denoised; see the sampler).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from stochlift.baselines.parameterisation import training_target
from stochlift.baselines.sampler import build_sampler
from stochlift.baselines.schedule import build_schedule
from stochlift.config import ModelConfig
from stochlift.lifting.labels import stream_seed
from stochlift.lifting.outputs import ANCHORED, anchor


class ARDM(nn.Module):
    """window [B, m, *frame] -> next frame, in S network calls; the randomness of one frame is
    `noise_shape` standard-normal numbers per sample (the start and the per-step noises)."""

    def __init__(self, backbone: nn.Module, config: ModelConfig) -> None:
        super().__init__()
        self.backbone = backbone
        self.window, self.history_padding = config.window, config.history_padding
        self.label_dim = 0
        self.frame_shape = tuple(config.frame_shape)
        self.output, self.loss_name, self.conditioning = config.output, config.loss, config.conditioning
        self.prediction = config.prediction
        self.schedule = build_schedule(config.diffusion_schedule, config.diffusion_steps, config.zero_terminal_snr,
                                       config.snr_shift)
        self.sampler = build_sampler(config.sampler, self.schedule, config.prediction, config.ddim_eta)
        self.register_buffer("residual_scale", torch.tensor(float(config.residual_scale or 1.0)))
        self.register_buffer("frame_scale", torch.tensor(float(config.frame_scale or 1.0)))
        self.clip = config.clip_denoised

    @property
    def steps(self) -> int:
        return self.schedule.steps

    @property
    def _noise_channels(self) -> int:
        """Channels of noise per step: the frame's, plus the window's under noisy conditioning."""
        channels = self.frame_shape[0]
        return channels * (1 + self.window) if self.conditioning == "noisy" else channels

    @property
    def noise_shape(self) -> tuple[int, ...]:
        return (self.steps, self._noise_channels, *self.frame_shape[1:])

    def _condition(self, window: torch.Tensor) -> torch.Tensor:
        return (window / self.frame_scale).flatten(1, 2)

    def _to_z(self, window: torch.Tensor, frame: torch.Tensor) -> torch.Tensor:
        if self.output in ANCHORED:
            return (frame - anchor(window, self.output)) / self.residual_scale
        return frame / self.frame_scale

    def _from_z(self, window: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if self.output in ANCHORED:
            return anchor(window, self.output) + self.residual_scale * z
        return self.frame_scale * z

    def _net(self, z: torch.Tensor, t: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        """The network's output (noise, clean or velocity estimate, by model.prediction) at step t."""
        return self.backbone(torch.cat([condition, z], dim=1), t.to(z.dtype)[:, None])

    def forward(self, window: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """The next frame [B, *frame] from a window and this frame's noise [B, *noise_shape]."""
        channels = self.frame_shape[0]
        condition = self._condition(window)

        def predict(z: torch.Tensor, t: int) -> torch.Tensor:
            step = torch.full((len(z),), t, device=z.device, dtype=torch.long)
            given = condition
            if self.conditioning == "noisy":
                given = self.schedule.add_noise(condition, noise[:, self.steps - 1 - t, channels:], step)
            return self._net(z, step, given)

        return self._from_z(window, self.sampler.denoise(predict, noise[:, :, :channels], clip=self.clip))

    def step_inputs(self, labels: torch.Tensor, index, seed: int, step: int) -> torch.Tensor:
        """The training randomness of one step's batch, a function of (seed, step): per pair a diffusion
        step t and the noise, packed as [B, 1 + noise numbers] (t in column 0) so it travels like a label."""
        generator = torch.Generator().manual_seed(stream_seed(seed, "diffusion", step))
        batch = len(index)
        t = torch.randint(0, self.steps, (batch, 1), generator=generator)
        noise = torch.randn(batch, self._noise_channels, *self.frame_shape[1:], generator=generator)
        return torch.cat([t.to(noise.dtype), noise.flatten(1)], dim=1)

    def loss(self, window: torch.Tensor, packed: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Prediction loss (of the noise, the clean frame or v) at a random step: Huber (ACDM's) or mean
        squared error."""
        channels = self.frame_shape[0]
        t = packed[:, 0].long()
        noise = packed[:, 1:].reshape(len(packed), self._noise_channels, *self.frame_shape[1:])
        clean = self._to_z(window, target)
        noisy = self.schedule.add_noise(clean, noise[:, :channels], t)
        condition = self._condition(window)
        if self.conditioning == "noisy":
            condition = self.schedule.add_noise(condition, noise[:, channels:], t)
        predicted = self._net(noisy, t, condition)
        wanted = training_target(self.prediction, clean, noise[:, :channels], *self.schedule.factors(t, clean))
        if self.loss_name == "huber":
            return F.smooth_l1_loss(predicted, wanted)
        return F.mse_loss(predicted, wanted)
