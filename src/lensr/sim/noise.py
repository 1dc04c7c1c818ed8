"""Detector noise in electrons: Poisson(source + sky) + read noise, optional correlation
and cosmic rays. Images are sky-subtracted, so the returned noise has zero mean."""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter

from lensr.sim.config import Instrument


def band_rate(instrument: Instrument, flux_zero_point: float) -> float:
    """Electrons per second of this band for a flux of 1 (surface brightness units x area)."""
    return 10.0 ** (0.4 * (instrument.zero_point - flux_zero_point))


def sky_rate(instrument: Instrument, pixel_area: float) -> float:
    """Sky electrons per second per pixel."""
    return 10.0 ** (-0.4 * (instrument.sky_brightness - instrument.zero_point)) * pixel_area


def exposure_for_snr(snr: float, signal_rate: float, sky: float, read_var: float) -> float:
    """Exposure time t (s) at which a pixel of ``signal_rate`` e-/s reaches ``snr``.

    Solves snr^2 (s t + b t + r^2) = s^2 t^2 for t > 0.
    """
    s2 = signal_rate**2
    lin = snr**2 * (signal_rate + sky)
    return (lin + np.sqrt(lin**2 + 4.0 * s2 * snr**2 * read_var)) / (2.0 * s2)


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
