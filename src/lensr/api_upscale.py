"""``lensr.upscale``: the API's super-resolution of numpy arrays, FITS and .npy files
(re-exported by :mod:`lensr.api`; the CLI's ``lensr upscale`` runs the same Runner)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from lensr.api_inputs import model_spec, networks
from lensr.errors import LensrError

if TYPE_CHECKING:
    from torch import nn


def upscale(
    images: np.ndarray | str | os.PathLike,
    model: str | os.PathLike | nn.Module | Sequence[str | os.PathLike | nn.Module] = "bicubic",
    *,
    out: str | os.PathLike | None = None,
    scale: int | None = None,
    units: Literal["surface-brightness", "flux-per-pixel"] = "surface-brightness",
    sky: Literal["auto", "subtract", "keep", "none"] = "auto",
    uncertainty: bool = False,
    consistent: bool = False,
    lr_psf_fwhm: float | None = None,
    hr_psf_fwhm: float = 0.0,
    pixel_scale: float | None = None,
    batch_size: int = 16,
    tile: int | None = None,
    overlap: int = 16,
    device: str = "cpu",
    overwrite: bool = False,
    progress: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray] | Path:
    """Super-resolve LR images: numpy in, numpy out, values in the input's units.

    ``images`` is an array of shape ``(..., H, W)`` (any leading batch shape) and the
    result has shape ``(..., s*H, s*W)``, float32. Each image is divided by its own
    99.5th percentile for the network and multiplied back, so surface brightness stays
    surface brightness; ``units="flux-per-pixel"`` divides the output by ``s**2`` instead
    (flux per HR pixel: total flux kept). ``sky`` (as ``lensr upscale --sky``, see
    :mod:`lensr.infer.sky`): "auto" measures each image's background on its border
    (sigma-clipped) and, for a pretrained or streamed model (trained sky-free), removes a
    pedestal above half the noise; "subtract" always removes it, "keep" removes it and adds
    it back to the output, "none" leaves the input alone. An image outside the model's
    training prior raises a ``UserWarning`` (:mod:`lensr.infer.prior`): its noise, and its
    resolution when ``pixel_scale`` (LR arcsec per pixel; a FITS path's WCS gives it) and
    optionally ``lr_psf_fwhm`` (arcsec) are known; a pretrained model warns too when the
    pixel scale is unknown, because a model applied to sharper or blurrier images than
    its prior can be worse than bicubic.
    ``images`` may also be a ``.npy`` or FITS path:
    it is read and upscaled to an array, or with ``out`` written to a file of the same
    kind (FITS header kept, WCS rescaled: exactly ``lensr upscale``) and ``out`` returned.

    ``model``: a baseline name, a checkpoint path, a pretrained name or a module from
    ``load_model``; a list of them is an ensemble (needs ``uncertainty``).
    ``uncertainty=True`` returns ``(sr, sigma)``: the mean and per-pixel spread over the
    8 dihedral transforms (x the ensemble), 8x the cost per model. ``consistent=True``
    back-projects each output onto its LR image until it agrees within the noise; it
    needs the LR PSF: ``lr_psf_fwhm`` and ``pixel_scale`` (LR arcsec, Gaussian PSF;
    ``hr_psf_fwhm`` the PSF the output keeps). ``tile``/``overlap`` (LR pixels) split
    large images; ``device`` is a torch device ("cpu", "cuda").

    Example::

        import lensr
        from astropy.io import fits
        sr = lensr.upscale(fits.getdata("cutout.fits"), model="runs/rcan/best.safetensors")
    """
    from tqdm import tqdm

    from lensr.infer.arrays import check_options, model_scale, torch_device
    from lensr.infer.prior import check_instrument
    from lensr.infer.runner import Runner, instrument_source
    from lensr.infer.upscale import UNITS, upscale_path

    if units not in UNITS:
        raise LensrError(f"unknown units {units!r}; use {' or '.join(UNITS)}")
    options = dict(batch_size=batch_size, tile=tile, overlap=overlap, device=device)
    trust = dict(lr_psf_fwhm=lr_psf_fwhm, hr_psf_fwhm=hr_psf_fwhm, pixel_scale=pixel_scale)
    if isinstance(images, str | os.PathLike) and out is not None:
        specs = [model] if isinstance(model, str | os.PathLike) else list(model)
        if not all(isinstance(m, str | os.PathLike) for m in specs):
            raise LensrError("file output needs model names or checkpoint paths, not modules")
        spec = [model_spec(m) for m in specs]
        return upscale_path(
            images,
            model=spec[0] if len(spec) == 1 else spec,
            out=out,
            scale=scale,
            units=units,
            sky=sky,
            overwrite=overwrite,
            progress=progress,
            uncertainty=uncertainty,
            consistent=consistent,
            **options,
            **trust,
        )
    if isinstance(images, str | os.PathLike):
        from lensr.data.fits_io import header_pixel_scale
        from lensr.infer.files import read_image_file

        item = read_image_file(Path(images))
        lead, stack = tuple(item.shape[:-2]), item.images
        pixel_scale = pixel_scale or header_pixel_scale(item.header)
    else:
        array = np.asarray(images)
        if array.ndim < 2 or 0 in array.shape:
            raise LensrError(f"upscale needs images of shape (..., H, W), got {array.shape}")
        lead, stack = array.shape[:-2], array.reshape(-1, *array.shape[-2:])
    check_options(batch_size=batch_size, tile=tile, overlap=overlap)
    check_instrument(pixel_scale=pixel_scale, lr_psf_fwhm=lr_psf_fwhm)
    torch_device(device)
    nets = networks(model, scale)
    if len(nets) > 1 and not uncertainty:
        raise LensrError(
            f"{len(nets)} models were given; an ensemble is only used for the "
            "uncertainty map: pass uncertainty=True, or give one model"
        )
    s = model_scale(nets[0])
    instrument = (
        instrument_source(Path("<array>"), "array", scale=s, **trust) if consistent else None
    )
    factor = 1.0 / s**2 if units == "flux-per-pixel" else 1.0
    with tqdm(total=len(stack), unit="img", disable=not progress, desc="upscale") as bar:
        run = Runner(
            nets,
            factor=factor,
            bar=bar,
            uncertainty=uncertainty,
            instrument=instrument,
            sky=sky,
            pixel_scale=pixel_scale,
            psf_fwhm=lr_psf_fwhm,
            **options,
        )
        sr, sigma = run(stack)
    for line in run.notes():
        import warnings

        warnings.warn(line, stacklevel=2)
    shape = (*lead, *sr.shape[-2:])
    return (sr.reshape(shape), sigma.reshape(shape)) if uncertainty else sr.reshape(shape)
