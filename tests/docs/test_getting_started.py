"""docs/getting-started.md: its notebook cells run as written on a FITS cutout with the
shipped pretrained model they name, and the FITS output keeps the header with the WCS
rescaled and says what was assumed about the sky and the prior."""

from __future__ import annotations

import numpy as np
from astropy.io import fits


def test_the_first_upscale_runs_as_written(run_page, tmp_path):
    header = fits.Header(
        {
            "CTYPE1": "RA---TAN",
            "CTYPE2": "DEC--TAN",
            "CRPIX1": 12.5,
            "CRPIX2": 12.5,
            "CDELT1": -2.8e-5,
            "CDELT2": 2.8e-5,
            "CRVAL1": 150.0,
            "CRVAL2": 2.0,
        }
    )
    image = np.random.default_rng(0).random((24, 24)).astype(np.float32)
    fits.PrimaryHDU(image, header).writeto(tmp_path / "cutout.fits")
    run_page("getting-started.md")
    with fits.open(tmp_path / "cutout_x2.fits") as hdul:
        assert hdul[0].data.shape == (48, 48)
        assert abs(hdul[0].header["CDELT2"] - 1.4e-5) < 1e-12
        assert hdul[0].header["LSKYMODE"] == "auto" and hdul[0].header["LPRIOR"] in ("in", "out")
        assert hdul[0].header["LPRCHK"] == "noise,pixel"  # 0.1"/px read from the WCS
