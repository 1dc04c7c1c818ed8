"""Super-resolve arrays and image files with a trained checkpoint or a baseline.

Every image is divided by the project's per-image scale (:mod:`lensr.data.normalize`,
computed from the LR image alone), run through the model and multiplied back, so the
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np
import torch
from astropy.io import fits
from torch import nn
from tqdm import tqdm

from lensr import __version__
from lensr.data.fits_io import read_fits_image, scale_wcs_header, write_fits_image
from lensr.data.importers import FITS_SUFFIXES, _image_files, _load_npy
from lensr.data.normalize import PERCENTILE, SPEC, lr_scale_np
from lensr.data.store import check_output_path, open_dataset
from lensr.errors import LensrError
from lensr.infer.tiling import upscale_tiled
from lensr.models.checkpoint import resolve_model

if TYPE_CHECKING:
    from lensr.infer.projection import LRInstrument

UNITS = ("surface-brightness", "flux-per-pixel")
AUTO_TILE_PIXELS = 512 * 512
"""Images with more LR pixels than this are tiled even when ``tile`` is None."""
AUTO_TILE = 256
"""Tile size (LR pixels) used for such images."""
H5_SUFFIXES = (".h5", ".hdf5")
SR_KIND = "lensr-sr/1"
READ_CHUNK = 256
"""Images read from an HDF5 dataset at a time (memory stays bounded for any N)."""
SIGMA_SUFFIX = "_sigma"
"""``--uncertainty`` with .npy output: ``<stem>_sigma.npy`` beside ``<stem>.npy``."""
SIGMA_EXTNAME = "UNCERTAINTY"
"""``--uncertainty`` with FITS output: the image extension holding sigma."""

# channels_last (weights and input) measured with benchmarks/sr_throughput.py, 2 threads,
# 75x75 LR, batch 16, inference mode: +10 % (EDSR-tiny) to +38 % (SRResNet-tiny, RDN-tiny)
# images/s for every registered network on CPU; nothing for the parameter-free bilinear and
# bicubic (-16 % in that benchmark, +2 % through upscale_array), so only networks use it.
# Converting only the input gains nothing. Not measured on GPUs: used on CPU only.
CHANNELS_LAST_ON_CPU = True


# Arrays -------------------------------------------------------------------------------


def upscale_array(
    lr: np.ndarray,
    model: nn.Module,
    *,
    batch_size: int = 16,
    tile: int | None = None,
    overlap: int = 16,
    device: str = "cpu",
    progress: bool = False,
) -> np.ndarray:
    """Super-resolve a stack of single-band images (N, H, W) -> float32 (N, sH, sW).

    Each image is divided by ``lr_scale`` of itself (the percentile recorded in the
    checkpoint's ``normalization``, default 99.5), run through ``model`` (any
    ``(N,1,h,w) -> (N,1,sh,sw)`` module with a ``scale`` attribute, put in eval mode on
    ``device``, default "cpu", moved there in place and, for a network on CPU, made
    channels_last),
    and multiplied back, so values keep their units.
    ``batch_size`` (default 16) images run per call under ``torch.inference_mode``.
    ``tile`` (default None) LR pixels per tile with ``overlap`` (default 16) pixels of
    overlap, see :func:`lensr.infer.tiling.upscale_tiled`; with ``tile=None`` only
    images larger than ``AUTO_TILE_PIXELS`` (512 x 512) are tiled, in ``AUTO_TILE``
    (256) pixel tiles. ``progress`` (default False) shows a tqdm bar.

    Example::

        model = resolve_model("bicubic", scale=2)
        sr = upscale_array(np.random.rand(4, 75, 75), model)    # (4, 150, 150)
    """
    images = _as_stack(lr)
    _check_finite(images, "input")
    _check_options(batch_size=batch_size, tile=tile, overlap=overlap)
    scale = _model_scale(model)
    percentile = _percentile(model)
    dev = _device(device)
    n, h, w = images.shape
    if tile is None and h * w > AUTO_TILE_PIXELS:
        tile = AUTO_TILE
    dtype = next((p.dtype for p in model.parameters()), torch.float32)
    out = np.empty((n, h * scale, w * scale), dtype=np.float32)
    has_weights = any(True for _ in model.parameters())
    channels_last = CHANNELS_LAST_ON_CPU and dev.type == "cpu" and has_weights
    was_training = model.training
    model.eval().to(dev)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    try:
        with torch.inference_mode(), tqdm(total=n, unit="img", disable=not progress) as bar:
            for start in range(0, n, batch_size):
                batch = images[start : start + batch_size]
                norm = lr_scale_np(batch, percentile=percentile).astype(np.float32)[:, None, None]
                x = torch.from_numpy(batch / norm)[:, None].to(dev, dtype)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                y = _forward(model, x, scale=scale, tile=tile, overlap=overlap)
                out[start : start + len(batch)] = y[:, 0].float().cpu().numpy() * norm
                bar.update(len(batch))
    finally:
        model.train(was_training)
    return out


def _forward(model: nn.Module, x: torch.Tensor, *, scale: int, tile, overlap) -> torch.Tensor:
    if tile is not None:
        return upscale_tiled(model, x, scale=scale, tile=tile, overlap=overlap)
    y = model(x)
    expected = (x.shape[0], 1, x.shape[2] * scale, x.shape[3] * scale)
    if tuple(y.shape) != expected:
        raise LensrError(f"the model returned shape {tuple(y.shape)}, expected {expected}")
    return y


def _as_stack(lr) -> np.ndarray:
    images = np.asarray(lr)
    if images.ndim != 3 or 0 in images.shape:
        raise LensrError(f"upscale_array needs an (N, H, W) stack, got shape {images.shape}")
    if images.dtype.kind not in "iuf":
        raise LensrError(f"upscale_array needs numeric pixels, got dtype {images.dtype}")
    return np.ascontiguousarray(images, dtype=np.float32)


def _check_finite(images: np.ndarray, where: str) -> None:
    n_nan, n_inf = int(np.isnan(images).sum()), int(np.isinf(images).sum())
    if not (n_nan or n_inf):
        return
    parts = [f"{n_nan} NaN"] if n_nan else []
    parts += [f"{n_inf} infinite"] if n_inf else []
    raise LensrError(f"{where} contains {' and '.join(parts)} pixels; mask or fill them first")


def _check_options(*, batch_size: int, tile: int | None, overlap: int) -> None:
    if batch_size < 1:
        raise LensrError(f"batch size must be >= 1, got {batch_size}")
    if overlap < 0:
        raise LensrError(f"overlap must be >= 0, got {overlap}")
    if tile is not None and not overlap < tile:
        raise LensrError(f"need overlap < tile, got tile={tile}, overlap={overlap}")


def _model_scale(model: nn.Module) -> int:
    scale = getattr(model, "scale", None)
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise LensrError(f"the model has no integer 'scale' attribute (got {scale!r})")
    return scale


def _percentile(model: nn.Module, *, name: str = "the model") -> float:
    """The normalisation percentile recorded in a checkpoint sidecar (either spelling)."""
    meta = getattr(model, "metadata", None) or {}
    spec = meta.get("normalization", meta.get("normalisation"))
    if spec is None:
        return PERCENTILE
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or spec.get("name") != SPEC["name"]:
        raise LensrError(
            f"{name} was trained with normalisation {spec!r}; "
            f"lensr upscale applies only {SPEC['name']!r}"
        )
    return float(spec.get("percentile", PERCENTILE))


def _device(device: str) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise LensrError(f"unknown device {device!r} (use cpu, cuda, cuda:1 or mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LensrError(f"device {device!r} was asked for, but torch sees no CUDA GPU")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise LensrError(f"device {device!r} was asked for, but MPS is not available")
    return dev


# Files: kinds and output checks -------------------------------------------------------


def _suffix_of(path: Path, suffixes: tuple[str, ...]) -> str | None:
    lower = path.name.lower()
    return next((s for s in suffixes if lower.endswith(s)), None)


_KIND_SUFFIXES = {"npy": (".npy",), "fits": FITS_SUFFIXES, "h5": H5_SUFFIXES}
_ALL_SUFFIXES = (".npy",) + FITS_SUFFIXES + H5_SUFFIXES
_KIND_NAMES = {"npy": "a .npy file", "fits": "a FITS file", "h5": "an HDF5 file"}


def _input_kind(src: Path) -> str:
    """The kind of INPUT, one of "folder", "npy", "fits" or "h5"; anything else is an error."""
    if src.is_dir():
        return "folder"
    if not src.exists():
        raise LensrError(f"{src}: no such file or folder")
    for kind, suffixes in _KIND_SUFFIXES.items():
        if _suffix_of(src, suffixes):
            return kind
    raise LensrError(
        f"{src}: unsupported file type {src.suffix or '(no extension)'!r}; expected .npy, "
        f"FITS ({', '.join(FITS_SUFFIXES)}), .h5/.hdf5 or a folder of .npy/FITS files"
    )


def _check_output(src: Path, dst: Path, kind: str, *, overwrite: bool) -> None:
    """Everything about OUT that can be checked before any work starts; writes nothing."""
    if dst.resolve() == src.resolve():
        raise LensrError(f"output {dst} is the input; choose another output path")
    if kind == "folder":
        if _suffix_of(dst, _ALL_SUFFIXES):
            raise LensrError(f"input {src} is a folder, so the output must be a folder, not {dst}")
        if src.resolve() in dst.resolve().parents:
            raise LensrError(f"output folder {dst} must not lie inside the input folder {src}")
    elif not _suffix_of(dst, _KIND_SUFFIXES[kind]):
        raise LensrError(
            f"input {src} is {_KIND_NAMES[kind]}, so the output must end in "
            f"{' or '.join(_KIND_SUFFIXES[kind])}, not {dst.name}"
        )
    parent = dst.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise LensrError(f"cannot write {dst}: {parent} is not a folder")
    if not (dst.exists() or dst.is_symlink()):
        return
    if not overwrite:
        raise LensrError(f"{dst} already exists (pass --overwrite to replace it)")
    if kind != "folder" and dst.is_dir():
        raise LensrError(f"{dst} is a folder; the output of {_KIND_NAMES[kind]} is a file")
    if kind == "folder":
        _check_replaceable_folder(dst)


def _sigma_path(path: Path) -> Path:
    """Where the uncertainty map of a .npy output goes: ``a.npy`` -> ``a_sigma.npy``."""
    return path.with_name(path.name[: -len(".npy")] + SIGMA_SUFFIX + ".npy")


def _check_sigma_outputs(src: Path, dst: Path, kind: str, *, overwrite: bool) -> None:
    """The extra files ``--uncertainty`` writes must not clash with anything."""
    if kind == "npy":
        sigma = _sigma_path(dst)
        if sigma.resolve() == src.resolve():
            raise LensrError(f"the uncertainty map {sigma} would overwrite the input")
        if (sigma.exists() or sigma.is_symlink()) and not overwrite:
            raise LensrError(f"{sigma} already exists (pass --overwrite to replace it)")
    elif kind == "folder":
        names = {p.name.lower() for p in _image_files(src)}
        for name in sorted(names):
            if _suffix_of(Path(name), (".npy",)) and _sigma_path(Path(name)).name in names:
                raise LensrError(
                    f"{src} holds both {name} and {_sigma_path(Path(name)).name}: the "
                    "uncertainty map of the first would overwrite the output of the second"
                )


def _check_replaceable_folder(dst: Path) -> None:
    # --overwrite must not delete a folder the user did not get from lensr upscale.
    if not dst.is_dir():
        raise LensrError(f"{dst} exists and is not a folder; the output of a folder is a folder")
    foreign = [
        p
        for p in dst.iterdir()
        if not p.name.startswith(".") and not (p.is_file() and _suffix_of(p, _ALL_SUFFIXES))
    ]
    if foreign:
        raise LensrError(
            f"{dst} holds {len(foreign)} entries that are not images (e.g. {foreign[0].name}); "
            "remove it yourself or choose another output folder"
        )


# Files: reading one image file ---------------------------------------------------------


@dataclass
class _Image:
    """The images of one file as an (N, H, W) stack, and how to write them back."""

    images: np.ndarray
    shape: tuple[int, ...]  # the file's own layout, e.g. (N, 1, H, W)
    header: fits.Header | None = None


_LAYOUTS = "(H, W), (1, H, W), (N, H, W) or (N, 1, H, W)"


def _stack_shape(shape: tuple[int, ...], path: Path) -> tuple[int, int, int]:
    """(N, H, W) of a .npy array in one of the four layouts; channels are an error."""
    channels = None
    if len(shape) == 3 and shape[0] == 3:
        channels = 3  # (3, H, W) is a colour image far more often than three images
    elif len(shape) == 3 and shape[-1] in (3, 4) and shape[1] > 4:
        channels = shape[-1]  # (H, W, C)
    elif len(shape) == 4 and shape[1] != 1:
        channels = shape[1]
    if channels is not None:
        hint = " (save a stack of 3 images as (3, 1, H, W))" if shape[0] == 3 else ""
        raise LensrError(
            f"{path}: has {channels} channels (shape {shape}); lensr works on "
            f"single-band images{hint}"
        )
    if len(shape) not in (2, 3, 4):
        raise LensrError(f"{path}: shape {shape} is not an image stack; expected {_LAYOUTS}")
    if 0 in shape:
        raise LensrError(f"{path}: holds no pixels (shape {shape})")
    return (1, *shape) if len(shape) == 2 else (shape[0], shape[-2], shape[-1])


def _read_image_file(path: Path) -> _Image:
    """Read and check one .npy or FITS file; every problem is a LensrError naming it."""
    if _suffix_of(path, FITS_SUFFIXES):
        image, header = read_fits_image(path)
        _check_finite(image, str(path))
        return _Image(image[None], image.shape, header)
    array = _load_npy(path, mmap=False)
    images = np.ascontiguousarray(array.reshape(_stack_shape(array.shape, path)), np.float32)
    _check_finite(images, str(path))
    return _Image(images, array.shape)


def _write_image_file(
    path: Path,
    item: _Image,
    sr: np.ndarray,
    *,
    scale: int,
    note: str,
    sigma: np.ndarray | None = None,
) -> None:
    """Write one output file; ``sigma`` goes into a FITS extension or ``<stem>_sigma.npy``."""
    if item.header is not None:
        header = scale_wcs_header(item.header, scale)
        header.add_history(note)
        extra = {SIGMA_EXTNAME: sigma[0]} if sigma is not None else None
        write_fits_image(path, sr[0], header=header, extra_hdus=extra, overwrite=True)
        return
    layout = (*item.shape[:-2], *sr.shape[-2:])
    if sigma is not None:  # first, so that the image's presence means both are there
        _atomic_npy(_sigma_path(path), sigma.reshape(layout))
    _atomic_npy(path, sr.reshape(layout))


def _atomic_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + ".partial")
    try:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# Files: the entry point ----------------------------------------------------------------


InstrumentFn = Callable[[np.ndarray, np.ndarray | None], "LRInstrument"]
"""``(lr images, their positions in an HDF5 dataset or None) -> their LR instrument``."""


class _Runner:
    """``upscale_array`` with fixed options, the trust options, the units conversion and
    one progress bar. Calls return ``(sr, sigma)``; sigma is None without uncertainty."""

    def __init__(
        self,
        models: list[nn.Module],
        *,
        factor: float,
        bar: tqdm,
        uncertainty: bool = False,
        instrument: InstrumentFn | None = None,
        **options,
    ):
        self.models, self.factor, self.bar, self.options = models, factor, bar, options
        self.uncertainty, self.instrument = uncertainty, instrument

    def __call__(
        self, images: np.ndarray, *, positions: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        step = self.options["batch_size"]
        parts, sigmas = [], []
        for start in range(0, len(images), step):
            chunk = images[start : start + step]
            sr, sigma = self._one(
                chunk, None if positions is None else positions[start : start + step]
            )
            parts.append(sr)
            sigmas.append(sigma)
            self.bar.update(len(sr))
        sr = np.concatenate(parts)
        sigma = np.concatenate(sigmas) if self.uncertainty else None
        if self.factor != 1:
            sr = sr * np.float32(self.factor)
            sigma = None if sigma is None else sigma * np.float32(self.factor)
        return sr, sigma

    def _one(self, lr: np.ndarray, positions) -> tuple[np.ndarray, np.ndarray | None]:
        sigma = None
        if self.uncertainty:
            from lensr.infer.uncertainty import predict_with_uncertainty

            sr, sigma = predict_with_uncertainty(lr, self.models, **self.options)
        else:
            sr = upscale_array(lr, self.models[0], **self.options)
        if self.instrument is not None:
            from lensr.infer.projection import project

            inst = self.instrument(lr, positions)
            sr = project(sr, lr, inst.D, variance=inst.variance)
        return sr, sigma


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
    :func:`upscale_array`; ``overwrite`` (default False) replaces OUT; ``progress``
    (default True) shows a bar. Problems raise a one-line LensrError and leave nothing
    behind: outputs are written under a temporary name and renamed at the end.

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

    Example::

        upscale_path("lenses/", model="bicubic", out="lenses_x2/")
        upscale_path("sim.h5", model="runs/rcan.safetensors", out="sim_sr.h5")
        upscale_path("cut.fits", model=["a.safetensors", "b.safetensors"], out="x2.fits",
                     uncertainty=True)
    """
    src, dst = Path(input), Path(out)
    if units not in UNITS:
        raise LensrError(f"unknown units {units!r}; use {' or '.join(UNITS)}")
    _check_options(batch_size=batch_size, tile=tile, overlap=overlap)
    _device(device)
    kind = _input_kind(src)
    _check_output(src, dst, kind, overwrite=overwrite)
    specs = [str(model)] if isinstance(model, str | os.PathLike) else [str(m) for m in model]
    if not specs:
        raise LensrError("no model given")
    if len(specs) > 1 and not uncertainty:
        raise LensrError(
            f"{len(specs)} models were given; an ensemble is only used for the uncertainty "
            "map: pass --uncertainty, or give one --model"
        )
    if uncertainty:
        _check_sigma_outputs(src, dst, kind, overwrite=overwrite)
    nets = _load_models(specs, scale=scale)
    s = _model_scale(nets[0])
    instrument = None
    if consistent:
        instrument = _instrument_source(
            src,
            kind,
            scale=s,
            lr_psf_fwhm=lr_psf_fwhm,
            hr_psf_fwhm=hr_psf_fwhm,
            pixel_scale=pixel_scale,
        )
    factor = 1.0 / s**2 if units == "flux-per-pixel" else 1.0
    options = dict(batch_size=batch_size, tile=tile, overlap=overlap, device=device)
    prov = _provenance(src, ", ".join(specs), nets[0], units=units, scale=s)
    prov["uncertainty"] = _uncertainty_note(len(specs)) if uncertainty else "none"
    prov["consistency_projection"] = int(consistent)
    with tqdm(unit="img", disable=not progress, desc="upscale", delay=1) as bar:
        run = _Runner(
            nets,
            factor=factor,
            bar=bar,
            uncertainty=uncertainty,
            instrument=instrument,
            **options,
        )
        if kind == "h5":
            return _upscale_h5(src, dst, run=run, prov=prov, overwrite=overwrite)
        if kind == "folder":
            return _upscale_folder(src, dst, run=run, prov=prov)
        return _upscale_file(src, dst, run=run, prov=prov)


