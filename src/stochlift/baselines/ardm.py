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

from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from stochlift.baselines.parameterisation import PREDICTIONS, training_target
from stochlift.baselines.sampler import SAMPLERS, build_sampler
from stochlift.baselines.schedule import SCHEDULES, build_schedule
from stochlift.config import ModelConfig
from stochlift.errors import StochliftError
from stochlift.lifting.labels import stream_seed
from stochlift.lifting.outputs import ANCHORED, anchor
from stochlift.models import BACKBONES, build_backbone

if TYPE_CHECKING:
    from stochlift.lifting.pairs import PairSet


class ARDM(nn.Module):
    """window [B, m, *frame] -> next frame, in S network calls; the randomness of one frame is
    `noise_shape` standard-normal numbers per sample (the start and the per-step noises)."""

    # what resolve_from_data fills when the config leaves it None (shown by `stochlift config show`)
    filled_from_data = {"frame_scale": "the std of the training frames",
                        "clip_denoised": "the largest |value| diffused in the training data"}
    residual_scale: torch.Tensor  # buffers (register_buffer in __init__), declared for the type checker
    frame_scale: torch.Tensor

    def __init__(self, backbone: nn.Module, config: ModelConfig) -> None:
        super().__init__()
        self.backbone = backbone
        self.window, self.history_padding = config.window, config.history_padding
        self.label_dim = 0
        assert config.frame_shape is not None  # from_config, the only constructor, has read frame_shape[0]
        self.frame_shape = tuple(config.frame_shape)
        self.output, self.loss_name, self.conditioning = config.output, config.loss, config.conditioning
        self.prediction = config.prediction
        self.schedule = build_schedule(config.diffusion_schedule, config.diffusion_steps, config.zero_terminal_snr,
                                       config.snr_shift)
        self.sampler = build_sampler(config.sampler, self.schedule, config.prediction, config.ddim_eta)
        self.register_buffer("residual_scale", torch.tensor(float(config.residual_scale or 1.0)))
        self.register_buffer("frame_scale", torch.tensor(float(config.frame_scale or 1.0)))
        self.clip = config.clip_denoised

    pushforward = False  # an ARDM trains on true windows (train.unroll is refused)

    @classmethod
    def validate_config(cls, model: ModelConfig) -> None:
        if model.label_dim != 0:
            raise StochliftError("an ARDM has no lifting label: set model.label_dim=0")
        if model.diffusion_steps < 1:
            raise StochliftError(f"model.diffusion_steps must be >= 1, got {model.diffusion_steps}")
        if model.conditioning not in ("clean", "noisy"):
            raise StochliftError(f"model.conditioning must be 'clean' or 'noisy', got {model.conditioning!r}")
        if model.loss not in ("huber", "l2"):
            raise StochliftError(f"an ARDM's model.loss must be 'huber' or 'l2' (on the noise), got {model.loss!r}")
        cls._validate_few_step_choices(model)

    @staticmethod
    def _validate_few_step_choices(model: ModelConfig) -> None:
        """model.diffusion_schedule, snr_shift, zero_terminal_snr, prediction, sampler and ddim_eta."""
        for name, allowed in (("diffusion_schedule", SCHEDULES), ("prediction", PREDICTIONS), ("sampler", SAMPLERS)):
            if getattr(model, name) not in allowed:
                raise StochliftError(f"model.{name} must be one of {list(allowed)}, got {getattr(model, name)!r}")
        if model.snr_shift <= 0:
            raise StochliftError(f"model.snr_shift must be > 0, got {model.snr_shift}")
        if not 0 <= model.ddim_eta <= 1:
            raise StochliftError(f"model.ddim_eta must be in [0, 1], got {model.ddim_eta}")
        if model.ddim_eta and model.sampler != "ddim":
            raise StochliftError("model.ddim_eta is DDIM's noise level: set model.sampler=ddim, or leave ddim_eta at 0")
        if model.zero_terminal_snr:
            if model.diffusion_steps < 2:
                raise StochliftError("model.zero_terminal_snr needs model.diffusion_steps >= 2")
            if model.prediction == "epsilon":
                raise StochliftError("model.zero_terminal_snr makes the last step pure noise, where the noise says "
                                     "nothing of the frame: set model.prediction to 'x0' or 'v'")
            if model.conditioning == "noisy":
                raise StochliftError("model.zero_terminal_snr with noisy conditioning would erase the condition "
                                     "at the first step: use model.conditioning=clean")

    @classmethod
    def from_config(cls, config: ModelConfig) -> ARDM:
        """The backbone takes the window and the noisy next frame as channels and the diffusion step where
        the lifted model takes its label: through a sinusoidal time embedding when the backbone has one."""
        frame_shape = tuple(config.frame_shape or ())
        spec = BACKBONES.get(config.backbone)
        options = dict(config.options)
        if spec.time_embedding:
            options["label_embedding"] = "sinusoidal"
        if spec.label_planes:
            options.pop("label_planes", None)  # no lifting label to lay out as planes
        spec.check_frame(config.backbone, frame_shape, options, 0)
        backbone = build_backbone(config.backbone, in_channels=(config.window + 1) * frame_shape[0],
                                  out_channels=frame_shape[0], label_dim=1, **options)
        return cls(backbone, config)

    @classmethod
    def resolve_from_data(cls, config: ModelConfig, pairs: PairSet, seed: int) -> None:
        """The scale the condition window is divided by (the std of the training frames), and the clip bound:
        the largest |z| of the quantity diffused (normalised increment or frame) in the training data."""
        if config.frame_scale is None:
            config.frame_scale = pairs.frame_scale(seed=seed)
        if config.clip_denoised is None:
            if config.output in ANCHORED:
                output, scale = config.output, config.residual_scale
                config.clip_denoised = pairs.largest(lambda w, t: (t - anchor(w, output)) / scale, seed=seed)
            else:
                frame_scale = config.frame_scale
                config.clip_denoised = pairs.largest(lambda w, t: t / frame_scale, seed=seed)

    @property
    def steps(self) -> int:
        return self.schedule.steps

    @property
    def calls_per_frame(self) -> int:
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

    def training_noise(self, n_pairs: int, seed: int) -> DiffusionNoise:
        return DiffusionNoise(self, seed)

    def loss(self, window: torch.Tensor, target: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """Prediction loss (of the noise, the clean frame or v, by model.prediction) at the diffusion steps
        t [B] with the noises [B, channels, ...]: Huber (ACDM's) or mean squared error."""
        channels = self.frame_shape[0]
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


class DiffusionNoise:
    """The training randomness of an ARDM: per pair a diffusion step t and the noise, fresh at every step,
    a function of (seed, step) alone so a resumed run draws the same."""

    def __init__(self, model: ARDM, seed: int) -> None:
        self.model, self.seed = model, seed

    def batch(self, index: np.ndarray, step: int) -> dict[str, torch.Tensor]:
        m = self.model
        generator = torch.Generator().manual_seed(stream_seed(self.seed, "diffusion", step))
        t = torch.randint(0, m.steps, (len(index), 1), generator=generator)
        noise = torch.randn(len(index), m._noise_channels, *m.frame_shape[1:], generator=generator)
        return {"t": t[:, 0], "noise": noise}
