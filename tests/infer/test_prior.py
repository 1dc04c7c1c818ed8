"""The out-of-prior check of `lensr upscale` (lensr.infer.prior): noise, pixel scale and PSF
against the ranges a model card records, and what an output header says was checked."""

import json
import warnings

import numpy as np
import pytest
import torch
from astropy.io import fits

from lensr.infer.prior import checked, instrument_range, prior_range, prior_warning
from lensr.infer.sky import remove_sky
from lensr.infer.upscale import upscale_path
from lensr.models import create_model
from lensr.models.checkpoint import save_checkpoint
from lensr.models.pretrained import model_card
from lensr.sim.config import load_sim_config
from lensr.train.streaming import load_preset_spec

NORM = {"name": "lr-percentile", "percentile": 99.5}
GROUND = {
    "noise_rel": [0.002, 0.15],
    "lr_pixel_scale": [0.168, 0.2],
    "lr_psf_fwhm": [0.5, 1.0],
    "lr_psf_fwhm_px": [2.5, 5.95],
}


def ring(size=48, sigma=0.01, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] - size / 2
    img = np.exp(-((np.hypot(x, y) - size / 6) ** 2) / 4)
    return (img + rng.normal(0, sigma, (size, size))).astype(np.float32)


@pytest.fixture(scope="module")
def record():
    _, records = remove_sky(ring()[None], "auto")
    return records[0]


def test_instrument_range_spans_every_variant():
    ground = instrument_range([load_preset_spec("generalist/ground*")])
    assert ground["lr_pixel_scale"] == pytest.approx([0.168, 0.2])
    assert ground["lr_psf_fwhm"] == pytest.approx([0.5, 1.0])
    assert ground["lr_psf_fwhm_px"] == pytest.approx([0.5 / 0.2, 1.0 / 0.168])
    sim = load_sim_config("sim")  # one instrument: a point range, dumped dicts work too
    assert instrument_range([sim.model_dump()])["lr_pixel_scale"] == pytest.approx([0.1, 0.1])


@pytest.mark.parametrize(
    ("known", "word"),
    [
        ({"pixel_scale": 0.1}, "finer"),  # an HST/Euclid image under a ground model
        ({"pixel_scale": 0.4}, "coarser"),
        ({"psf_fwhm": 0.15, "pixel_scale": 0.18}, "sharper"),  # 0.83 px vs 2.5-5.95
        ({"psf_fwhm": 0.1}, "sharper"),  # no pixel scale: compared in arcsec
        ({"psf_fwhm": 2.0, "pixel_scale": 0.18}, "broader"),
    ],
)
def test_instrument_outside_the_prior_is_named(record, known, word):
    meta = {"card": {"prior_range": GROUND}}
    line = prior_warning(record, meta, **known)
    assert line.startswith("out of prior") and word in line and "\n" not in line


def test_instrument_inside_or_unknown_passes_and_says_what_was_checked(record):
    meta = {"card": {"prior_range": GROUND}}
    assert prior_warning(record, meta, pixel_scale=0.18, psf_fwhm=0.7) is None
    assert prior_warning(record, meta, pixel_scale=0.15) is None  # within the 1.25x margin
    assert prior_warning(record, meta) is None
    assert checked(meta) == "noise"
    assert checked(meta, pixel_scale=0.18) == "noise,pixel"
    assert checked(meta, pixel_scale=0.18, psf_fwhm=0.7) == "noise,pixel,psf"
    assert checked({}) == "none" and prior_warning(record, {}, pixel_scale=9.0) is None


def test_old_cards_get_the_instrument_from_their_presets(record):
    """A streamed checkpoint whose card predates the instrument ranges: they are computed
    from the preset configs its metadata keeps."""
    cfg = load_preset_spec("generalist/ground*")
    meta = {
        "data": {
            "prior_range": {"noise_rel": [0.002, 0.15]},
            "preset_configs": [json.loads(cfg.model_dump_json())],
        }
    }
    assert prior_range(meta)["lr_pixel_scale"] == pytest.approx([0.168, 0.2])
    assert "finer" in prior_warning(record, meta, pixel_scale=0.05)