def _load_models(specs: list[str], *, scale: int | None) -> list[nn.Module]:
    nets = []
    for spec in specs:
        net = resolve_model(spec, scale=scale)
        _percentile(net, name=f"model {spec}")
        nets.append(net)
    scales = [_model_scale(net) for net in nets]
    if len(set(scales)) > 1:
        raise LensrError(f"the models of an ensemble must share one scale, got {scales}")
    return nets


def _uncertainty_note(n_models: int) -> str:
    ensemble = f" x {n_models} models" if n_models > 1 else ""
    return f"sigma over 8 dihedral transforms{ensemble}; the image is their mean"


def _instrument_source(
    src: Path, kind: str, *, scale: int, lr_psf_fwhm, hr_psf_fwhm, pixel_scale
) -> InstrumentFn:
    """How to get the LR instrument of a batch of input images, checked before any work."""
    from lensr.infer.projection import (
        LRInstrument,
        constant_variance,
        estimate_noise_variance,
        gaussian_degradation,
        has_simulated_instrument,
        lr_instrument,
    )

    hint = (
        "--consistent needs the LR instrument: give --lr-psf-fwhm and --pixel-scale "
        "(arcsec), or a simulated HDF5 dataset"
    )
    if kind == "h5":
        with open_dataset(src) as ds:
            simulated = has_simulated_instrument(ds)
            if not simulated:
                try:
                    lr_instrument(
                        ds,
                        [0],
                        lr=ds.lr[:1],
                        lr_psf_fwhm=lr_psf_fwhm,
                        hr_psf_fwhm=hr_psf_fwhm,
                        pixel_scale=pixel_scale,
                    )
                except LensrError as err:
                    raise LensrError(f"{hint} ({err})") from None

        def from_dataset(lr: np.ndarray, positions) -> LRInstrument:
            with open_dataset(src) as ds:
                return lr_instrument(
                    ds,
                    positions,
                    lr=lr,
                    lr_psf_fwhm=lr_psf_fwhm,
                    hr_psf_fwhm=hr_psf_fwhm,
                    pixel_scale=pixel_scale,
                )

        return from_dataset
    if lr_psf_fwhm is None or pixel_scale is None:
        raise LensrError(hint)
    D = gaussian_degradation(
        lr_fwhm=lr_psf_fwhm, hr_fwhm=hr_psf_fwhm, pixel_scale=pixel_scale, scale=scale
    )

    def gaussian(lr: np.ndarray, positions) -> LRInstrument:
        variance = constant_variance(estimate_noise_variance(lr))
        return LRInstrument(D=D, variance=variance, source="gaussian")

    return gaussian


