"""The sigma calibration fit (`a * sigma + b * LR noise + c * |mean|`), its application at
inference and the held-out (cross-fitted) coverage that `evaluate` reports."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lensr.errors import LensrError
from lensr.eval.trust_measures import sigma_calibration
from lensr.infer.uncertainty import (
    CALIBRATION_TERMS,
    apply_calibration,
    calibrated_sigma,
    coverage,
    fit_calibration,
    image_noise,
    image_scale,
)

PER_IMAGE = 3000


def _heavy_tailed(n_images=20, *, seed=0, dof=None):
    """Errors whose spread is 0.8 sigma + 0.3 noise + 0.2 |mean| (noise differs per image,
    |mean| per pixel): relative to the raw sigma alone they are heavy-tailed."""
    rng = np.random.default_rng(seed)
    noise = np.repeat(rng.uniform(0.05, 1.0, n_images), PER_IMAGE)
    mean = rng.lognormal(-2, 1.5, noise.size)
    sigma = rng.lognormal(-3, 0.5, noise.size)
    if dof is None:
        z = rng.standard_normal(noise.size)
    else:
        z = rng.standard_t(dof, noise.size) * np.sqrt((dof - 2) / dof)
    return np.abs((0.8 * sigma + 0.3 * noise + 0.2 * mean) * z), sigma, noise, mean


def _within_tolerance(cov: dict) -> bool:
    return abs(cov["within_1sigma"] - 0.68) <= 0.05 and abs(cov["within_2sigma"] - 0.95) <= 0.03


def test_gaussian_errors_keep_the_raw_sigma():
    rng = np.random.default_rng(2)
    sigma = rng.lognormal(-3, 0.5, 60_000)
    err = np.abs(sigma * rng.standard_normal(sigma.size))
    noise, mean = rng.uniform(0.05, 1, sigma.size), rng.lognormal(-2, 1.5, sigma.size)
    calib = fit_calibration(err, sigma, noise, mean)
    assert calib["a"] == pytest.approx(1.0, abs=0.03)
    assert calib["b"] == 0 and calib["c"] == 0 and calib["terms"] == list(CALIBRATION_TERMS)


@pytest.mark.parametrize("dof", [None, 5])
def test_heavy_tailed_errors_are_covered_at_both_levels_on_held_out_samples(dof):
    err, sigma, noise, mean = _heavy_tailed(dof=dof)
    ratio = err / sigma
    assert np.quantile(ratio, 0.9545) / np.quantile(ratio, 0.6827) > 3  # Gaussian: 2
    only_sigma = fit_calibration(err, sigma, 0 * noise, 0 * mean)
    calib = fit_calibration(err, sigma, noise, mean)
    err2, sigma2, noise2, mean2 = _heavy_tailed(seed=1, dof=dof)
    assert not _within_tolerance(coverage(err2, calibrated_sigma(only_sigma, sigma2, 0, 0)))
    held = coverage(err2, calibrated_sigma(calib, sigma2, noise2, mean2))
    assert _within_tolerance(held), held
    assert min(calib["a"], calib["b"], calib["c"]) > 0


def test_fit_refuses_bad_samples():
    with pytest.raises(LensrError, match="non-empty"):
        fit_calibration([], [], [], [])
    with pytest.raises(LensrError, match="matching"):
        fit_calibration([1.0, 2.0], [1.0], [1.0], [1.0])
    with pytest.raises(LensrError, match="finite"):
        fit_calibration([np.nan], [1.0], [1.0], [1.0])


def test_apply_calibration_per_image_and_the_legacy_form():
    rng = np.random.default_rng(0)
    lr = rng.normal(0, 1, (2, 16, 16)) * np.array([0.5, 2.0])[:, None, None]
    sigma, mean = rng.uniform(0, 1, (2, 32, 32)), rng.normal(0, 1, (2, 32, 32))
    calib = {"a": 2.0, "b": 0.5, "c": 0.1, "terms": list(CALIBRATION_TERMS)}
    out = apply_calibration(sigma, calib, lr, mean)
    noise = image_noise(lr)[:, None, None]
    assert noise[1, 0, 0] > 3 * noise[0, 0, 0]  # the noise floor is per image
    np.testing.assert_allclose(out, 2 * sigma + 0.5 * noise + 0.1 * np.abs(mean), rtol=1e-5)
    legacy = apply_calibration(sigma, {"a": 2.0, "b": 0.03}, lr)
    np.testing.assert_allclose(legacy, 2 * sigma + 0.03 * image_scale(lr)[:, None, None], 1e-5)
    with pytest.raises(LensrError, match="mean"):
        apply_calibration(sigma, calib, lr)
    with pytest.raises(LensrError, match="terms"):
        apply_calibration(sigma, {**calib, "terms": ["sigma"]}, lr, mean)


class _Run:
    module = torch.nn.Conv2d(1, 1, 1)  # a trained model (has parameters)


def test_evaluate_reports_cross_fitted_held_out_coverage():
    err, sigma, noise, mean = _heavy_tailed(n_images=16, dof=5)
    run = _Run()
    run.sigma_samples = [
        (i, *(a[i * PER_IMAGE : (i + 1) * PER_IMAGE] for a in (err, sigma, noise, mean)))
        for i in range(16)
    ]
    out = sigma_calibration(run, {"n_boot": 100, "seed": 0})
    assert out["n_images"] == 16 and "cross-fit" in out["held_out"]
    assert _within_tolerance({k: out[k]["mean"] for k in ("within_1sigma", "within_2sigma")})
    assert out["raw"]["within_2sigma"] < 0.9  # the raw sigma is far too small
    assert out["reliability"]["calibrated"][9] == pytest.approx(0.954, abs=0.03)
    run.sigma_samples = [s for s in run.sigma_samples if s[0] % 2 == 0]
    assert sigma_calibration(run, {"n_boot": 100, "seed": 0}) is None  # no odd fold
