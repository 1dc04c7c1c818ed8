"""Blocks shared by the SR architectures, and their feature/upsampler split.

Every SR network derives from :class:`SRNet`: ``forward(x) = decode(encode(x), x)``,
where ``encode`` returns the deep feature map at LR resolution and ``decode`` upsamples
and reconstructs. ``upsampler_prefixes`` names the submodules used by ``decode`` so that
transfer learning can freeze or re-initialise either part (:func:`split_parameters`).
"""

import torch
from torch import nn

from lensr.errors import LensrError


def conv(in_ch: int, out_ch: int, kernel_size: int = 3, *, bias: bool = True) -> nn.Conv2d:
    """A stride-1 convolution with 'same' padding (odd kernel sizes)."""
    return nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2, bias=bias)


def init_config(frame_locals: dict) -> dict:
    """The constructor's keyword arguments, from ``locals()`` taken at the top of ``__init__``."""
    return {k: v for k, v in frame_locals.items() if k not in ("self", "__class__")}


def check_scale(scale, *, arch: str, allowed: tuple[int, ...] = (2, 3, 4, 8)) -> int:
    """Return ``scale`` if the architecture supports it, else raise a one-line LensrError."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale not in allowed:
        choices = ", ".join(str(s) for s in allowed)
        raise LensrError(f"scale {scale!r} is not supported by {arch} (use one of {choices})")
    return scale


class PixelShuffleUpsampler(nn.Sequential):
    """Sub-pixel upsampling (Shi et al. 2016): one conv + pixel shuffle per factor 2 (or one x3).

    Args:
        scale: 2, 3, 4 or 8.
        in_feats: channels of the input feature map.
        out_feats: channels after upsampling (default ``in_feats``).
        act: optional factory for an activation appended after each shuffle (SRResNet: PReLU).
    """

    def __init__(self, scale: int, in_feats: int, out_feats: int | None = None, act=None):
        out_feats = in_feats if out_feats is None else out_feats
        factors = [3] if scale == 3 else [2] * (scale.bit_length() - 1)
        if scale != 3 and 2 ** len(factors) != scale:
            raise LensrError(f"pixel-shuffle upsampling supports scale 2, 3, 4 or 8, not {scale}")
        layers: list[nn.Module] = []
        ch = in_feats
        for f in factors:
            layers += [conv(ch, out_feats * f * f), nn.PixelShuffle(f)]
            if act is not None:
                layers.append(act())
            ch = out_feats
        super().__init__(*layers)


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation channel attention as in RCAN (global pool, 1x1 down/up, sigmoid)."""

    def __init__(self, n_feats: int, reduction: int = 16):
        super().__init__()
        squeezed = max(1, n_feats // reduction)
        self.body = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(n_feats, squeezed, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(squeezed, n_feats, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.body(x)


class SRNet(nn.Module):
    """Base class of every SR network (and the interpolation baselines).

    Subclasses set ``self.scale`` and ``self.config`` (their exact constructor kwargs, so
    ``type(model)(**model.config)`` rebuilds the model) and implement ``encode``/``decode``.
    ``arch`` is the registry name; :func:`lensr.models.create_model` sets it.
    """

    upsampler_prefixes: tuple[str, ...] = ()
    arch: str | None = None
    scale: int
    config: dict

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Deep features at LR resolution, shape (N, C, H, W)."""
        raise NotImplementedError

    def decode(self, feats: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Upsampling and reconstruction: (N, C, H, W) features -> (N, in_channels, sH, sW)."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x), x)


def _in_prefixes(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def split_parameters(model: nn.Module) -> tuple[list[str], list[str]]:
    """Names of the feature-extractor parameters and of the upsampler/reconstruction ones.

    A parameter belongs to the upsampler when its name starts with one of the model's
    ``upsampler_prefixes`` (as a whole module path); all others are features.
    """
    prefixes = tuple(getattr(model, "upsampler_prefixes", ()))
    features, upsampler = [], []
    for name, _ in model.named_parameters():
        (upsampler if _in_prefixes(name, prefixes) else features).append(name)
    return features, upsampler


def to_channels_last(model: nn.Module) -> nn.Module:
    """Put ``model``'s 4-D parameters and buffers (convolution weights) in channels_last
    memory layout, in place; ``model``. Only 4-D tensors: ``Module.to(memory_format=...)``
    fails on the 5-D weights of the group convolutions (lensr.models.equivariant_layers)."""
    for tensor in [*model.parameters(), *model.buffers()]:
        if tensor.dim() == 4:
            tensor.data = tensor.data.contiguous(memory_format=torch.channels_last)
    return model


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of scalar parameters (buffers such as BN running stats excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
