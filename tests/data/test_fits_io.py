import math
import os

import numpy as np
import pytest
from astropy.io import fits
from astropy.wcs import WCS

from lensr.data.fits_io import read_fits_image, scale_wcs_header, write_fits_image
from lensr.errors import LensrError


def _cd_header() -> fits.Header:
    """An HST-like drizzled cutout: TAN projection, rotated CD matrix, 0.05"/px."""
    h = fits.Header()
    h["NAXIS"] = 2
    h["NAXIS1"], h["NAXIS2"] = 75, 64
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CRVAL1"], h["CRVAL2"] = 150.1163213, 2.2058070
    h["CRPIX1"], h["CRPIX2"] = 37.3, 31.9
    pix = 0.05 / 3600
    rot = math.radians(27.0)
    h["CD1_1"], h["CD1_2"] = -pix * math.cos(rot), pix * math.sin(rot)
    h["CD2_1"], h["CD2_2"] = pix * math.sin(rot), pix * math.cos(rot)
    h["RADESYS"], h["EQUINOX"] = "ICRS", 2000.0
    h["BUNIT"] = "ELECTRONS/S"
    h["OBJECT"] = "SLACS J0912+0029"
    return h


def _pc_header() -> fits.Header:
    """A survey-like cutout far from the equator: CDELT + PC rotation, 0.1"/px."""
    h = fits.Header()
    h["NAXIS"] = 2
    h["NAXIS1"], h["NAXIS2"] = 50, 50
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CRVAL1"], h["CRVAL2"] = 210.5, 62.3
    h["CRPIX1"], h["CRPIX2"] = 1.0, 50.5
    h["CDELT1"], h["CDELT2"] = -0.1 / 3600, 0.1 / 3600
    c, s = math.cos(math.radians(-12.0)), math.sin(math.radians(-12.0))
    h["PC1_1"], h["PC1_2"], h["PC2_1"], h["PC2_2"] = c, -s, s, c
    return h


def _sip_header() -> fits.Header:
    h = _cd_header()
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN-SIP", "DEC--TAN-SIP"
    h["A_ORDER"], h["B_ORDER"] = 2, 2
    h["A_2_0"], h["A_1_1"], h["A_0_2"] = 2e-5, -1e-5, 3e-6
    h["B_2_0"], h["B_1_1"], h["B_0_2"] = -4e-6, 1.5e-5, 1e-5
    return h


@pytest.mark.parametrize("make", [_cd_header, _pc_header, _sip_header])
@pytest.mark.parametrize("scale", [2, 4])
def test_scaled_wcs_keeps_sky_positions(make, scale):
    old = make()
    new = scale_wcs_header(old, scale)
    w_old, w_new = WCS(old), WCS(new)
    ny, nx = old["NAXIS2"], old["NAXIS1"]
    assert (new["NAXIS1"], new["NAXIS2"]) == (nx * scale, ny * scale)
    # Old 1-based pixel centres p sit at p_new = scale * (p - 0.5) + 0.5 on the new grid.
    py, px = np.mgrid[1 : ny + 1, 1 : nx + 1].astype(float)
    sky_old = np.array(w_old.all_pix2world(px.ravel(), py.ravel(), 1))
    qx, qy = scale * (px - 0.5) + 0.5, scale * (py - 0.5) + 0.5
    sky_new = np.array(w_new.all_pix2world(qx.ravel(), qy.ravel(), 1))
    np.testing.assert_allclose(sky_new, sky_old, rtol=0, atol=1e-9)
    # New pixel centres sit at the matching sub-pixel positions of the old grid.
    k = np.arange(1, scale * nx + 1, dtype=float)
    sub = (k - 0.5) / scale + 0.5
    ones = np.full_like(k, 3.0)
    np.testing.assert_allclose(
        np.array(w_new.all_pix2world(k, scale * (ones - 0.5) + 0.5, 1)),
        np.array(w_old.all_pix2world(sub, ones, 1)),
        rtol=0,
        atol=1e-9,
    )
    np.testing.assert_allclose(
        w_new.calc_footprint(center=False), w_old.calc_footprint(center=False), rtol=0, atol=1e-9
    )
    assert f"lensr upscaled this image by x{scale}" in str(new["HISTORY"])
    for key in old:
        assert key in new
    if "PC1_2" in old:
        assert new["PC1_2"] == old["PC1_2"]
    assert "HISTORY" not in old  # input untouched


def test_scale_wcs_header_rejects_bad_scale():
    with pytest.raises(LensrError, match="positive integer"):
        scale_wcs_header(_cd_header(), 1.5)


