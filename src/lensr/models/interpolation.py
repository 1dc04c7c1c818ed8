"""Parameter-free interpolation baselines with the SR-network interface."""

import torch
import torch.nn.functional as F

from lensr.errors import LensrError
from lensr.models.common import SRNet, init_config
from lensr.models.registry import register_model


class Interpolation(SRNet):
    """Bilinear or bicubic upsampling (``F.interpolate``, ``align_corners=False``).

    Pixel values keep their units (surface brightness), so no rescaling is needed.
    ``encode`` is the identity and ``decode`` interpolates; there are no parameters.

    Args:
        scale: integer upsampling factor (default 2).
        in_channels: accepted for a uniform interface; any channel count works (default 1).
        mode: "bilinear" (default) or "bicubic".
    """

    def __init__(self, *, scale: int = 2, in_channels: int = 1, mode: str = "bilinear"):
        config = init_config(locals())
        super().__init__()
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise LensrError(f"scale must be a positive integer, not {scale!r}")
        if mode not in ("bilinear", "bicubic"):
            raise LensrError(f"interpolation mode must be 'bilinear' or 'bicubic', not {mode!r}")
        self.scale, self.mode, self.config = scale, mode, config

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def decode(self, feats: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        size = (feats.shape[-2] * self.scale, feats.shape[-1] * self.scale)
        return F.interpolate(feats, size=size, mode=self.mode, align_corners=False)


@register_model(
    "bilinear",
    description="bilinear interpolation (the study's baseline)",
    family="baseline",
    trainable=False,
)
def bilinear(**kwargs) -> Interpolation:
    return Interpolation(**{"mode": "bilinear", **kwargs})


@register_model(
    "bicubic",
    description="bicubic interpolation (Keys, a=-0.75)",
    family="baseline",
    trainable=False,
)
def bicubic(**kwargs) -> Interpolation:
    return Interpolation(**{"mode": "bicubic", **kwargs})
