"""The 1-D U-Net: shapes, label conditioning, periodic padding, and that it learns a 1-D field's dynamics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stochlift.config import ModelConfig, RunConfig, TrainConfig
from stochlift.errors import StochliftError
from stochlift.lifting.generator import build_model
from stochlift.lifting.pairs import ArraySource
from stochlift.lifting.train import train
from stochlift.models import BACKBONES, UNet1d, build_backbone

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY = {"depths": [8, 16, 16], "mid_blocks": 1, "embed_width": 16, "groups": 4}


def test_shapes_labels_and_d0():
    torch.manual_seed(0)
    assert BACKBONES.get("unet1d").cls is UNet1d
    net = build_backbone("unet1d", in_channels=6, out_channels=2, label_dim=4, **TINY)
    x = torch.randn(3, 6, 32)
    out1, out2 = net(x, torch.randn(3, 4)), net(x, torch.randn(3, 4))
    assert out1.shape == (3, 2, 32)
    assert not torch.allclose(out1, out2)  # the label steers the output through FiLM
    plain = UNet1d(6, 2, label_dim=0, **TINY)
    assert plain.embedding is None and torch.equal(plain(x), plain(x, None))
    assert all(m.weight.dim() == 3 for m in net.modules() if isinstance(m, torch.nn.Conv1d))
    assert not any(isinstance(m, torch.nn.Conv2d) for m in net.modules())


def test_periodic_padding_commutes_with_shifts_and_zero_padding_does_not():
    torch.manual_seed(0)
    x, xi = torch.randn(2, 3, 32), torch.randn(2, 2)
    periodic = UNet1d(3, 1, label_dim=2, periodic=True, **TINY).eval()
    shift = 8  # a multiple of the total stride, 2 ** (levels - 1) = 4
    torch.testing.assert_close(periodic(torch.roll(x, shift, dims=2), xi), torch.roll(periodic(x, xi), shift, dims=2),
                               atol=1e-5, rtol=1e-5)
    torch.manual_seed(0)
    walled = UNet1d(3, 1, label_dim=2, periodic=False, **TINY).eval()
    gap = (walled(torch.roll(x, shift, dims=2), xi) - torch.roll(walled(x, xi), shift, dims=2)).abs().max()
    assert gap > 1e-3  # zero padding sees the ends of the line, so the same check fails


def test_a_spatial_label_steers_its_own_neighbourhood():
    torch.manual_seed(0)
    net = UNet1d(3, 1, label_dim=64, label_planes=2, **TINY).eval()
    x, xi = torch.randn(1, 3, 32), torch.randn(1, 64)
    nudged = xi.clone().view(1, 2, 32)
    nudged[0, 0, 3] += 1.0
    change = (net(x, nudged.flatten(1)) - net(x, xi)).abs()[0, 0]
    assert change[:8].mean() > 3 * change[-8:].mean()


def test_build_model_checks_the_frame_rank_and_sizes():
    model = build_model(ModelConfig(backbone="unet1d", window=2, label_dim=3, residual_scale=1.0, frame_shape=[2, 16],
                                    options=dict(TINY)))
    assert model(torch.randn(4, 2, 2, 16), torch.randn(4, 3)).shape == (4, 2, 16)
    with pytest.raises(StochliftError, match=r"unet1d backbone needs \[C, X\] frames.*model.backbone=unet$"):
        build_model(ModelConfig(backbone="unet1d", frame_shape=[1, 16, 16], options=dict(TINY)))
    with pytest.raises(StochliftError, match=r"unet backbone needs \[C, H, W\] frames.*model.backbone=unet1d$"):
        build_model(ModelConfig(backbone="unet", frame_shape=[1, 16], options=dict(TINY)))
    with pytest.raises(StochliftError, match="divisible by 4"):
        build_model(ModelConfig(backbone="unet1d", frame_shape=[1, 18], options=dict(TINY)))
    with pytest.raises(StochliftError, match="set model.label_dim=32, not 3"):
        build_model(ModelConfig(backbone="unet1d", label_dim=3, frame_shape=[1, 16],
                                options={**TINY, "label_planes": 2}))
    ardm = build_model(ModelConfig(method="ardm", backbone="unet1d", label_dim=0, loss="huber", frame_shape=[1, 16],
                                   options=dict(TINY)))
    assert ardm.backbone.embedding.kind == "sinusoidal"


def test_training_on_a_travelling_1d_field_reduces_the_loss(tmp_path):
    # a periodic field moving one point per frame, plus a little noise: x_{t+1} = roll(x_t, 1) + eps
    rng = np.random.default_rng(0)
    n, frames, size = 16, 8, 16
    first = np.cos(2 * np.pi * (np.arange(size) / size + rng.uniform(size=(n, 1))))
    data = np.stack([np.roll(first, t, axis=1) for t in range(frames)], axis=1)[:, :, None]
    data = (data + 0.02 * rng.normal(size=data.shape)).astype(np.float32)
    config = RunConfig(model=ModelConfig(backbone="unet1d", window=1, label_dim=4, options=dict(TINY)),
                       train=TrainConfig(steps=60, batch_size=16, lr=3e-3, log_every=10, checkpoint_every=60))
    result = train(config, tmp_path / "run", source=ArraySource(data), periodic=True, progress=False)
    losses = [h["loss"] for h in result.history]
    assert result.config.model.frame_shape == [1, size] and result.config.model.options["periodic"]
    assert losses[-1] < 0.2 * losses[0], losses