def _provenance(src: Path, spec: str, net: nn.Module, *, units: str, scale: int) -> dict:
    out_units = (
        "as the input (surface brightness)"
        if units == "surface-brightness"
        else "flux per HR pixel (input flux per LR pixel / scale**2)"
    )
    return {
        "kind": SR_KIND,
        "lensr_version": __version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": str(src.resolve()),
        "model": spec,
        "model_metadata": json.dumps(getattr(net, "metadata", {}) or {}),
        "scale": scale,
        "input_units": units,
        "units": out_units,
        "normalization": json.dumps({**SPEC, "percentile": _percentile(net)}),
    }


def _note(prov: dict) -> str:
    return f"lensr upscale x{prov['scale']} model={prov['model']} units={prov['input_units']}"


def _upscale_file(src: Path, dst: Path, *, run: _Runner, prov: dict) -> Path:
    """One .npy or FITS file into one file of the same kind."""
    item = _read_image_file(src)
    run.bar.reset(total=len(item.images))
    sr, sigma = run(item.images)
    dst.parent.mkdir(parents=True, exist_ok=True)
    _write_image_file(dst, item, sr, scale=prov["scale"], note=_note(prov), sigma=sigma)
    return dst


def _upscale_folder(src: Path, dst: Path, *, run: _Runner, prov: dict) -> Path:
    """Every image file of a folder into a folder with the same names, all or nothing."""
    files = _image_files(src)
    total = sum(len(_read_image_file(f).images) for f in files)  # fail before any work
    run.bar.reset(total=total)
    partial = dst.with_name(dst.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)  # left by a killed run: it is ours
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


