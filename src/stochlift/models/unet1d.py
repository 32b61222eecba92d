"""A 1-D U-Net for fields [C, X] (a line of grid points: 1-D SPDEs, interfaces, signals).

The same network as `stochlift.models.unet.UNet`, built from the same blocks with 1-D convolutions: GroupNorm
residual blocks, FiLM modulation by the same `LabelEmbedding` of the label xi, stride-2 convolutions down,
nearest upsampling up, skip connections, circular padding for periodic domains, the same depth presets and
the same options (a spatial label `label_planes` becomes k lines of X values, d = k X).
"""

from __future__ import annotations

from stochlift.models.unet import UNet


class UNet1d(UNet):
    """F(window, xi) on 1-D fields: the window stacked as input channels [B, m C, X] -> next frame [B, C, X].

    Takes UNet's arguments. With periodic=True every convolution pads circularly, so the network commutes
    with shifts of the field by multiples of its total stride (2 ** (levels - 1) points).
    """

    spatial_dims = 1
