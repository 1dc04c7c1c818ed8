"""The out-of-prior check of ``lensr upscale``: is an input like the images its model saw?

A model card (checkpoint sidecar) records ``prior_range``, measured when the model was
trained on streamed pairs (:mod:`lensr.train.streaming`):

* ``noise_rel``: the LR noise over the LR normalisation scale
  (:func:`lensr.infer.sky.noise_to_signal`), 1st-99th percentile of the prior's images;
* the instrument of every preset and variant of the prior (:func:`instrument_range`):
  ``lr_pixel_scale`` (arcsec), ``lr_psf_fwhm`` (arcsec) and ``lr_psf_fwhm_px`` (the PSF
  FWHM in LR pixels, what a network actually sees).

An input is checked on what is known about it: its noise always; its pixel scale when it is
known (a FITS celestial WCS, ``--pixel-scale``, an HDF5 dataset's ``lr_pixel_scale``); its
PSF FWHM when given (``--lr-psf-fwhm``), in LR pixels when the pixel scale is known.

Why the instrument and not a statistic of the image: resolution is what separates a
seeing-limited input from a space one (the ground-to-space model is 5-14 dB below bicubic on
space-resolution inputs), and no statistic of a single lens image measured it reliably.
Three were tried on 48 images per preset: the signal's correlation length, a Gaussian fit
to the power spectrum's fall-off, and the spectral power above what the prior's sharpest
PSF allows. The spectral fit, the best, gave an effective FWHM of 2.0-6.3 LR pixels on
HSC-like ground images (true PSF 3-6 px) and 2.1-3.8 px on HST-like ones: bright ground
lenses look as sharp as faint space lenses, and smooth sources look blurry under any PSF.
When the pixel scale is unknown, :func:`unchecked_note` says that the resolution was not
checked and what the model's prior is.

Example::

    ranges = prior_range(model.metadata)
    line = prior_warning(record, model.metadata, pixel_scale=0.1)   # None: in prior
"""

from __future__ import annotations

import contextlib
import math

import numpy as np

from lensr.errors import LensrError
from lensr.infer.sky import SkyRecord, noise_to_signal

NOISE_TOLERANCE = 1.5
"""Out of prior: noise/scale beyond the prior's range by more than this factor."""
INSTRUMENT_TOLERANCE = 1.25
"""Out of prior: pixel scale or PSF FWHM beyond the prior's range by more than this factor."""


def instrument_range(cfgs) -> dict:
    """The LR instrument over every variant of the presets ``cfgs`` (SimConfig objects or
    their dumped dicts): ``lr_pixel_scale`` and ``lr_psf_fwhm`` in arcsec and
    ``lr_psf_fwhm_px`` in LR pixels, each ``[min, max]``."""
    from lensr.sim.config import SimConfig, variant_configs

    scales, fwhm, fwhm_px = [], [], []
    for cfg in cfgs:
        cfg = cfg if isinstance(cfg, SimConfig) else SimConfig.model_validate(cfg)
        for sub, _ in variant_configs(cfg):
            pixel = sub.hr_pixel_scale * sub.scale
            lo, hi = sub.lr.psf.fwhm
            scales.append(pixel)
            fwhm += [lo, hi]
            fwhm_px += [lo / pixel, hi / pixel]
    return {
        "lr_pixel_scale": [min(scales), max(scales)],
        "lr_psf_fwhm": [min(fwhm), max(fwhm)],
        "lr_psf_fwhm_px": [min(fwhm_px), max(fwhm_px)],
    }


def prior_stats(lr_images, cfgs=None) -> dict:
    """The ``prior_range`` a model card stores, from LR images drawn from its prior (one
    (N, H, W) stack or a list of stacks of different sizes) and its presets ``cfgs``."""
    stacks = lr_images if isinstance(lr_images, list | tuple) else [lr_images]
    rel = np.concatenate([noise_to_signal(s) for s in stacks])
    return {
        "noise_rel": [float(np.percentile(rel, 1)), float(np.percentile(rel, 99))],
        "n_images": int(len(rel)),
        "statistic": "MAD noise sigma / LR 99.5th percentile, 1st-99th percentile",
        **(instrument_range(cfgs) if cfgs else {}),
    }


def prior_range(metadata: dict | None) -> dict | None:
    """The training prior's ranges a checkpoint sidecar (model card) records, or None. A
    card from before the instrument was recorded gets it from its streamed presets."""
    meta = metadata or {}
    card = meta.get("card") if isinstance(meta.get("card"), dict) else {}
    data = meta.get("data") if isinstance(meta.get("data"), dict) else {}
    found = card.get("prior_range") or data.get("prior_range")
    if not isinstance(found, dict):
        return None
    presets = data.get("preset_configs")
    if "lr_pixel_scale" not in found and isinstance(presets, list) and presets:
        with contextlib.suppress(ValueError, TypeError):  # hand-edited: the noise only
            found = {**found, **_instrument_of(presets)}
    return found


