"""PSF kernels evaluated on a pixel grid, integrated over each pixel, optionally shifted.

Shifting the kernel by a sub-pixel offset shifts the convolved image by the same amount,
which is how the LR sky gets its sub-pixel offset without a second ray-trace. Also here:
the kernel of one band of a simulated image from its parameters (:func:`band_kernel`), the
HR -> LR matching kernel (:func:`matching_kernel`) and padding kernels to one size.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from lensr.errors import LensrError

_OVERSAMPLE = 5
MAX_KERNEL_SIZE = 1025
"""Largest kernel side (pixels) :func:`psf_kernel` builds: its oversampled grid then takes
~0.4 GB; a larger one means a FWHM far beyond any cutout (e.g. arcsec given as pixels)."""


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

    Example::

        k = psf_kernel(kind="moffat", fwhm=0.18, beta=3.0, pixel_scale=0.05)
    """
    reach = truncation * fwhm * (2.0 if kind == "moffat" else 1.0) / pixel_scale
    if not (np.isfinite(reach) and fwhm > 0 and pixel_scale > 0):
        raise LensrError(f"PSF FWHM {fwhm} and pixel scale {pixel_scale} must be positive")
    half = int(np.ceil(reach + max(abs(offset[0]), abs(offset[1]))))
    size = 2 * half + 1
    if size > MAX_KERNEL_SIZE:
        raise LensrError(
            f"a {kind} PSF of FWHM {fwhm:g} arcsec on {pixel_scale:g} arcsec pixels needs a "
            f"{size} x {size} px kernel (at most {MAX_KERNEL_SIZE}): is the FWHM in arcsec?"
        )
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


def band_kernel(row: Mapping, band: str, *, kind: str, pixel_scale: float) -> np.ndarray:
    """The PSF kernel of band ``band`` ("hr" or "lr") of one simulated image, on the HR grid.

    ``row`` holds the image's parameters (a dict or a record of a dataset's ``params``):
    ``{band}_fwhm`` (arcsec), ``{band}_beta`` and, for "lr", the sub-pixel offset
    ``offset_x``, ``offset_y`` (HR pixels) of the LR sky; ``kind`` is the band's PSF type
    and ``pixel_scale`` the HR pixel in arcsec. The simulator renders with these kernels.

    Example::

        k_lr = band_kernel(ds.params[0], "lr", kind="moffat", pixel_scale=0.05)
    """
    if band not in ("hr", "lr"):
        raise ValueError(f"band must be 'hr' or 'lr', not {band!r}")
    offset = (row["offset_x"], row["offset_y"]) if band == "lr" else (0.0, 0.0)
    return psf_kernel(
        kind=kind,
        fwhm=row[f"{band}_fwhm"],
        beta=row[f"{band}_beta"],
        pixel_scale=pixel_scale,
        offset=offset,
    )


def matching_kernel(k_lr: np.ndarray, k_hr: np.ndarray, *, eps: float = 1e-4) -> np.ndarray:
    """K with ``k_hr * K ~= k_lr`` (Wiener-regularised Fourier division), same size as k_lr.

    Exact for two Gaussians (K is then the Gaussian of sigma^2 = s_lr^2 - s_hr^2), close for
    Moffat profiles, where ``eps`` (relative to the peak power of k_hr) tames the division.

    Example::

        k = matching_kernel(k_lr, k_hr)    # maps an HR image (PSF k_hr) to PSF k_lr
    """
    size = k_lr.shape[0] + k_hr.shape[0]
    size += 1 - size % 2
    f_lr = np.fft.rfft2(k_lr, s=(size, size))
    f_hr = np.fft.rfft2(k_hr, s=(size, size))
    power = np.abs(f_hr) ** 2
    full = np.fft.irfft2(f_lr * np.conj(f_hr) / (power + eps * power.max()), s=(size, size))
    # The quotient is centred at (c_lr - c_hr); roll it to the middle, crop to k_lr's size.
    c = (k_lr.shape[0] // 2) - (k_hr.shape[0] // 2)
    full = np.roll(full, (size // 2 - c, size // 2 - c), axis=(0, 1))
    h = k_lr.shape[0] // 2
    k = full[size // 2 - h : size // 2 + h + 1, size // 2 - h : size // 2 + h + 1]
    return k / k.sum()


def pad_kernels(kernels: Sequence[np.ndarray]) -> np.ndarray:
    """Odd square kernels of different sizes, zero-padded about their centres to the
    largest size: (N, k, k) float64.

    Example::

        stack = pad_kernels([k_a, k_b])
    """
    size = max(k.shape[0] for k in kernels)
    out = np.zeros((len(kernels), size, size))
    for i, k in enumerate(kernels):
        o = (size - k.shape[0]) // 2
        out[i, o : o + k.shape[0], o : o + k.shape[1]] = k
    return out
