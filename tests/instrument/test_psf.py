"""PSF kernels: normalised, odd, shifted as asked; a band's kernel from its parameters; the
HR -> LR matching kernel; padding to one size."""

import numpy as np
import pytest
from scipy.signal import fftconvolve

from lensr.instrument.psf import band_kernel, matching_kernel, pad_kernels, psf_kernel


@pytest.mark.parametrize("kind", ["gaussian", "moffat"])
def test_kernels_are_normalised_odd_and_shifted_by_the_offset(kind):
    k = psf_kernel(kind=kind, fwhm=0.16, pixel_scale=0.05, beta=3.0, offset=(0.3, -0.2))
    assert k.shape[0] % 2 == 1 and k.shape[0] == k.shape[1]
    assert k.sum() == pytest.approx(1.0) and k.min() >= 0
    c = np.arange(k.shape[0]) - k.shape[0] // 2
    assert (k.sum(axis=0) * c).sum() == pytest.approx(0.3, abs=0.02)  # x: columns
    assert (k.sum(axis=1) * c).sum() == pytest.approx(-0.2, abs=0.02)
    with pytest.raises(ValueError, match="unknown PSF type"):
        psf_kernel(kind="airy", fwhm=0.1, pixel_scale=0.05)


def test_band_kernel_reads_the_parameters_row():
    row = {"hr_fwhm": 0.1, "hr_beta": 3.0, "lr_fwhm": 0.2, "lr_beta": 2.5}
    row |= {"offset_x": 0.4, "offset_y": -0.1}
    hr = band_kernel(row, "hr", kind="moffat", pixel_scale=0.05)
    lr = band_kernel(row, "lr", kind="moffat", pixel_scale=0.05)
    np.testing.assert_array_equal(
        hr, psf_kernel(kind="moffat", fwhm=0.1, beta=3.0, pixel_scale=0.05)
    )
    np.testing.assert_array_equal(
        lr,
        psf_kernel(kind="moffat", fwhm=0.2, beta=2.5, pixel_scale=0.05, offset=(0.4, -0.1)),
    )
    with pytest.raises(ValueError, match="band"):
        band_kernel(row, "uv", kind="moffat", pixel_scale=0.05)


@pytest.mark.parametrize(("kind", "tolerance"), [("gaussian", 1e-3), ("moffat", 3e-3)])
def test_matching_kernel_maps_the_hr_psf_to_the_lr_psf(kind, tolerance):
    k_lr = psf_kernel(kind=kind, fwhm=0.16, pixel_scale=0.05, beta=3.0)
    k_hr = psf_kernel(kind=kind, fwhm=0.087, pixel_scale=0.05, beta=3.0)
    K = matching_kernel(k_lr, k_hr)
    assert K.shape == k_lr.shape and K.sum() == pytest.approx(1.0)
    full = fftconvolve(K, k_hr, mode="full")
    c, h = full.shape[0] // 2, k_lr.shape[0] // 2
    error = np.abs(full[c - h : c + h + 1, c - h : c + h + 1] - k_lr).max() / k_lr.max()
    assert error < tolerance


def test_pad_kernels_keeps_the_centres():
    small, large = np.ones((3, 3)) / 9, np.ones((7, 7)) / 49
    stack = pad_kernels([small, large])
    assert stack.shape == (2, 7, 7) and stack.dtype == np.float64
    np.testing.assert_array_equal(stack[0, 2:5, 2:5], small)
    assert stack[0].sum() == pytest.approx(1.0)
    np.testing.assert_array_equal(stack[1], large)
