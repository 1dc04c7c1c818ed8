"""RCAN (Zhang et al. 2018): residual groups of residual channel-attention blocks.

No RGB mean shift (BasicSR has one for 3 channels): inputs are normalised upstream.
"""

import torch
from torch import nn

from lensr.models.common import (
    ChannelAttention,
    PixelShuffleUpsampler,
    SRNet,
    check_scale,
    conv,
    init_config,
)
from lensr.models.registry import register_model


class RCAB(nn.Module):
    """Residual channel-attention block: conv-ReLU-conv-CA plus identity."""

    def __init__(self, n_feats: int, reduction: int, res_scale: float = 1.0):
        super().__init__()
        self.res_scale = res_scale
        self.body = nn.Sequential(
            conv(n_feats, n_feats),
            nn.ReLU(inplace=True),
            conv(n_feats, n_feats),
            ChannelAttention(n_feats, reduction),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) * self.res_scale


class ResidualGroup(nn.Module):
    """``n_blocks`` RCABs and a conv, with a short skip connection."""

    def __init__(self, n_feats: int, n_blocks: int, reduction: int, res_scale: float = 1.0):
        super().__init__()
        blocks = [RCAB(n_feats, reduction, res_scale) for _ in range(n_blocks)]
        self.body = nn.Sequential(*blocks, conv(n_feats, n_feats))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class RCAN(SRNet):
    """RCAN. Published size (10 groups x 20 blocks x 64 features, reduction 16, defaults):
    15,442,337 parameters (1 channel, x2).

    Args:
        scale: 2, 3, 4 or 8 (default 2).
        in_channels: image channels (default 1).
        n_feats: feature channels (default 64).
        n_groups: residual groups (default 10).
        n_blocks: RCABs per group (default 20).
        reduction: channel-attention squeeze ratio (default 16).
        res_scale: residual scaling inside RCABs (default 1.0).
    """

    upsampler_prefixes = ("upsampler", "tail")

    def __init__(
        self,
        *,
        scale: int = 2,
        in_channels: int = 1,
        n_feats: int = 64,
        n_groups: int = 10,
        n_blocks: int = 20,
        reduction: int = 16,
        res_scale: float = 1.0,
    ):
        config = init_config(locals())
        super().__init__()
        self.scale = check_scale(scale, arch="RCAN")
        self.config = config
        self.head = conv(in_channels, n_feats)
        groups = [ResidualGroup(n_feats, n_blocks, reduction, res_scale) for _ in range(n_groups)]
        self.body = nn.Sequential(*groups, conv(n_feats, n_feats))
        self.upsampler = PixelShuffleUpsampler(scale, n_feats)
        self.tail = conv(n_feats, in_channels)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        return h + self.body(h)

    def decode(self, feats: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.upsampler(feats))


@register_model("rcan", description="RCAN 10 groups x 20 blocks x 64 features (Zhang et al.)")
def rcan(**kwargs) -> RCAN:
    return RCAN(**kwargs)


@register_model("rcan-tiny", description="RCAN 2 groups x 4 blocks x 32 features, for CPU demos")
def rcan_tiny(**kwargs) -> RCAN:
    return RCAN(**{"n_feats": 32, "n_groups": 2, "n_blocks": 4, **kwargs})
