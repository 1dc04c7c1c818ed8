"""SRResNet (Ledig et al. 2017), the generator of SRGAN."""

import torch
from torch import nn

from lensr.models.common import PixelShuffleUpsampler, SRNet, check_scale, conv, init_config
from lensr.models.registry import register_model


class ResidualBlock(nn.Module):
    """conv-BN-PReLU-conv-BN with an identity skip."""

    def __init__(self, n_feats: int, batch_norm: bool = True):
        super().__init__()
        norm = (lambda: nn.BatchNorm2d(n_feats)) if batch_norm else nn.Identity
        self.body = nn.Sequential(
            conv(n_feats, n_feats, bias=not batch_norm),
            norm(),
            nn.PReLU(),
            conv(n_feats, n_feats, bias=not batch_norm),
            norm(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class SRResNet(SRNet):
    """SRResNet: 9x9 head + PReLU, residual blocks, conv-BN with a long skip, pixel-shuffle
    upsampling with PReLU (one conv per factor 2), 9x9 reconstruction conv.

    With the defaults (16 blocks, 64 features, batch norm) it has 1,378,899 parameters
    (1 channel, x2); convs followed by batch norm carry no bias.

    Args:
        scale: 2, 3, 4 or 8 (default 2).
        in_channels: image channels (default 1).
        n_feats: feature channels (default 64).
        n_blocks: residual blocks (default 16).
        batch_norm: use batch norm as in the paper (default True); False gives an
            MSRResNet-like network without normalisation.
    """

    upsampler_prefixes = ("upsampler", "tail")

    def __init__(
        self,
        *,
        scale: int = 2,
        in_channels: int = 1,
        n_feats: int = 64,
        n_blocks: int = 16,
        batch_norm: bool = True,
    ):
        config = init_config(locals())
        super().__init__()
        self.scale = check_scale(scale, arch="SRResNet")
        self.config = config
        self.head = nn.Sequential(conv(in_channels, n_feats, 9), nn.PReLU())
        self.body = nn.Sequential(*(ResidualBlock(n_feats, batch_norm) for _ in range(n_blocks)))
        self.body_tail = nn.Sequential(
            conv(n_feats, n_feats, bias=not batch_norm),
            nn.BatchNorm2d(n_feats) if batch_norm else nn.Identity(),
        )
        self.upsampler = PixelShuffleUpsampler(scale, n_feats, act=nn.PReLU)
        self.tail = conv(n_feats, in_channels, 9)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        h = self.head(x)
        return h + self.body_tail(self.body(h))

    def decode(self, feats: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.upsampler(feats))


@register_model("srresnet", description="SRResNet 16 blocks x 64 features, BN (Ledig et al.)")
def srresnet(**kwargs) -> SRResNet:
    return SRResNet(**kwargs)


@register_model("srresnet-tiny", description="SRResNet 4 blocks x 32 features, for CPU demos")
def srresnet_tiny(**kwargs) -> SRResNet:
    return SRResNet(**{"n_feats": 32, "n_blocks": 4, **kwargs})
