"""Sky pedestal, noise and the out-of-prior warning of `lensr upscale` (lensr.infer.sky)."""

import numpy as np
import pytest
import torch
from astropy.io import fits

from lensr.errors import LensrError
from lensr.infer.prior import prior_warning
from lensr.infer.sky import estimate_sky, noise_to_signal, remove_sky, restore_sky
from lensr.infer.upscale import upscale_path
from lensr.models import create_model
from lensr.models.checkpoint import save_checkpoint

NORM = {"name": "lr-percentile", "percentile": 99.5}


def lens(n=1, size=48, pedestal=0.0, sigma=0.01, seed=0):
    """A ring on a flat pedestal with white noise, (n, size, size)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] - size / 2
    ring = np.exp(-((np.hypot(x, y) - size / 6) ** 2) / 4)
    return (ring + pedestal + rng.normal(0, sigma, (n, size, size))).astype(np.float32)


def test_estimate_sky_finds_the_pedestal_and_the_noise():
    level, sigma = estimate_sky(lens(pedestal=0.15, sigma=0.02)[0])
    assert abs(level - 0.15) < 0.004 and abs(sigma - 0.02) < 0.003


def test_auto_subtracts_only_for_a_sky_free_prior_and_keep_adds_back():
    img = lens(2, pedestal=0.3)
    out, rec = remove_sky(img, "auto")
    assert all(r.subtracted for r in rec) and abs(float(np.median(out[:, :5, :5]))) < 0.01
    same, rec = remove_sky(img, "auto", sky_subtracted_prior=False)
    np.testing.assert_array_equal(same, img)
    assert not rec[0].subtracted and abs(rec[0].level - 0.3) < 0.01  # measured, recorded
    clean, rec = remove_sky(lens(1, pedestal=0.0), "auto")
    assert not rec[0].subtracted  # no pedestal: the image is left alone
    kept, rec = remove_sky(img, "keep")
    np.testing.assert_allclose(restore_sky(kept.copy(), rec), img, atol=1e-6)
    with pytest.raises(LensrError, match="sky mode"):
        remove_sky(img, "maybe")


def test_min_max_normalised_input_looks_the_same_to_the_model():
    raw = lens(1, pedestal=0.0, sigma=0.01) * 37.0 + 5.0  # counts with a pedestal
    mm = (raw - raw.min()) / (raw.max() - raw.min())  # DeepLense's per-image min-max
    a, _ = remove_sky(raw, "subtract")
    b, _ = remove_sky(mm, "subtract")
    np.testing.assert_allclose(noise_to_signal(a), noise_to_signal(b), rtol=1e-3)


def test_prior_warning():
    meta = {"card": {"prior_range": {"noise_rel": [0.005, 0.05]}}}
    _, ok = remove_sky(lens(1, sigma=0.01), "auto")
    _, noisy = remove_sky(lens(1, sigma=0.5), "auto")
    assert prior_warning(ok[0], meta) is None
    line = prior_warning(noisy[0], meta)
    assert line.startswith("out of prior") and "noisier" in line and "\n" not in line
    assert prior_warning(noisy[0], {}) is None  # bicubic: no prior, no warning


@pytest.fixture
def carded(tmp_path):
    torch.manual_seed(0)
    meta = {"normalization": NORM, "card": {"prior_range": {"noise_rel": [0.005, 0.05]}}}
    return save_checkpoint(create_model("fsrcnn-tiny"), tmp_path / "m.safetensors", metadata=meta)


def test_upscale_records_the_sky_in_the_fits_header(tmp_path, carded, capsys):
    fits.PrimaryHDU(lens(pedestal=0.15, sigma=0.01)[0]).writeto(tmp_path / "in.fits")
    out = upscale_path(
        tmp_path / "in.fits", model=str(carded), out=tmp_path / "o.fits", progress=False
    )
    header = fits.getheader(out)
    assert header["LSKYSUB"] is True and abs(header["LSKYLEV"] - 0.15) < 0.005
    assert header["LPRIOR"] == "in" and header["LSKYMODE"] == "auto"
    assert "out of prior" not in capsys.readouterr().err
    fits.PrimaryHDU(lens(sigma=0.6)[0]).writeto(tmp_path / "noisy.fits")
    out = upscale_path(
        tmp_path / "noisy.fits", model=str(carded), out=tmp_path / "n.fits", progress=False
    )
    assert fits.getheader(out)["LPRIOR"] == "out"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "out of prior" in err[0]


def test_bad_sky_mode_writes_nothing(tmp_path, carded):
    np.save(tmp_path / "a.npy", lens()[0])
    with pytest.raises(LensrError, match="sky mode"):
        upscale_path(tmp_path / "a.npy", model=str(carded), out=tmp_path / "b.npy", sky="x")
    assert not (tmp_path / "b.npy").exists()


def test_api_arrays_handle_the_sky_like_the_cli(tmp_path, carded):
    """lensr.upscale on arrays removes the pedestal for a sky-free model exactly as the
    file path does, and an out-of-prior image raises one UserWarning."""
    import warnings

    import lensr

    img = lens(pedestal=0.15, sigma=0.01)[0]
    np.save(tmp_path / "in.npy", img)
    out = lensr.upscale(tmp_path / "in.npy", model=str(carded), out=tmp_path / "o.npy")
    via_file = np.load(out)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        via_array = lensr.upscale(img, model=str(carded))
    np.testing.assert_allclose(via_array, via_file, atol=1e-6)
    kept = lensr.upscale(img, model=str(carded), sky="none")
    assert np.abs(kept - via_array).mean() > 0.01  # the pedestal went through the model
    with pytest.warns(UserWarning, match="out of prior"):
        lensr.upscale(lens(sigma=0.6)[0], model=str(carded))
    with pytest.raises(LensrError, match="sky mode"):
        lensr.upscale(img, model=str(carded), sky="x")
