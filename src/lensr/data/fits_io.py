"""FITS in and out: single-band images, WCS headers that follow an upsampling, atomic writes.

Example::

    from lensr.data.fits_io import read_fits_image, scale_wcs_header, write_fits_image
    img, hdr = read_fits_image("cutout.fits")
    write_fits_image("cutout_x2.fits", sr, header=scale_wcs_header(hdr, 2))
"""

from __future__ import annotations

import gzip
import os
import re
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from lensr.errors import LensrError

# Cards that describe the data layout; astropy rewrites them for the data we write.
_STRUCTURAL = re.compile(
    r"^(SIMPLE|XTENSION|BITPIX|NAXIS\d*|EXTEND|PCOUNT|GCOUNT|BSCALE|BZERO|BLANK"
    r"|CHECKSUM|DATASUM|EXTNAME|EXTVER)$"
)
_CRPIX = re.compile(r"^CRPIX([12])([A-Z]?)$")
_CDELT = re.compile(r"^CDELT([12])([A-Z]?)$")
_CD = re.compile(r"^CD([12])_([12])([A-Z]?)$")
_SIP = re.compile(r"^(A|B|AP|BP)_(\d+)_(\d+)$")


def _pick_hdu(hdul: fits.HDUList, hdu: int | str | None, path: str) -> fits.hdu.base._BaseHDU:
    if hdu is not None:
        try:
            chosen = hdul[hdu]
        except (KeyError, IndexError):
            raise LensrError(f"{path}: has no HDU {hdu!r} ({len(hdul)} HDUs)") from None
        if not chosen.is_image or chosen.data is None or chosen.data.ndim < 2:
            raise LensrError(f"{path}: HDU {hdu!r} holds no 2-D image")
        return chosen
    for candidate in hdul:
        if candidate.is_image and candidate.data is not None and candidate.data.ndim >= 2:
            return candidate
    raise LensrError(f"{path}: no HDU holds a 2-D image")


def read_fits_image(
    path: str | os.PathLike, *, hdu: int | str | None = None
) -> tuple[np.ndarray, fits.Header]:
    """Read one single-band image as float32 (H,W) and its header.

    ``hdu`` (default None: the first HDU with 2-D image data) selects an HDU by
    index or EXTNAME. Leading axes of length 1, e.g. (1,H,W), are squeezed. Raises a
    one-line ``LensrError`` naming the file when it is unreadable, corrupt or
    truncated, holds no image, is a cube with several planes, or has NaN pixels.

    Example::

        img, hdr = read_fits_image("lens.fits")         # img.shape == (H, W)
    """
    name = os.fspath(path)
    if not os.path.isfile(name):
        raise LensrError(f"{name}: no such file")
    try:
        with warnings.catch_warnings():
            # A short file is an error with astropy's clear reason, not a warning + a crash.
            warnings.filterwarnings("error", message="File may have been truncated")
            with fits.open(name, memmap=False) as hdul:
                chosen = _pick_hdu(hdul, hdu, name)
                data = np.asarray(chosen.data)
                header = chosen.header.copy()
    except LensrError:
        raise
    except Exception as exc:  # astropy raises OSError, ValueError, TypeError... on bad files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LensrError(
            f"{name}: not a readable FITS file (corrupt or truncated?): {reason}"
        ) from None
    squeezed = data.reshape([s for i, s in enumerate(data.shape) if s != 1 or i >= data.ndim - 2])
    if squeezed.ndim > 2:
        planes = int(np.prod(squeezed.shape[:-2]))
        raise LensrError(f"{name}: has {planes} planes; lensr works on single-band images")
    image = squeezed.astype(np.float32)
    n_nan = int(np.isnan(image).sum())
    if n_nan:
        raise LensrError(f"{name}: contains {n_nan} NaN pixels; mask or fill them first")
    if data.ndim > 2:
        header["NAXIS"] = 2
        for axis in range(3, data.ndim + 1):
            header.remove(f"NAXIS{axis}", ignore_missing=True)
    return image, header


