"""The detector's s x s block mean: a fine-grid image seen through pixels s times larger.

Pixel values are surface brightness, so binning is a block *mean* (the block sum of flux
divided by s^2): HR and LR values of the same sky stay comparable. This is the numpy form
the simulator uses; :mod:`lensr.instrument.operators` has the torch form and its adjoint.
"""

from __future__ import annotations

import numpy as np


def block_mean(image: np.ndarray, s: int) -> np.ndarray:
    """Mean over s x s blocks of an (H, W) image with H, W multiples of s: (H/s, W/s).

    Example::

        lr_clean = block_mean(hr_grid_image, 2)
    """
    h, w = image.shape
    return image.reshape(h // s, s, w // s, s).mean(axis=(1, 3))
