"""PSF kernels evaluated on a pixel grid, integrated over each pixel, optionally shifted.

Shifting the kernel by a sub-pixel offset shifts the convolved image by the same amount,
which is how the LR sky gets its sub-pixel offset without a second ray-trace.
"""

from __future__ import annotations

import numpy as np

_OVERSAMPLE = 5


def gaussian_profile(r2: np.ndarray, fwhm: float) -> np.ndarray:
    sigma = fwhm / (2.0 * np.sqrt(2.0 * np.log(2.0)))
    return np.exp(-0.5 * r2 / sigma**2)


def moffat_profile(r2: np.ndarray, fwhm: float, beta: float) -> np.ndarray:
    alpha = fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))
    return (1.0 + r2 / alpha**2) ** (-beta)


def psf_kernel(
    *,
    kind: str,
    fwhm: float,
    pixel_scale: float,
    beta: float = 4.765,
    offset: tuple[float, float] = (0.0, 0.0),
    truncation: float = 3.0,
) -> np.ndarray:
    """Normalised PSF kernel (odd size) on a grid of ``pixel_scale`` arcsec.

    ``fwhm`` is in arcsec, ``offset`` (dx, dy) in pixels of this grid, ``truncation`` the
    kernel half-width in units of FWHM (Moffat wings are longer: 2x that).
    """
    reach = truncation * fwhm * (2.0 if kind == "moffat" else 1.0) / pixel_scale
    half = int(np.ceil(reach + max(abs(offset[0]), abs(offset[1]))))
    size = 2 * half + 1
    # Sub-pixel sample positions, in pixels, relative to the kernel centre.
    sub = (np.arange(size * _OVERSAMPLE) + 0.5) / _OVERSAMPLE - size / 2.0
    xx, yy = np.meshgrid(sub - offset[0], sub - offset[1])
    r2 = (xx**2 + yy**2) * pixel_scale**2
    if kind == "gaussian":
        fine = gaussian_profile(r2, fwhm)
    elif kind == "moffat":
        fine = moffat_profile(r2, fwhm, beta)
    else:
        raise ValueError(f"unknown PSF type {kind!r}")
    kernel = fine.reshape(size, _OVERSAMPLE, size, _OVERSAMPLE).sum(axis=(1, 3))
    return kernel / kernel.sum()
