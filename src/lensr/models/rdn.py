"""RDN (Zhang et al. 2018): residual dense blocks with global feature fusion."""

import torch
from torch import nn

from lensr.models.common import PixelShuffleUpsampler, SRNet, check_scale, conv, init_config
from lensr.models.registry import register_model


class RDB(nn.Module):
    """Residual dense block: C densely connected conv-ReLU layers, 1x1 local fusion, skip."""

    def __init__(self, n_feats: int, growth: int, n_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.Sequential(conv(n_feats + i * growth, growth), nn.ReLU(inplace=True))
            for i in range(n_layers)
        )
        self.fusion = conv(n_feats + n_layers * growth, n_feats, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for layer in self.layers:
            feats.append(layer(torch.cat(feats, dim=1)))
        return x + self.fusion(torch.cat(feats, dim=1))


class RDN(SRNet):
    """RDN. Published size (D=16 blocks, C=8 layers, G=64 growth, G0=64, defaults):
    22,121,089 parameters (1 channel, x2). The upsampler works at G channels as in the
    authors' code.

    Args:
        scale: 2, 3, 4 or 8 (default 2).
        in_channels: image channels (default 1).
        n_feats: G0, channels between blocks (default 64).
        n_blocks: D, residual dense blocks (default 16).
        n_layers: C, conv layers per block (default 8).
        growth: G, growth rate (default 64).
    """

    upsampler_prefixes = ("upsampler", "tail")

    def __init__(
        self,
        *,
        scale: int = 2,
        in_channels: int = 1,
        n_feats: int = 64,
        n_blocks: int = 16,
        n_layers: int = 8,
        growth: int = 64,
    ):
        config = init_config(locals())
        super().__init__()
        self.scale = check_scale(scale, arch="RDN")
        self.config = config
        self.sfe1 = conv(in_channels, n_feats)
        self.sfe2 = conv(n_feats, n_feats)
        self.blocks = nn.ModuleList(RDB(n_feats, growth, n_layers) for _ in range(n_blocks))
        self.gff = nn.Sequential(conv(n_blocks * n_feats, n_feats, 1), conv(n_feats, n_feats))
        self.upsampler = PixelShuffleUpsampler(scale, n_feats, growth)
        self.tail = conv(growth, in_channels)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        f1 = self.sfe1(x)
        h = self.sfe2(f1)
        outs = []
        for block in self.blocks:
            h = block(h)
            outs.append(h)
        return f1 + self.gff(torch.cat(outs, dim=1))

    def decode(self, feats: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.upsampler(feats))


@register_model("rdn", description="RDN D=16 C=8 G=64 (Zhang et al.)")
def rdn(**kwargs) -> RDN:
    return RDN(**kwargs)


@register_model("rdn-tiny", description="RDN D=4 C=4 G=16 G0=32, for CPU demos")
def rdn_tiny(**kwargs) -> RDN:
    return RDN(**{"n_feats": 32, "n_blocks": 4, "n_layers": 4, "growth": 16, **kwargs})
