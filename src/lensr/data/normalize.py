"""The project's one input normalisation (docs/design.md, "Conventions").

HR and LR of a pair are divided by the same per-image scale computed from the LR image
alone, because at inference time the LR image is all that exists. The scale is a high
percentile of the LR pixels rather than the maximum, so that a cosmic ray or a hot pixel
does not dim the whole image. Networks see ``x / scale`` and their output is multiplied by
``scale`` again, so ``lensr upscale`` keeps the input's units.
"""

from __future__ import annotations

import numpy as np
import torch

PERCENTILE = 99.5
EPS = 1e-12

SPEC = {"name": "lr-percentile", "percentile": PERCENTILE}
"""Recorded in every checkpoint sidecar so that inference applies the same convention."""


def lr_scale_np(lr: np.ndarray, *, percentile: float = PERCENTILE) -> np.ndarray:
    """Per-image scale of LR images (..., H, W) -> (...)."""
    flat = lr.reshape(*lr.shape[:-2], -1)
    return np.maximum(np.percentile(flat, percentile, axis=-1), EPS)


def lr_scale(lr: torch.Tensor, *, percentile: float = PERCENTILE) -> torch.Tensor:
    """Per-image scale of a batch (N, C, H, W) -> (N, 1, 1, 1), same device and dtype."""
    flat = lr.reshape(lr.shape[0], -1).to(torch.float32)
    q = torch.quantile(flat, percentile / 100.0, dim=1)
    return q.clamp_min(EPS).to(lr.dtype).view(-1, 1, 1, 1)