def header_pixel_scale(header: fits.Header | None) -> float | None:
    """The pixel size in arcsec of an image with a celestial WCS (the mean of its two axes'
    scales), or None when the header has none or it does not parse.

    Example::

        header_pixel_scale(fits.getheader("hsc_cutout.fits"))    # 0.168
    """
    if header is None:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # FITSFixedWarning on many survey headers
            celestial = WCS(header, naxis=2).celestial
            if not celestial.has_celestial:
                return None
            scales = proj_plane_pixel_scales(celestial) * 3600.0
    except Exception:  # astropy raises many types on malformed WCS cards
        return None
    value = float(np.mean(np.abs(scales)))
    return value if np.isfinite(value) and value > 0 else None


def scale_wcs_header(header: fits.Header, scale: int) -> fits.Header:
    """Header for the image upsampled by the integer ``scale``; sky positions are unchanged.

    NAXIS1/2 are multiplied; CDELTi and CDi_j divided (PCi_j kept, so the PC+CDELT
    form works too); CRPIXi mapped with FITS 1-based pixel centres,
    ``CRPIX_new = scale * (CRPIX - 0.5) + 0.5``; SIP coefficients rescaled to the
    new pixel units. Alternate WCS (suffix A-Z) is handled too. Every other card is
    kept and a HISTORY card records the upscaling. The input is not modified.

    Example::

        hdr2 = scale_wcs_header(hdr, 2)     # hdr2["CDELT1"] == hdr["CDELT1"] / 2
    """
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise LensrError(f"scale must be a positive integer, got {scale!r}")
    out = header.copy()
    s = int(scale)
    for key in list(out.keys()):
        if key in ("NAXIS1", "NAXIS2"):
            out[key] = int(out[key]) * s
        elif _CRPIX.match(key):
            out[key] = s * (float(out[key]) - 0.5) + 0.5
        elif _CDELT.match(key) or _CD.match(key):
            out[key] = float(out[key]) / s
        elif m := _SIP.match(key):
            # Polynomials in pixel offsets that return pixel offsets: u' = s u, f' = s f.
            p, q = int(m.group(2)), int(m.group(3))
            out[key] = float(out[key]) * float(s) ** (1 - p - q)
    out.add_history(f"lensr upscaled this image by x{s} (WCS rescaled, sky positions kept)")
    return out


def _clean_header(header: fits.Header | None) -> fits.Header:
    out = fits.Header()
    if header is None:
        return out
    for card in header.cards:
        if not _STRUCTURAL.match(card.keyword):
            out.append(card, end=True)
    return out


def write_fits_image(
    path: str | os.PathLike,
    data: np.ndarray,
    *,
    header: fits.Header | None = None,
    extra_hdus: dict[str, np.ndarray] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``data`` as the primary HDU (with ``header``) plus named image extensions.

    ``extra_hdus`` (default None) maps EXTNAME to array, e.g. ``{"UNCERTAINTY": sigma}``.
    Layout cards of ``header`` (BITPIX, NAXISn, BSCALE, ...) are rewritten for ``data``.
    The file is written to ``path + ".tmp"`` and renamed, so a failure leaves nothing
    behind. An existing file is an error unless ``overwrite=True`` (default False).

    Example::

        write_fits_image("sr.fits", sr, header=hdr, extra_hdus={"UNCERTAINTY": std})
    """
    name = os.fspath(path)
    if os.path.exists(name) and not overwrite:
        raise LensrError(f"{name}: already exists (pass overwrite=True to replace it)")
    tmp = name + ".tmp"
    try:
        hdus = [fits.PrimaryHDU(data=np.asarray(data), header=_clean_header(header))]
        for ext_name, array in (extra_hdus or {}).items():
            hdus.append(fits.ImageHDU(data=np.asarray(array), name=ext_name))
        if name.endswith(".gz"):  # astropy picks compression from the name, which .tmp hides
            with gzip.open(tmp, "wb") as fh:
                fits.HDUList(hdus).writeto(fh)
        else:
            fits.HDUList(hdus).writeto(tmp, overwrite=True)
        os.replace(tmp, name)
    except Exception as exc:
        if os.path.exists(tmp):
            os.remove(tmp)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise LensrError(f"{name}: could not write FITS file: {reason}") from exc
    return Path(name)
