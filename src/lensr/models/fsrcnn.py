"""FSRCNN (Dong, Loy & Tang 2016): a small LR-space network with a transposed-conv upsampler."""

import torch
from torch import nn

from lensr.models.common import SRNet, check_scale, conv, init_config
from lensr.models.registry import register_model


class FSRCNN(SRNet):
    """FSRCNN: feature extraction, shrinking, mapping, expanding, 9x9 transposed conv.

    With the paper's d=56, s=12, m=4 it has 12,809 parameters (1 channel, x2). Each conv is
    followed by a per-channel PReLU. Padding of the transposed conv is chosen so that the
    output is exactly ``scale * H`` by ``scale * W`` for any (odd) input size.

    Args:
        scale: 2, 3 or 4 (default 2).
        in_channels: image channels (default 1).
        n_feats: d, channels of the feature-extraction and expanding layers (default 56).
        n_shrink: s, channels of the mapping layers (default 12).
        n_map: m, number of 3x3 mapping layers (default 4).
    """

    upsampler_prefixes = ("upsampler",)

    def __init__(
        self,
        *,
        scale: int = 2,
        in_channels: int = 1,
        n_feats: int = 56,
        n_shrink: int = 12,
        n_map: int = 4,
    ):
        config = init_config(locals())
        super().__init__()
        self.scale = check_scale(scale, arch="FSRCNN", allowed=(2, 3, 4))
        self.config = config
        layers = [conv(in_channels, n_feats, 5), nn.PReLU(n_feats)]
        layers += [conv(n_feats, n_shrink, 1), nn.PReLU(n_shrink)]
        for _ in range(n_map):
            layers += [conv(n_shrink, n_shrink, 3), nn.PReLU(n_shrink)]
        layers += [conv(n_shrink, n_feats, 1), nn.PReLU(n_feats)]
        self.body = nn.Sequential(*layers)
        # out = (H - 1) * s - 2p + 9 + op; p and op below make it s * H exactly.
        pad = (9 - scale + 1) // 2
        self.upsampler = nn.ConvTranspose2d(
            n_feats,
            in_channels,
            9,
            stride=scale,
            padding=pad,
            output_padding=2 * pad - (9 - scale),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def decode(self, feats: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.upsampler(feats)


@register_model("fsrcnn", description="FSRCNN d=56 s=12 m=4 (Dong et al. 2016)")
def fsrcnn(**kwargs) -> FSRCNN:
    return FSRCNN(**kwargs)


@register_model("fsrcnn-tiny", description="FSRCNN d=32 s=8 m=2, for CPU demos")
def fsrcnn_tiny(**kwargs) -> FSRCNN:
    return FSRCNN(**{"n_feats": 32, "n_shrink": 8, "n_map": 2, **kwargs})