def test_shipped_cards_state_their_instrument():
    """ground-x2 is for seeing-limited images: a space pixel scale is out of its prior and
    an HSC one is in; space-x2 the other way round."""
    _, records = remove_sky(ring(sigma=0.02)[None], "auto")
    ground, space = model_card("ground-x2"), model_card("space-x2")
    assert prior_range(ground)["lr_psf_fwhm_px"][0] >= 2.0
    assert prior_range(space)["lr_psf_fwhm_px"][1] <= 3.5
    assert "finer" in prior_warning(records[0], ground, pixel_scale=0.1)
    assert prior_warning(records[0], ground, pixel_scale=0.168) is None
    assert "coarser" in prior_warning(records[0], space, pixel_scale=0.168)


@pytest.fixture
def ground_like(tmp_path):
    torch.manual_seed(0)
    meta = {"normalization": NORM, "card": {"prior_range": GROUND}}
    return save_checkpoint(create_model("fsrcnn-tiny"), tmp_path / "g.safetensors", metadata=meta)


def _fits(path, image, pixel_scale=None):
    header = fits.Header()
    if pixel_scale is not None:
        header.update(
            CTYPE1="RA---TAN", CTYPE2="DEC--TAN", CRVAL1=150.0, CRVAL2=2.0, CRPIX1=24.5,
            CRPIX2=24.5, CDELT1=-pixel_scale / 3600, CDELT2=pixel_scale / 3600,
        )  # fmt: skip
    fits.PrimaryHDU(image, header=header).writeto(path)
    return path


def test_fits_wcs_pixel_scale_is_checked(tmp_path, ground_like, capsys):
    space = _fits(tmp_path / "space.fits", ring(), pixel_scale=0.05)
    out = upscale_path(space, model=str(ground_like), out=tmp_path / "s2.fits", progress=False)
    header = fits.getheader(out)
    assert header["LPRIOR"] == "out" and header["LPRCHK"] == "noise,pixel"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "finer" in err[0] and "1 of 1 input(s)" in err[0]
    hsc = _fits(tmp_path / "hsc.fits", ring(), pixel_scale=0.168)
    out = upscale_path(hsc, model=str(ground_like), out=tmp_path / "h2.fits", progress=False)
    assert fits.getheader(out)["LPRIOR"] == "in"
    assert capsys.readouterr().err == ""
    # --pixel-scale overrides the header
    upscale_path(hsc, model=str(ground_like), out=tmp_path / "h3.fits", progress=False,
                 pixel_scale=0.05)  # fmt: skip
    assert "finer" in capsys.readouterr().err


def test_unknown_pixel_scale_says_the_resolution_was_not_checked(tmp_path, ground_like, capsys):
    bare = _fits(tmp_path / "bare.fits", ring())
    out = upscale_path(bare, model=str(ground_like), out=tmp_path / "b2.fits", progress=False)
    assert fits.getheader(out)["LPRCHK"] == "noise"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pixel scale is unknown" in err[0] and '0.168-0.2"' in err[0]
    # bicubic has no prior: nothing to say
    upscale_path(bare, model="bicubic", out=tmp_path / "b3.fits", progress=False)
    assert capsys.readouterr().err == ""


def test_api_warns_like_the_cli(ground_like):
    import lensr

    with pytest.warns(UserWarning, match="finer"):
        lensr.upscale(ring(), model=str(ground_like), pixel_scale=0.05)
    with pytest.warns(UserWarning, match="pixel scale is unknown"):
        lensr.upscale(ring(), model=str(ground_like))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lensr.upscale(ring(), model=str(ground_like), pixel_scale=0.168)
    with pytest.raises(lensr.LensrError, match="pixel-scale must be a positive"):
        lensr.upscale(ring(), model=str(ground_like), pixel_scale=-0.1)