def test_write_then_read_roundtrip(tmp_path):
    path = tmp_path / "sr.fits"
    data = np.random.default_rng(0).random((64, 75)).astype(np.float32)
    sigma = np.full_like(data, 0.1)
    header = _cd_header()
    header["BSCALE"], header["BZERO"] = 2.0, 100.0  # from an integer original: must not apply
    write_fits_image(path, data, header=header, extra_hdus={"UNCERTAINTY": sigma})
    assert not os.path.exists(str(path) + ".tmp")
    img, hdr = read_fits_image(path)
    np.testing.assert_array_equal(img, data)
    assert img.dtype == np.float32 and hdr["OBJECT"] == "SLACS J0912+0029"
    unc, _ = read_fits_image(path, hdu="UNCERTAINTY")
    np.testing.assert_array_equal(unc, sigma)
    with pytest.raises(LensrError, match="already exists"):
        write_fits_image(path, data)
    write_fits_image(path, data * 2, overwrite=True)
    np.testing.assert_array_equal(read_fits_image(path)[0], data * 2)


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    path = tmp_path / "bad.fits"
    with pytest.raises(LensrError, match="could not write"):
        write_fits_image(path, np.zeros((4, 4)), extra_hdus={"BAD": np.array(["a", "b"])})
    assert list(tmp_path.iterdir()) == []

    def half_written(self, fileobj, **kwargs):
        with open(fileobj, "wb") as fh:
            fh.write(b"SIMPLE  =")
        raise OSError("No space left on device")

    monkeypatch.setattr(fits.HDUList, "writeto", half_written)
    with pytest.raises(LensrError, match="No space left on device"):
        write_fits_image(path, np.zeros((4, 4)))
    assert list(tmp_path.iterdir()) == []


def test_reads_first_image_hdu_and_squeezes_single_plane(tmp_path):
    path = tmp_path / "ext.fits"
    cube = np.arange(30, dtype=np.int16).reshape(1, 5, 6)
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(cube, name="SCI")]).writeto(path)
    img, hdr = read_fits_image(path)
    assert img.shape == (5, 6) and img.dtype == np.float32
    assert hdr["NAXIS"] == 2 and "NAXIS3" not in hdr


@pytest.mark.parametrize(
    "content, message",
    [
        ("truncated", "not a readable FITS file"),
        ("junk", "not a readable FITS file"),
        ("cube", "has 3 planes; lensr works on single-band images"),
        ("nan", "contains 7 NaN pixels"),
        ("table", "no HDU holds a 2-D image"),
    ],
)
def test_read_errors_name_the_file(tmp_path, content, message):
    path = tmp_path / f"{content}.fits"
    if content in ("truncated", "junk"):
        fits.PrimaryHDU(np.zeros((100, 100), np.float32)).writeto(path)
        raw = path.read_bytes()
        path.write_bytes(raw[: len(raw) // 2] if content == "truncated" else b"hello" * 99)
    elif content == "cube":
        fits.PrimaryHDU(np.zeros((3, 8, 8), np.float32)).writeto(path)
    elif content == "nan":
        data = np.zeros((8, 8), np.float32)
        data.flat[:7] = np.nan
        fits.PrimaryHDU(data).writeto(path)
    else:
        table = fits.BinTableHDU.from_columns([fits.Column(name="x", format="E", array=[1.0])])
        fits.HDUList([fits.PrimaryHDU(), table]).writeto(path)
    with pytest.raises(LensrError, match=message) as info:
        read_fits_image(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_missing_file_and_missing_hdu(tmp_path):
    with pytest.raises(LensrError, match="no such file"):
        read_fits_image(tmp_path / "nope.fits")
    path = tmp_path / "one.fits"
    fits.PrimaryHDU(np.zeros((8, 8), np.float32)).writeto(path)
    with pytest.raises(LensrError, match="has no HDU 'SCI'"):
        read_fits_image(path, hdu="SCI")


def test_header_pixel_scale_reads_a_celestial_wcs_only():
    from lensr.data.fits_io import header_pixel_scale

    h = fits.Header()
    assert header_pixel_scale(h) is None and header_pixel_scale(None) is None
    h.update(CTYPE1="RA---TAN", CTYPE2="DEC--TAN", CRPIX1=1, CRPIX2=1, CRVAL1=10, CRVAL2=-5)
    h.update(CD1_1=-0.168 / 3600, CD1_2=0.0, CD2_1=0.0, CD2_2=0.168 / 3600)
    assert header_pixel_scale(h) == pytest.approx(0.168)
    assert header_pixel_scale(scale_wcs_header(h, 2)) == pytest.approx(0.084)
    linear = fits.Header({"CTYPE1": "X", "CTYPE2": "Y", "CDELT1": 2.0, "CDELT2": 2.0})
    assert header_pixel_scale(linear) is None  # pixels, not the sky
