"""``lensr import``: convert external image layouts into lensr HDF5 datasets.

Two layouts are understood (see :func:`import_dataset`; detection and planning live in
:mod:`lensr.data.import_layouts`, reading image files in :mod:`lensr.data.image_files`):

``pairs``
    ``SOURCE/HR/*`` and ``SOURCE/LR/*`` holding the same skies at two resolutions
    (DeepLense ``sampleN.npy`` in both, or ``HR_i.npy`` / ``LR_i.npy``).
``classes``
    substructure class folders (``no``/``sphere``/``vort``, ``no_sub``/``cdm``/``axion``, ...),
    optionally under split folders (``train``, ``val``, ...). These hold HR images only.

This module holds the entry point, the checks of every file before anything is written,
and the writing of the HDF5 files.

Example::

    from lensr.data.importers import import_dataset
    import_dataset("deeplense/task1", "data/cls.h5")   # -> [data/cls-train.h5, data/cls-val.h5]
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm import tqdm

from lensr.data.image_files import probe_shape, read_image
from lensr.data.import_layouts import (
    ImportJob,
    ImportSample,
    plan_classes,
    plan_pairs,
    resolve_layout,
)
from lensr.data.store import check_output_path
from lensr.data.writer import DatasetWriter
from lensr.errors import LensrError

DEFAULT_CLASS_SCALE = 2


# Public entry point -------------------------------------------------------------------


def import_dataset(
    source: str | Path,
    out: str | Path,
    *,
    layout: str = "auto",
    scale: int | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> list[Path]:
    """Convert the folder ``source`` into lensr HDF5 dataset(s) and return their paths.

    ``layout`` (default ``"auto"``: detected) is ``"pairs"`` (``SOURCE/HR`` + ``SOURCE/LR``,
    paired by file name, label 0 with class ``"unknown"``) or ``"classes"`` (class folders,
    optionally under split folders; one output ``<out stem>-<split><suffix>`` per split).
    Files may be ``.npy`` (read with ``allow_pickle=False``) or FITS (``.fits``,
    ``.fits.gz``, ``.fit``), shaped (H, W) or (1, H, W), and are stored as float32.

    ``scale`` (default None): for pairs, the HR/LR size ratio every pair must have
    (None: inferred, one integer for the whole set); for classes, the block size of the
    block mean that makes ``lr`` from ``hr`` (None: 2), recorded in the ``lr_source``
    attribute because it is not a physical LR image. ``overwrite`` (default False)
    replaces existing outputs; ``progress`` (default True) shows a progress bar.

    Layout, pairing, shapes and file headers are checked before anything is written;
    pixel values (NaN, inf) are checked while writing, through ``<out>.partial``, so a
    failure never leaves a file under an output name, nor any output of this call.
    Every problem is a one-line :class:`~lensr.errors.LensrError` naming the file.

    Example::

        paths = import_dataset("deeplense/sr", "data/deeplense.h5")
        ds = open_dataset(paths[0])               # ds.hr (N,150,150), ds.lr (N,75,75)
    """
    source = _check_source(source)
    _check_scale(scale)
    chosen = resolve_layout(source, layout)
    if chosen == "pairs":
        jobs = [plan_pairs(source, Path(out), scale=scale)]
    else:
        jobs = plan_classes(source, Path(out), scale=scale or DEFAULT_CLASS_SCALE)
    for job in jobs:
        job.out = check_output_path(job.out, overwrite=overwrite)
    for job in jobs:
        _probe_job(job, progress=progress)
    return _write_all(jobs, progress=progress)


def _check_source(source: str | Path) -> Path:
    source = Path(source)
    if not source.exists():
        raise LensrError(f"source folder {source} does not exist")
    if not source.is_dir():
        raise LensrError(f"source {source} is a file; expected a folder (HR/ + LR/ or classes)")
    return source


def _check_scale(scale: int | None) -> None:
    if scale is None:
        return
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 2:
        raise LensrError(f"scale must be an integer >= 2, got {scale!r}")


def lr_from_hr(hr: np.ndarray, scale: int) -> np.ndarray:
    """The stand-in LR image of imported HR-only data: the ``scale`` x ``scale`` block mean
    of a (H, W) image, averaged in float64 and returned as float32.

    Not a physical LR image (no LR PSF, no LR noise); datasets record that in their
    ``lr_source`` attribute.

    Example::

        lr_from_hr(np.ones((8, 8), np.float32), 2).shape     # (4, 4)
    """
    h, w = hr.shape[0] // scale, hr.shape[1] // scale
    blocks = hr.astype(np.float64).reshape(h, scale, w, scale)
    return blocks.mean(axis=(1, 3)).astype(np.float32)


# Checking before writing ------------------------------------------------------------------


def _probe_job(job: ImportJob, *, progress: bool) -> None:
    """Check every file's header and shape; fix the job's HR/LR shapes and scale."""
    ref = job.samples[0]
    desc = f"checking {job.out.name}"
    for sample in tqdm(job.samples, desc=desc, disable=not progress, unit="img"):
        hr_shape = probe_shape(sample.hr)
        lr_shape = probe_shape(sample.lr) if sample.lr is not None else None
        if sample is ref:
            _set_shapes(job, hr_shape, lr_shape)
        _check_same(sample.hr, hr_shape, job.hr_shape, ref.hr)
        if sample.lr is not None:
            _check_same(sample.lr, lr_shape, job.lr_shape, ref.lr)
    job.attrs["scale"] = job.scale


def _set_shapes(job: ImportJob, hr: tuple[int, int], lr: tuple[int, int] | None) -> None:
    ref = job.samples[0]
    if lr is None:  # classes: lr is the block mean of hr
        if hr[0] % job.scale or hr[1] % job.scale:
            raise LensrError(
                f"{ref.hr}: size {hr[0]}x{hr[1]} is not divisible by scale "
                f"{job.scale} (needed for the block-mean LR)"
            )
        job.hr_shape, job.lr_shape = hr, (hr[0] // job.scale, hr[1] // job.scale)
        return
    ratio = _ratio(hr, lr)
    if ratio is None or (job.scale and ratio != job.scale):
        want = f"scale {job.scale}" if job.scale else "one integer scale"
        raise LensrError(
            f"{ref.hr} ({hr[0]}x{hr[1]}) and {ref.lr} ({lr[0]}x{lr[1]}): "
            f"HR size is not LR size times {want}"
        )
    job.scale, job.hr_shape, job.lr_shape = ratio, hr, lr


def _ratio(hr: tuple[int, int], lr: tuple[int, int]) -> int | None:
    if hr[0] % lr[0] or hr[1] % lr[1] or hr[0] // lr[0] != hr[1] // lr[1]:
        return None
    ratio = hr[0] // lr[0]
    return ratio if ratio >= 2 else None


def _check_same(path: Path, shape: tuple, expected: tuple, ref: Path) -> None:
    if shape != expected:
        raise LensrError(
            f"{path}: size {shape[0]}x{shape[1]} differs from "
            f"{expected[0]}x{expected[1]} of {ref}; all images of a set must "
            "match (and HR = scale x LR)"
        )


# Writing ----------------------------------------------------------------------------------


def _write_all(jobs: list[ImportJob], *, progress: bool) -> list[Path]:
    written: list[Path] = []
    try:
        for job in jobs:
            written.append(_write(job, progress=progress))
    except BaseException:
        # One split failing makes the whole import fail: leave no output of this call.
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return written


def _write(job: ImportJob, *, progress: bool) -> Path:
    with DatasetWriter(
        job.out,
        n=len(job.samples),
        hr_shape=job.hr_shape,
        lr_shape=job.lr_shape,
        class_names=job.class_names,
        attrs=job.attrs,
    ) as writer:
        for pos, sample in enumerate(
            tqdm(job.samples, desc=f"writing {job.out.name}", disable=not progress, unit="img")
        ):
            hr, lr = _read_sample(sample, job)
            writer.write(pos, hr=hr, lr=lr, label=sample.label)
        return writer.finish()


def _read_sample(sample: ImportSample, job: ImportJob) -> tuple[np.ndarray, np.ndarray]:
    hr = read_image(sample.hr)
    # Shapes were probed already; recheck in case a file changed since.
    _check_same(sample.hr, hr.shape, job.hr_shape, job.samples[0].hr)
    if sample.lr is None:
        return hr, lr_from_hr(hr, job.scale)
    lr = read_image(sample.lr)
    _check_same(sample.lr, lr.shape, job.lr_shape, job.samples[0].lr)
    return hr, lr
