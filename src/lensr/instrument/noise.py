"""The noise model, in electrons: Poisson(source + sky) + read noise, optional correlation
and cosmic rays; and the noise variance of an image that carries no noise model.

Images are sky-subtracted, so a noise draw has zero mean. The per-pixel variance of a
noise-free signal (:func:`noise_variance`) is the one the simulator draws with and the one
the LR chi-square and the physics loss weight by. Band parameters (zero point, sky
brightness, read noise) come as plain numbers: this module knows no config classes.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from lensr.data.inspect import estimate_noise_sigma


def band_rate(zero_point: float, flux_zero_point: float) -> float:
    """Electrons per second of a band (``zero_point``: magnitude giving 1 e-/s) for a flux
    of 1 (surface brightness units x area; 1 is ``flux_zero_point`` mag)."""
    return 10.0 ** (0.4 * (zero_point - flux_zero_point))


def sky_rate(sky_brightness: float, zero_point: float, pixel_area: float) -> float:
    """Sky electrons per second per pixel of ``pixel_area`` arcsec^2 for a sky of
    ``sky_brightness`` mag/arcsec^2."""
    return 10.0 ** (-0.4 * (sky_brightness - zero_point)) * pixel_area


def read_variance(read_noise: float, num_exposures: int) -> float:
    """Read-noise variance (electrons^2) of a stack of ``num_exposures`` reads."""
    return num_exposures * read_noise**2


def exposure_for_snr(snr: float, signal_rate: float, sky: float, read_var: float) -> float:
    """Exposure time t (s) at which a pixel of ``signal_rate`` e-/s reaches ``snr``.

    Solves snr^2 (s t + b t + r^2) = s^2 t^2 for t > 0.
    """
    s2 = signal_rate**2
    lin = snr**2 * (signal_rate + sky)
    return (lin + np.sqrt(lin**2 + 4.0 * s2 * snr**2 * read_var)) / (2.0 * s2)


def noise_variance(signal: np.ndarray, *, sky, read_var) -> np.ndarray:
    """Per-pixel noise variance (electrons^2) of a noise-free ``signal`` (electrons):
    Poisson source (negative signal counts as none) + Poisson ``sky`` + ``read_var``.

    Example::

        std = np.sqrt(noise_variance(signal, sky=sky * t, read_var=read_var))
    """
    return np.clip(signal, 0, None) + sky + read_var


def noise_counts(
    rng: np.random.Generator,
    signal: np.ndarray,
    *,
    sky: float,
    read_var: float,
    correlated_sigma: float = 0.0,
) -> np.ndarray:
    """A zero-mean noise realisation in electrons for a noise-free ``signal`` in electrons.

    Correlated noise is white noise smoothed by a Gaussian of ``correlated_sigma`` pixels and
    rescaled so that the per-pixel variance is unchanged.
    """
    lam = np.clip(signal, 0.0, None) + sky
    noise = rng.poisson(lam).astype(np.float64) - lam
    noise += rng.normal(0.0, np.sqrt(read_var), size=signal.shape)
    if correlated_sigma > 0:
        std = np.sqrt(lam + read_var)
        white = noise / std
        smooth = gaussian_filter(white, correlated_sigma, mode="wrap")
        # Variance of a Gaussian-smoothed unit white field, from the kernel's own weights.
        impulse = np.zeros((33, 33))
        impulse[16, 16] = 1.0
        gain = np.sqrt((gaussian_filter(impulse, correlated_sigma, mode="constant") ** 2).sum())
        noise = smooth / gain * std
    return noise


def add_cosmic_rays(
    rng: np.random.Generator, counts: np.ndarray, *, rate: float, noise_std: np.ndarray
) -> int:
    """Add Poisson(rate) short streaks (1-4 px, 10-100 sigma) in place; returns their number."""
    n = int(rng.poisson(rate)) if rate > 0 else 0
    h, w = counts.shape
    for _ in range(n):
        y, x = rng.integers(0, h), rng.integers(0, w)
        length = int(rng.integers(1, 5))
        angle = rng.uniform(0, np.pi)
        amplitude = rng.uniform(10, 100)
        for step in range(length):
            yy = int(round(y + step * np.sin(angle)))
            xx = int(round(x + step * np.cos(angle)))
            if 0 <= yy < h and 0 <= xx < w:
                counts[yy, xx] += amplitude * noise_std[yy, xx]
    return n


def estimate_noise_variance(lr: np.ndarray) -> np.ndarray:
    """A constant noise variance per image (N,) from the LR images themselves (N, h, w).

    The noise std is :func:`lensr.data.inspect.estimate_noise_sigma` (the MAD of
    horizontal neighbour differences / sqrt(2)) in float64. It ignores the extra Poisson
    noise of bright arcs, so chi2 on such data is an upper bound there.

    Example::

        var = estimate_noise_variance(ds.lr[:8])    # (8,)
    """
    lr = np.asarray(lr, dtype=np.float64)
    sigma = estimate_noise_sigma(lr)
    # A noise-free image would give 0: floor it far below any real noise.
    floor = 1e-12 * np.maximum(np.abs(lr).max(axis=(-2, -1)), 1e-30)
    return np.maximum(sigma, floor) ** 2
