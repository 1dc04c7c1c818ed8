"""Super-resolve image files with a trained checkpoint or a baseline: ``lensr upscale``.

:func:`upscale_path` takes a ``.npy`` file, a FITS file, a lensr HDF5 dataset or a folder
of .npy/FITS files and writes OUT of the same kind (the kinds and the reading and writing
of one file: :mod:`lensr.infer.files`). The images go through
:func:`lensr.infer.arrays.upscale_array` (via :class:`lensr.infer.runner.Runner`), so the
output keeps the input's units. Inputs in flux per LR pixel are converted on request
(``units="flux-per-pixel"``): the output is then flux per HR pixel, i.e. divided by
``scale**2``, and the total flux is conserved.

Two trust options (see :mod:`lensr.infer.uncertainty` and :mod:`lensr.infer.projection`):
``uncertainty=True`` writes a per-pixel sigma beside each output (8 dihedral test-time
transforms, over an ensemble when several models are given; the image written is then
their mean), and ``consistent=True`` back-projects each output onto its LR image with the
LR instrument (simulated HDF5 datasets carry it; otherwise a Gaussian PSF of
``lr_psf_fwhm`` arcsec on LR pixels of ``pixel_scale`` arcsec).

Example::

    from lensr.infer.upscale import upscale_path
    upscale_path("cutout.fits", model="runs/rcan.safetensors", out="cutout_x2.fits")
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
from torch import nn
from tqdm import tqdm

from lensr._version import __version__
from lensr.data.fits_io import header_pixel_scale
from lensr.data.image_files import image_files
from lensr.data.normalize import SPEC
from lensr.data.store import check_output_path, open_dataset
from lensr.errors import LensrError
from lensr.infer.arrays import (
    check_finite,
    check_options,
    model_percentile,
    model_scale,
    torch_device,
)
from lensr.infer.compiled import compile_plan
from lensr.infer.files import (
    check_output,
    check_sigma_outputs,
    input_kind,
    read_image_file,
    write_image_file,
)
from lensr.infer.prior import check_instrument
from lensr.infer.runner import Runner, instrument_source, load_models, uncertainty_note
from lensr.infer.sky import SKY_MODES, header_cards
from lensr.instrument.from_dataset import dataset_pixel_scale, has_simulated_instrument
from lensr.io import atomic_path, created_attr, file_lock, remove_stale_temps, temp_path

UNITS = ("surface-brightness", "flux-per-pixel")
SR_KIND = "lensr-sr/1"
READ_CHUNK = 256
"""Images read from an HDF5 dataset at a time (memory stays bounded for any N)."""


def upscale_path(
    input: str | os.PathLike,
    *,
    model: str | Sequence[str],
    out: str | os.PathLike,
    scale: int | None = None,
    units: str = "surface-brightness",
    batch_size: int = 16,
    tile: int | None = None,
    overlap: int = 16,
    device: str = "cpu",
    overwrite: bool = False,
    progress: bool = True,
    uncertainty: bool = False,
    consistent: bool = False,
    lr_psf_fwhm: float | None = None,
    hr_psf_fwhm: float = 0.0,
    pixel_scale: float | None = None,
    sky: str = "auto",
    compile: bool | None = None,
) -> Path:
    """Super-resolve a file or folder of LR images into OUT of the same kind; returns OUT.

    INPUT is a ``.npy`` file ((H,W), (1,H,W), (N,H,W) or (N,1,H,W); OUT has the same
    layout), a folder of .npy/FITS files (OUT: a folder with the same file names), a
    lensr HDF5 dataset (its ``lr``; OUT: HDF5 with ``sr`` (N,sH,sW) float32, ``label``,
    ``index`` and provenance attrs) or a FITS file (OUT: FITS, header kept, WCS
    rescaled). ``model`` is a baseline name ("bicubic") or a checkpoint path;
    ``scale`` (default None: the checkpoint's, 2 for baselines) must match a checkpoint.
    ``units`` (default "surface-brightness": values keep their units) may be
    "flux-per-pixel", and the output is then divided by ``scale**2`` (flux per HR
    pixel). ``batch_size``, ``tile``, ``overlap``, ``device`` as in
    :func:`lensr.infer.arrays.upscale_array`; ``overwrite`` (default False) replaces OUT;
    ``progress`` (default True) shows a bar. Problems raise a one-line LensrError and leave
    nothing behind: outputs are written under a temporary name and renamed at the end.

    ``uncertainty`` (default False; 8x the cost per model) also writes a per-pixel sigma
    over the 8 dihedral test-time transforms (and over every model when ``model`` is a
    list, an ensemble, which needs ``uncertainty``), and the image written is their
    mean: a FITS extension "UNCERTAINTY", ``<stem>_sigma.npy`` beside a .npy output
    (and each .npy of a folder) or a ``sigma`` dataset in HDF5 output. ``consistent``
    (default False) back-projects every output onto its LR image
    (:func:`lensr.infer.projection.project`); it needs the LR instrument: a simulated
    HDF5 dataset carries it, otherwise give ``lr_psf_fwhm`` (Gaussian LR PSF FWHM,
    arcsec), ``pixel_scale`` (LR arcsec per pixel; an HDF5 dataset may record it) and
    optionally ``hr_psf_fwhm`` (default 0), see
    :func:`lensr.infer.projection.gaussian_degradation`; the noise variance is then
    estimated from each LR image.

    ``sky`` (default "auto"; see :mod:`lensr.infer.sky`) estimates each input's background
    level and noise (sigma-clipped border statistics) and removes a real pedestal before
    the model ("subtract": always, "keep": remove, then add back to the output, "none":
    never); what was assumed goes into the output header (FITS keywords LSKY*, HDF5 attr
    ``sky``). An input outside the model's training prior (:mod:`lensr.infer.prior`: its
    noise; its LR pixel scale when known from ``pixel_scale``, a FITS celestial WCS or the
    dataset; its PSF FWHM when ``lr_psf_fwhm`` is given) gets a one-line warning on
    stderr and ``LPRIOR = 'out'`` (``LPRCHK`` says what was compared); when the pixel
    scale is unknown, one line says that the resolution was not checked.

    ``compile`` (default None: the ``LENSR_COMPILE`` environment variable, off when unset)
    runs networks through ``torch.compile`` (:mod:`lensr.infer.compiled`; same outputs
    within 1e-5); whether it did is recorded (HDF5 attr ``compiled``, FITS HISTORY).

    Example::

        upscale_path("lenses/", model="bicubic", out="lenses_x2/")
        upscale_path("sim.h5", model="runs/rcan.safetensors", out="sim_sr.h5")
        upscale_path("cut.fits", model=["a.safetensors", "b.safetensors"], out="x2.fits",
                     uncertainty=True)
    """
    src, dst = Path(input), Path(out)
    if units not in UNITS:
        raise LensrError(f"unknown units {units!r}; use {' or '.join(UNITS)}")
    check_options(batch_size=batch_size, tile=tile, overlap=overlap)
    check_instrument(pixel_scale=pixel_scale, lr_psf_fwhm=lr_psf_fwhm)
    if sky not in SKY_MODES:
        raise LensrError(f"unknown sky mode {sky!r}; use one of {', '.join(SKY_MODES)}")
    torch_device(device)
    kind = input_kind(src)
    check_output(src, dst, kind, overwrite=overwrite)
    specs = [str(model)] if isinstance(model, str | os.PathLike) else [str(m) for m in model]
    if not specs:
        raise LensrError("no model given")
    if len(specs) > 1 and not uncertainty:
        raise LensrError(
            f"{len(specs)} models were given; an ensemble is only used for the uncertainty "
            "map: pass --uncertainty, or give one --model"
        )
    if uncertainty:
        check_sigma_outputs(src, dst, kind, overwrite=overwrite)
    nets = load_models(specs, scale=scale)
    s = model_scale(nets[0])
    instrument = None
    if consistent:
        instrument = instrument_source(
            src,
            kind,
            scale=s,
            lr_psf_fwhm=lr_psf_fwhm,
            hr_psf_fwhm=hr_psf_fwhm,
            pixel_scale=pixel_scale,
        )
    factor = 1.0 / s**2 if units == "flux-per-pixel" else 1.0
    options = dict(batch_size=batch_size, tile=tile, overlap=overlap, device=device)
    options["compile"] = compile_plan(nets, compile, torch_device(device))
    prov = _provenance(src, ", ".join(specs), nets[0], units=units, scale=s)
    prov["uncertainty"] = uncertainty_note(len(specs)) if uncertainty else "none"
    prov["consistency_projection"] = int(consistent)
    prov["compiled"] = int(options["compile"])
    # One writer per OUT: a second run is refused, and the checks are repeated under the lock
    # (another run may have finished OUT since), so only our own bytes are reported.
    with file_lock(dst), tqdm(unit="img", disable=not progress, desc="upscale", delay=1) as bar:
        check_output(src, dst, kind, overwrite=overwrite)
        if uncertainty:
            check_sigma_outputs(src, dst, kind, overwrite=overwrite)
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
        prov["sky"] = sky
        if kind == "h5":
            path = _upscale_h5(src, dst, run=run, prov=prov, overwrite=overwrite)
        elif kind == "folder":
            path = _upscale_folder(src, dst, run=run, prov=prov)
        else:
            path = _upscale_file(src, dst, run=run, prov=prov)
    for line in run.notes():
        print(f"lensr upscale: {line}", file=sys.stderr)
    return path


def _provenance(src: Path, spec: str, net: nn.Module, *, units: str, scale: int) -> dict:
    out_units = (
        "as the input (surface brightness)"
        if units == "surface-brightness"
        else "flux per HR pixel (input flux per LR pixel / scale**2)"
    )
    return {
        "kind": SR_KIND,
        "lensr_version": __version__,
        **created_attr(),
        "source": str(src.resolve()),
        "model": spec,
        "model_metadata": json.dumps(getattr(net, "metadata", {}) or {}),
        "scale": scale,
        "input_units": units,
        "units": out_units,
        "normalization": json.dumps({**SPEC, "percentile": model_percentile(net)}),
    }


def _note(prov: dict) -> str:
    compiled = "yes" if prov.get("compiled") else "no"
    return (
        f"lensr upscale x{prov['scale']} model={prov['model']} units={prov['input_units']} "
        f"compiled={compiled}"
    )


def _upscale_file(src: Path, dst: Path, *, run: Runner, prov: dict) -> Path:
    """One .npy or FITS file into one file of the same kind."""
    item = read_image_file(src)
    run.bar.reset(total=len(item.images))
    sr, sigma = run(item.images, pixel_scale=header_pixel_scale(item.header))
    _record_sky(item, run, len(run.sky_records) - len(item.images))
    dst.parent.mkdir(parents=True, exist_ok=True)
    write_image_file(dst, item, sr, scale=prov["scale"], note=_note(prov), sigma=sigma)
    return dst


def _upscale_folder(src: Path, dst: Path, *, run: Runner, prov: dict) -> Path:
    """Every image file of a folder into a folder with the same names, all or nothing."""
    files = image_files(src)
    total = sum(len(read_image_file(f).images) for f in files)  # fail before any work
    run.bar.reset(total=total)
    remove_stale_temps(dst)  # folders of killed runs; never those of live ones
    partial = temp_path(dst)  # unique to this run: never another's folder
    partial.mkdir(parents=True)
    try:
        step = run.options["batch_size"]
        for start in range(0, len(files), step):
            _upscale_group(files[start : start + step], partial, run=run, prov=prov)
        _replace_folder(partial, dst)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return dst


def _upscale_group(files: list[Path], folder: Path, *, run: Runner, prov: dict) -> None:
    """Batch the images of several files together, grouped by size."""
    items = [read_image_file(f) for f in files]
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, item in enumerate(items):
        by_size.setdefault(item.images.shape[1:], []).append(i)
    for members in by_size.values():
        scales = [header_pixel_scale(items[i].header) or np.nan for i in members]
        sr, sigma = run(
            np.concatenate([items[i].images for i in members]),
            pixel_scale=np.repeat(scales, [len(items[i].images) for i in members]),
        )
        bounds = np.cumsum([0] + [len(items[i].images) for i in members])
        for i, lo, hi in zip(members, bounds[:-1], bounds[1:], strict=True):
            _record_sky(items[i], run, len(run.sky_records) - int(bounds[-1]) + int(lo))
            target = folder / files[i].name
            part = None if sigma is None else sigma[lo:hi]
            write_image_file(
                target, items[i], sr[lo:hi], scale=prov["scale"], note=_note(prov), sigma=part
            )


def _record_sky(item, run: Runner, index: int) -> None:
    """Write what was assumed about the sky of a FITS item's image (record ``index`` of
    ``run``) into its header."""
    if item.header is None or not run.sky_records:
        return
    record, warning = run.sky_records[index], run.warnings[index]
    for key, card in header_cards(run.sky, record, warning, run.checked[index]).items():
        item.header[key] = card
    if warning:
        item.header.add_history(f"lensr: {warning}"[:70])


def _replace_folder(partial: Path, dst: Path) -> None:
    if not dst.exists():
        os.replace(partial, dst)
        return
    trash = temp_path(dst)
    os.replace(dst, trash)
    os.replace(partial, dst)
    shutil.rmtree(trash, ignore_errors=True)


def _upscale_h5(src: Path, dst: Path, *, run: Runner, prov: dict, overwrite: bool) -> Path:
    """A lensr dataset's ``lr`` into an HDF5 file holding ``sr``, ``label`` and ``index``."""
    with open_dataset(src) as ds:
        n, (h, w) = len(ds), ds.lr_shape
        if n == 0:
            raise LensrError(f"{src}: holds no images")
        for start in range(0, n, READ_CHUNK):  # fail before any work
            check_finite(ds.lr[start : start + READ_CHUNK], f"{src}: lr")
        run.bar.reset(total=n)
        pixel = dataset_pixel_scale(ds)
        fwhm = ds.params["lr_fwhm"] if has_simulated_instrument(ds) else None
        check_output_path(dst, overwrite=overwrite)
        s = prov["scale"]
        with atomic_path(dst) as tmp, h5py.File(tmp, "w") as f:
            size = (s * h, s * w)
            sr = f.create_dataset("sr", (n, *size), dtype="<f4", chunks=(1, *size))
            sigma = None
            if run.uncertainty:
                sigma = f.create_dataset("sigma", (n, *size), dtype="<f4", chunks=(1, *size))
            f.create_dataset("label", data=ds.file["label"][:])
            f.create_dataset("index", data=ds.index)
            f.attrs.update(prov)
            f.attrs["class_names"] = ds.class_names
            f.attrs["source_units"] = str(ds.attrs.get("units", "unknown"))
            for start in range(0, n, READ_CHUNK):
                stop = min(start + READ_CHUNK, n)
                out, spread = run(
                    ds.lr[start:stop],
                    positions=np.arange(start, stop),
                    pixel_scale=pixel,
                    psf_fwhm=None if fwhm is None else fwhm[start:stop],
                )
                sr[start:stop] = out
                if sigma is not None:
                    sigma[start:stop] = spread
            f.attrs["sky"] = json.dumps([r.as_dict() for r in run.sky_records])
    return dst