def _upscale_group(files: list[Path], folder: Path, *, run: _Runner, prov: dict) -> None:
    """Batch the images of several files together, grouped by size."""
    items = [_read_image_file(f) for f in files]
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, item in enumerate(items):
        by_size.setdefault(item.images.shape[1:], []).append(i)
    for members in by_size.values():
        sr, sigma = run(np.concatenate([items[i].images for i in members]))
        bounds = np.cumsum([0] + [len(items[i].images) for i in members])
        for i, lo, hi in zip(members, bounds[:-1], bounds[1:], strict=True):
            target = folder / files[i].name
            part = None if sigma is None else sigma[lo:hi]
            _write_image_file(
                target, items[i], sr[lo:hi], scale=prov["scale"], note=_note(prov), sigma=part
            )


def _replace_folder(partial: Path, dst: Path) -> None:
    if not dst.exists():
        os.replace(partial, dst)
        return
    trash = dst.with_name(dst.name + ".old")
    shutil.rmtree(trash, ignore_errors=True)
    os.replace(dst, trash)
    os.replace(partial, dst)
    shutil.rmtree(trash, ignore_errors=True)


def _upscale_h5(src: Path, dst: Path, *, run: _Runner, prov: dict, overwrite: bool) -> Path:
    """A lensr dataset's ``lr`` into an HDF5 file holding ``sr``, ``label`` and ``index``."""
    with open_dataset(src) as ds:
        n, (h, w) = len(ds), ds.lr_shape
        if n == 0:
            raise LensrError(f"{src}: holds no images")
        for start in range(0, n, READ_CHUNK):  # fail before any work
            _check_finite(ds.lr[start : start + READ_CHUNK], f"{src}: lr")
        run.bar.reset(total=n)
        check_output_path(dst, overwrite=overwrite)
        tmp = dst.with_name(dst.name + ".partial")
        s = prov["scale"]
        try:
            with h5py.File(tmp, "w") as f:
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
                    out, spread = run(ds.lr[start:stop], positions=np.arange(start, stop))
                    sr[start:stop] = out
                    if sigma is not None:
                        sigma[start:stop] = spread
            os.replace(tmp, dst)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return dst
