"""The simulator's noise against the noise model, per pixel: many noise draws of one
noise-free HR/LR pair, the empirical mean and variance maps compared with the variance
written out here from first principles (electrons from the band's zero point, sky
brightness, exposure and read noise), white and correlated, and the peak S/N reached."""

import numpy as np
import pytest

from lensr.sim.config import load_sim_config
from lensr.sim.render import Renderer

DRAWS = 600


def model_variance(cfg, band: str, clean: np.ndarray, exposure: float) -> np.ndarray:
    """Per-pixel variance in image units: (signal + sky electrons + n_exp * read^2) /
    (electrons per image unit)^2, pixel value 1 = ``flux_zero_point`` mag/arcsec^2."""
    inst = getattr(cfg, band)
    area = (cfg.hr_pixel_scale if band == "hr" else cfg.lr_pixel_scale) ** 2
    electrons_per_unit = 10 ** (0.4 * (inst.zero_point - cfg.flux_zero_point)) * area * exposure
    sky = 10 ** (-0.4 * (inst.sky_brightness - inst.zero_point)) * area * exposure
    read = inst.num_exposures * inst.read_noise**2
    return (clean * electrons_per_unit + sky + read) / electrons_per_unit**2


def noise_draws(cfg, index: int = 1):
    """One noise-free pair (a cdm lens) and DRAWS noisy observations of it."""
    renderer = Renderer(cfg)
    sample = renderer.render(seed=0, index=index)
    hr, lr = [], []
    for k in range(DRAWS):
        p = dict(sample.params)
        h, ell = renderer.observe(
            np.random.default_rng([99, k]), sample.hr_clean, sample.lr_clean, p
        )
        hr.append(h)
        lr.append(ell)
    return sample, p, np.array(hr, dtype=np.float64), np.array(lr, dtype=np.float64)


@pytest.fixture(scope="module")
def white():
    return (cfg := load_sim_config("classify")), *noise_draws(cfg)


def check_band(images, clean, variance):
    resid = images - clean
    ratio = resid.var(axis=0, ddof=1) / variance
    # The variance of a K-draw variance estimate is 2 var^2 / (K - 1).
    sigma = np.sqrt(2 / (DRAWS - 1))
    assert np.abs(ratio - 1).max() < 6 * sigma
    assert ratio.mean() == pytest.approx(1.0, abs=0.01)
    # Zero mean, in units of the modelled noise (a biased or scaled draw fails here too).
    z = resid.mean(axis=0) / np.sqrt(variance / DRAWS)
    assert np.abs(z).max() < 6 and abs(z.mean()) < 5 / np.sqrt(z.size)


@pytest.mark.parametrize("band", ["hr", "lr"])
def test_white_noise_variance_per_pixel_matches_the_model(white, band):
    cfg, sample, p, hr, lr = white
    images, clean = (hr, sample.hr_clean) if band == "hr" else (lr, sample.lr_clean)
    variance = model_variance(cfg, band, clean.astype(np.float64), p[f"{band}_exposure"])
    # The bright arcs carry visibly more (Poisson) noise than the sky: the model is per pixel.
    assert variance.max() > 1.5 * variance.min()
    check_band(images, clean, variance)


def test_the_peak_pixel_reaches_the_target_snr(white):
    cfg, sample, p, hr, _ = white
    variance = model_variance(cfg, "hr", sample.hr_clean.astype(np.float64), p["hr_exposure"])
    peak = np.unravel_index(np.argmax(sample.hr_clean), sample.hr_clean.shape)
    snr_model = sample.hr_clean[peak] / np.sqrt(variance[peak])
    assert snr_model == pytest.approx(p["snr_target"], rel=1e-5)
    # Measured from the draws: signal over the empirical noise std at the peak.
    snr_measured = sample.hr_clean[peak] / hr[:, peak[0], peak[1]].std(ddof=1)
    assert snr_measured == pytest.approx(p["snr_target"], rel=0.15)


def test_correlated_noise_keeps_the_per_pixel_variance_and_correlates_neighbours():
    sigma = 1.0
    cfg = load_sim_config("classify")
    cfg = cfg.model_copy(
        update={"noise": cfg.noise.model_copy(update={"correlated_sigma": (sigma, sigma)})}
    )
    sample, p, hr, lr = noise_draws(cfg)
    assert p["correlated_sigma"] == sigma
    for band, images, clean in (("hr", hr, sample.hr_clean), ("lr", lr, sample.lr_clean)):
        variance = model_variance(cfg, band, clean.astype(np.float64), p[f"{band}_exposure"])
        z = (images - clean) / np.sqrt(variance)
        # Per-pixel variance: pooled over pixels (neighbours are not independent now).
        assert z.var() == pytest.approx(1.0, abs=0.03)
        assert np.abs(z.mean(axis=0)).max() < 6 / np.sqrt(DRAWS)
        # Neighbour correlation of white noise smoothed by a sampled Gaussian of `sigma` px.
        x = np.arange(-4, 5)
        g = np.exp(-(x**2) / (2 * sigma**2))
        expected = (g[:-1] * g[1:]).sum() / (g**2).sum()
        corr_x = (z[:, :, 1:] * z[:, :, :-1]).mean() / z.var()
        corr_y = (z[:, 1:, :] * z[:, :-1, :]).mean() / z.var()
        assert corr_x == pytest.approx(expected, abs=0.02), band
        assert corr_y == pytest.approx(expected, abs=0.02), band
