"""The noise model: draws have the variance the model states, exposure times reach the
asked S/N, and the noise of an image without a model is estimated from the image."""

import numpy as np
import pytest

from lensr.data.inspect import estimate_noise_sigma
from lensr.instrument.noise import (
    band_rate,
    estimate_noise_variance,
    exposure_for_snr,
    noise_counts,
    noise_variance,
    read_variance,
    sky_rate,
)


@pytest.mark.parametrize("correlated_sigma", [0.0, 1.5])
def test_noise_draws_have_the_modelled_variance(correlated_sigma):
    rng = np.random.default_rng(0)
    signal = np.full((256, 256), 400.0)
    signal[:, :128] = -5.0  # negative signal is no source: sky and read noise only
    noise = noise_counts(rng, signal, sky=100.0, read_var=25.0, correlated_sigma=correlated_sigma)
    var = noise_variance(signal, sky=100.0, read_var=25.0)
    assert var[0, 0] == 125.0 and var[0, -1] == 525.0
    for half in (slice(0, 128), slice(128, 256)):
        expected = var[0, half][0]
        # Correlated noise has fewer independent pixels: looser bounds.
        assert noise[:, half].mean() == pytest.approx(0.0, abs=0.15 * np.sqrt(expected))
        assert noise[:, half].var() == pytest.approx(expected, rel=0.1)


def test_rates_and_exposure_for_a_target_snr():
    assert band_rate(25.0, 25.0) == 1.0 and band_rate(27.5, 25.0) == pytest.approx(10.0)
    assert sky_rate(22.5, 25.0, 0.01) == pytest.approx(0.1)
    assert read_variance(4.0, 3) == 48.0
    t = exposure_for_snr(20.0, 5.0, 2.0, 16.0)
    signal = 5.0 * t
    assert signal / np.sqrt(signal + 2.0 * t + 16.0) == pytest.approx(20.0)


def test_noise_estimate_from_the_lr_image():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    smooth = 5 * np.exp(-((yy - 32) ** 2 + (xx - 30) ** 2) / 400.0)  # a faint, smooth lens
    images = smooth + rng.normal(0, 0.3, size=(4, 64, 64))
    var = estimate_noise_variance(images)
    np.testing.assert_allclose(np.sqrt(var), 0.3, rtol=0.08)
    np.testing.assert_allclose(estimate_noise_sigma(images), np.sqrt(var))
    assert estimate_noise_sigma(images[0]).shape == ()
    # A noise-free image gets a tiny positive variance, never zero.
    assert 0 < estimate_noise_variance(np.full((1, 8, 8), 3.0))[0] < 1e-20
