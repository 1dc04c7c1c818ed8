"""EDSR (Lim et al. 2017): residual blocks without batch norm, pixel-shuffle upsampler.

Unlike BasicSR's 3-channel version there is no RGB mean shift: single-channel lens images
are normalised by the data pipeline instead.
"""

import torch
from torch import nn

from lensr.models.common import PixelShuffleUpsampler, SRNet, check_scale, conv, init_config
from lensr.models.registry import register_model


class ResBlock(nn.Module):
    """conv-ReLU-conv, scaled by ``res_scale``, plus identity."""

    def __init__(self, n_feats: int, res_scale: float = 1.0):
        super().__init__()
        self.res_scale = res_scale
        self.body = nn.Sequential(
            conv(n_feats, n_feats), nn.ReLU(inplace=True), conv(n_feats, n_feats)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) * self.res_scale


class EDSR(SRNet):
    """EDSR. Baseline (16 blocks x 64, defaults): 1,367,553 parameters (1 channel, x2);
    full (32 x 256, res_scale 0.1): 40,720,385.

    Args:
        scale: 2, 3, 4 or 8 (default 2).
        in_channels: image channels (default 1).
        n_feats: feature channels (default 64).
        n_blocks: residual blocks (default 16).
        res_scale: residual scaling, 0.1 stabilises the wide model (default 1.0).
    """

    upsampler_prefixes = ("upsampler", "tail")

    def __init__(
        self,
        *,
        scale: int = 2,
        in_channels: int = 1,
        n_feats: int = 64,
        n_blocks: int = 16,
        res_scale: float = 1.0,
    ):
        config = init_config(locals())
        super().__init__()
        self.scale = check_scale(scale, arch="EDSR")
        self.config = config
        self.head = conv(in_channels, n_feats)
        blocks = [ResBlock(n_feats, res_scale) for _ in range(n_blocks)]
        self.body = nn.Sequential(*blocks, conv(n_feats, n_feats))
        self.upsampler = PixelShuffleUpsampler(scale, n_feats)
        self.tail = conv(n_feats, in_channels)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        return h + self.body(h)

    def decode(self, feats: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.upsampler(feats))


@register_model("edsr", description="EDSR baseline 16 blocks x 64 features (Lim et al.)")
def edsr(**kwargs) -> EDSR:
    return EDSR(**kwargs)


@register_model("edsr-full", description="EDSR 32 blocks x 256 features, res_scale 0.1")
def edsr_full(**kwargs) -> EDSR:
    return EDSR(**{"n_feats": 256, "n_blocks": 32, "res_scale": 0.1, **kwargs})


@register_model("edsr-tiny", description="EDSR 8 blocks x 32 features, for CPU demos")
def edsr_tiny(**kwargs) -> EDSR:
    return EDSR(**{"n_feats": 32, "n_blocks": 8, **kwargs})