_DERIVED: dict[int, tuple[list, dict]] = {}
"""instrument_range per preset list object (a model's metadata, checked once per image)."""


def _instrument_of(presets: list) -> dict:
    held = _DERIVED.get(id(presets))
    if held is None or held[0] is not presets:
        held = _DERIVED[id(presets)] = (presets, instrument_range(presets))
    return held[1]


def check_instrument(*, pixel_scale=None, lr_psf_fwhm=None) -> None:
    """A given LR pixel scale or PSF FWHM (arcsec) must be a positive finite number: a
    one-line LensrError otherwise (None: not given)."""
    for flag, value in (("--pixel-scale", pixel_scale), ("--lr-psf-fwhm", lr_psf_fwhm)):
        if value is not None and not (isinstance(value, int | float) and _known(value)):
            raise LensrError(f"{flag} must be a positive number of arcsec, got {value!r}")


def _problem(what: str, x: float, bounds, tol: float, words, unit: str = "") -> str | None:
    """The clause for ``x`` outside ``bounds`` by more than the factor ``tol`` (``words``:
    below, above), else None."""
    lo, hi = (float(v) for v in bounds)
    if lo / tol <= x <= hi * tol:
        return None
    return (
        f"{what} {x:.3g}{unit} is {words[x > hi]} than the training range "
        f"[{lo:.3g}, {hi:.3g}]{unit}"
    )


def _known(value) -> bool:
    return value is not None and math.isfinite(value) and value > 0


def prior_warning(
    record: SkyRecord,
    metadata: dict | None,
    *,
    pixel_scale: float | None = None,
    psf_fwhm: float | None = None,
) -> str | None:
    """One line naming what of an input is outside the model's training prior (its noise
    ``record.noise_rel``; its LR ``pixel_scale`` and Gaussian ``psf_fwhm`` in arcsec when
    known), or None; also None for models without a recorded prior (e.g. bicubic)."""
    ranges = prior_range(metadata)
    if not ranges:
        return None
    problems = []
    if "noise_rel" in ranges:
        problems.append(
            _problem(
                "noise/scale",
                record.noise_rel,
                ranges["noise_rel"],
                NOISE_TOLERANCE,
                ("cleaner", "noisier"),
            )
        )
    if _known(pixel_scale) and "lr_pixel_scale" in ranges:
        problems.append(
            _problem(
                "pixel scale",
                pixel_scale,
                ranges["lr_pixel_scale"],
                INSTRUMENT_TOLERANCE,
                ("finer", "coarser"),
                '"',
            )
        )
    if _known(psf_fwhm):
        if _known(pixel_scale) and "lr_psf_fwhm_px" in ranges:
            x, key, unit = psf_fwhm / pixel_scale, "lr_psf_fwhm_px", " px"
        else:
            x, key, unit = psf_fwhm, "lr_psf_fwhm", '"'
        if key in ranges:
            problems.append(
                _problem(
                    "PSF FWHM", x, ranges[key], INSTRUMENT_TOLERANCE, ("sharper", "broader"), unit
                )
            )
    problems = [p for p in problems if p]
    if not problems:
        return None
    return f"out of prior: {'; '.join(problems)}; the output may be worse than bicubic"


def checked(metadata: dict | None, *, pixel_scale=None, psf_fwhm=None) -> str:
    """What the out-of-prior check could compare (the FITS keyword ``LPRCHK``): "none",
    or "noise" plus "pixel" and "psf" when those are known and the card has them."""
    ranges = prior_range(metadata)
    if not ranges:
        return "none"
    parts = ["noise"] if "noise_rel" in ranges else []
    if _known(pixel_scale) and "lr_pixel_scale" in ranges:
        parts.append("pixel")
    if _known(psf_fwhm) and "lr_psf_fwhm" in ranges:
        parts.append("psf")
    return ",".join(parts) or "none"


def unchecked_note(metadata: dict | None) -> str:
    """The line saying that an input's resolution could not be checked: its pixel scale is
    unknown, and the model's prior is this instrument."""
    ranges = prior_range(metadata) or {}
    ps, fwhm = ranges.get("lr_pixel_scale"), ranges.get("lr_psf_fwhm")
    px = ranges.get("lr_psf_fwhm_px")
    prior = ""
    if ps and fwhm:
        in_px = f", {px[0]:.2g}-{px[1]:.2g} px" if px else ""
        prior = (
            f' (LR pixels {ps[0]:.3g}-{ps[1]:.3g}", PSF FWHM {fwhm[0]:.3g}-{fwhm[1]:.3g}"{in_px})'
        )
    return (
        "the pixel scale is unknown (no celestial WCS; give --pixel-scale / pixel_scale=): "
        f"only the noise was checked against the model's training prior{prior}, not the "
        "resolution, and a model applied to images sharper or blurrier than its prior may "
        "be worse than bicubic"
    )
