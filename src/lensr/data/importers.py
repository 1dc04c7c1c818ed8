"""``lensr import``: convert external image layouts into lensr HDF5 datasets.

Two layouts are understood (see :func:`import_dataset`):

``pairs``
    ``SOURCE/HR/*`` and ``SOURCE/LR/*`` holding the same skies at two resolutions
    (DeepLense ``sampleN.npy`` in both, or ``HR_i.npy`` / ``LR_i.npy``).
``classes``
    substructure class folders (``no``/``sphere``/``vort``, ``no_sub``/``cdm``/``axion``, ...),
    optionally under split folders (``train``, ``val``, ...). These hold HR images only.

Example::

    from lensr.data.importers import import_dataset
    import_dataset("deeplense/task1", "data/cls.h5")   # -> [data/cls-train.h5, data/cls-val.h5]
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from lensr.data.fits_io import read_fits_image
from lensr.data.store import DatasetWriter, check_output_path
from lensr.errors import LensrError

LAYOUTS = ("auto", "pairs", "classes")
NPY_SUFFIXES = (".npy",)
NPY_MAGIC = b"\x93NUMPY"
FITS_SUFFIXES = (".fits.gz", ".fit.gz", ".fits", ".fit", ".fts")
SUFFIXES = NPY_SUFFIXES + FITS_SUFFIXES
CLASS_ORDER = ("none", "cdm", "axion")
CLASS_ALIASES = {
    "no": "none",
    "no_sub": "none",
    "none": "none",
    "no_substructure": "none",
    "sphere": "cdm",
    "cdm": "cdm",
    "subhalo": "cdm",
    "vort": "axion",
    "vortex": "axion",
    "axion": "axion",
}
DEFAULT_CLASS_SCALE = 2
UNITS = "as imported (e.g. min-max normalised per image)"
LR_SOURCE_BLOCK_MEAN = "block mean of hr (imported classification data has no LR)"
# HDF5 keeps attributes in the object header (64 KiB in all), so long file lists are left out.
MAX_SOURCE_FILES_CHARS = 32_000
_MAX_NAMES_SHOWN = 3


@dataclass(frozen=True)
class _Sample:
    hr: Path
    lr: Path | None  # None: the LR image is the block mean of hr
    label: int


@dataclass
class _Job:
    """One output file and everything needed to write it."""

    out: Path
    samples: list[_Sample]
    class_names: list[str]
    scale: int
    attrs: dict
    hr_shape: tuple[int, int] = (0, 0)
    lr_shape: tuple[int, int] = (0, 0)


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
    chosen = _resolve_layout(source, layout)
    if chosen == "pairs":
        jobs = [_plan_pairs(source, Path(out), scale=scale)]
    else:
        jobs = _plan_classes(source, Path(out), scale=scale or DEFAULT_CLASS_SCALE)
    for job in jobs:
        job.out = check_output_path(job.out, overwrite=overwrite)
    for job in jobs:
        _probe_job(job, progress=progress)
    return _write_all(jobs, progress=progress)


# Arguments and layout detection ------------------------------------------------------


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


def _resolve_layout(source: Path, layout: str) -> str:
    if layout not in LAYOUTS:
        raise LensrError(f"unknown layout {layout!r}: expected one of {', '.join(LAYOUTS)}")
    if layout != "auto":
        return layout
    hr, lr = _child_dir(source, "HR"), _child_dir(source, "LR")
    if hr and lr:
        return "pairs"
    if _looks_like_classes(source):
        return "classes"
    if hr or lr:
        missing = "LR" if hr else "HR"
        raise LensrError(
            f"{source}: has {(hr or lr).name}/ but no {missing}/ folder (layout pairs needs both)"
        )
    raise LensrError(
        f"{source}: unknown layout: expected HR/ + LR/ folders (pairs) or class folders "
        f"({_alias_hint()}), optionally under split folders such as train/ and val/ (classes)"
    )


def _alias_hint() -> str:
    groups = {c: [a for a, t in CLASS_ALIASES.items() if t == c] for c in CLASS_ORDER}
    return "; ".join(f"{'/'.join(names)} -> {c}" for c, names in groups.items())


def _ignored(path: Path) -> bool:
    """Hidden files and the metadata folder that macOS adds to zip archives."""
    return path.name.startswith(".") or path.name == "__MACOSX"


def _subdirs(folder: Path) -> list[Path]:
    return sorted(
        (p for p in folder.iterdir() if p.is_dir() and not _ignored(p)),
        key=lambda p: _natural_key(p.name),
    )


def _child_dir(folder: Path, name: str) -> Path | None:
    """The subfolder called ``name`` in any letter case, or None."""
    for sub in _subdirs(folder):
        if sub.name.lower() == name.lower():
            return sub
    return None


def _class_of(folder: Path) -> str | None:
    return CLASS_ALIASES.get(folder.name.lower())


def _looks_like_classes(source: Path) -> bool:
    for sub in _subdirs(source):
        if _class_of(sub) or any(_class_of(inner) for inner in _subdirs(sub)):
            return True
    return False


# Files ----------------------------------------------------------------------------------


def _natural_key(name: str) -> list:
    """Sort key that puts sample2 before sample10 (splits alternate text, number, text...)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _suffix(path: Path) -> str | None:
    lower = path.name.lower()
    return next((s for s in SUFFIXES if lower.endswith(s)), None)


def _stem(path: Path) -> str:
    return path.name[: -len(_suffix(path))]


def _image_files(folder: Path) -> list[Path]:
    """The image files of ``folder`` in natural order; anything else is an error."""
    files, unsupported = [], []
    for path in folder.iterdir():
        if _ignored(path):
            continue
        if path.is_file() and _suffix(path):
            files.append(path)
        else:
            unsupported.append(path)
    if unsupported:
        raise LensrError(
            f"{unsupported[0]}: not an image file (expected {', '.join(SUFFIXES)}); "
            f"{folder} holds {len(unsupported)} such entries"
        )
    if not files:
        raise LensrError(f"{folder}: empty folder (expected {', '.join(SUFFIXES)} files)")
    return sorted(files, key=lambda p: (_natural_key(p.name), p.name))


def _names(paths: list[str]) -> str:
    shown = ", ".join(paths[:_MAX_NAMES_SHOWN])
    return shown + (", ..." if len(paths) > _MAX_NAMES_SHOWN else "")


# Reading and checking one image ---------------------------------------------------------


def _load_npy(path: Path, *, mmap: bool) -> np.ndarray:
    # np.load treats anything without the .npy magic as a pickle: say what it really is.
    try:
        with open(path, "rb") as fh:
            magic = fh.read(len(NPY_MAGIC))
    except OSError as exc:
        raise _unreadable(path, exc) from None
    if magic != NPY_MAGIC:
        raise LensrError(f"{path}: not a .npy file (no .npy header; corrupt, or another format?)")
    try:
        array = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except Exception as exc:  # numpy raises ValueError, EOFError, OSError... on bad files
        if "allow_pickle" in str(exc) or "Python objects" in str(exc):
            raise LensrError(
                f"{path}: holds pickled Python objects; lensr reads only plain numeric arrays"
            ) from None
        raise _unreadable(path, exc) from None
    if array.dtype.kind not in "iuf":
        raise LensrError(f"{path}: has dtype {array.dtype}; expected integer or float pixels")
    return array


def _unreadable(path: Path, exc: Exception) -> LensrError:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return LensrError(f"{path}: not a readable .npy file (corrupt or truncated?): {reason}")


def _plane_shape(shape: tuple[int, ...], path: Path) -> tuple[int, int]:
    """(H, W) of an array shaped (H, W) or (1, H, W); anything else is an error."""
    if len(shape) < 2 or min(shape[-2:]) < 1:
        raise LensrError(f"{path}: shape {shape} is not an image; expected (H, W) or (1, H, W)")
    planes = int(np.prod(shape[:-2]))
    if planes != 1:
        raise LensrError(
            f"{path}: has {planes} planes (shape {shape}); lensr expects one "
            "single-band image, (H, W) or (1, H, W)"
        )
    return int(shape[-2]), int(shape[-1])


def _is_fits(path: Path) -> bool:
    return _suffix(path) in FITS_SUFFIXES


def _probe_shape(path: Path) -> tuple[int, int]:
    """(H, W) of an image file, reading only the .npy header (memory map)."""
    if _is_fits(path):
        return read_fits_image(path)[0].shape  # FITS needs parsing (and gunzip) anyway
    return _plane_shape(_load_npy(path, mmap=True).shape, path)


def read_image(path: str | Path) -> np.ndarray:
    """Read one .npy or FITS image as a finite float32 (H, W) array.

    Raises a one-line ``LensrError`` naming the file when it is unreadable, pickled,
    not a single-band image, or has NaN or infinite pixels.

    Example::

        img = read_image("HR/sample1.npy")     # (150, 150) float32
    """
    path = Path(path)
    if _is_fits(path):
        image = read_fits_image(path)[0]
    else:
        array = _load_npy(path, mmap=False)
        image = array.reshape(_plane_shape(array.shape, path))
    image = np.asarray(image, dtype=np.float32)
    _check_finite(image, path)
    return image


def _check_finite(image: np.ndarray, path: Path) -> None:
    if np.isfinite(image).all():
        return
    n_nan, n_inf = int(np.isnan(image).sum()), int(np.isinf(image).sum())
    raise LensrError(
        f"{path}: contains {n_nan} NaN and {n_inf} infinite pixels; mask or fill them first"
    )


def block_mean(image: np.ndarray, scale: int) -> np.ndarray:
    """The ``scale`` x ``scale`` block mean of a (H, W) image, as float32."""
    h, w = image.shape[0] // scale, image.shape[1] // scale
    blocks = image.astype(np.float64).reshape(h, scale, w, scale)
    return blocks.mean(axis=(1, 3)).astype(np.float32)


# Layout: pairs ---------------------------------------------------------------------------


def _plan_pairs(source: Path, out: Path, *, scale: int | None) -> _Job:
    hr_dir, lr_dir = _child_dir(source, "HR"), _child_dir(source, "LR")
    for name, folder in (("HR", hr_dir), ("LR", lr_dir)):
        if folder is None:
            raise LensrError(
                f"{source}: no {name}/ folder (layout pairs expects {source}/HR and {source}/LR)"
            )
    hr_files, lr_files = _image_files(hr_dir), _image_files(lr_dir)
    pairs = _match_pairs(hr_files, lr_files, hr_dir=hr_dir, lr_dir=lr_dir)
    samples = [_Sample(hr=h, lr=lr, label=0) for h, lr in pairs]
    rel = [[h.relative_to(source).as_posix(), lr.relative_to(source).as_posix()] for h, lr in pairs]
    return _Job(
        out=out,
        samples=samples,
        class_names=["unknown"],
        scale=scale or 0,
        attrs=_attrs(source, "pairs", rel),
    )


def _keyed(files: list[Path], *, prefix: str | None) -> dict[str, Path]:
    """Map pairing key -> file; the key is the name without extension (and ``prefix``)."""
    keyed: dict[str, Path] = {}
    for path in files:
        key = _stem(path)
        if prefix and key.lower().startswith(prefix.lower()):
            key = key[len(prefix) :]
        if key in keyed:
            raise LensrError(f"{path}: same name as {keyed[key].name}; cannot tell which to pair")
        keyed[key] = path
    return keyed


def _match_pairs(
    hr_files: list[Path], lr_files: list[Path], *, hr_dir: Path, lr_dir: Path
) -> list[tuple[Path, Path]]:
    """Pair by identical names, or by names that differ only by the folder prefix."""
    best = None
    for hr_prefix, lr_prefix in ((None, None), (hr_dir.name, lr_dir.name)):
        hr_keys = _keyed(hr_files, prefix=hr_prefix)
        lr_keys = _keyed(lr_files, prefix=lr_prefix)
        common = hr_keys.keys() & lr_keys.keys()
        if best is None or len(common) > len(best[2]):
            best = (hr_keys, lr_keys, common)
    hr_keys, lr_keys, common = best
    _report_unmatched(hr_keys, lr_keys, common, hr_dir=hr_dir, lr_dir=lr_dir)
    order = sorted(common, key=lambda k: (_natural_key(k), k))
    return [(hr_keys[k], lr_keys[k]) for k in order]


def _report_unmatched(hr_keys, lr_keys, common, *, hr_dir: Path, lr_dir: Path) -> None:
    problems = []
    for keys, folder, other in ((hr_keys, hr_dir, lr_dir), (lr_keys, lr_dir, hr_dir)):
        lonely = [keys[k].name for k in sorted(keys.keys() - common, key=_natural_key)]
        if lonely:
            problems.append(
                f"{len(lonely)} file(s) in {folder} have no partner in {other} ({_names(lonely)})"
            )
    if problems:
        raise LensrError("; ".join(problems))


# Layout: classes -------------------------------------------------------------------------


def _plan_classes(source: Path, out: Path, *, scale: int) -> list[_Job]:
    splits = _scan_classes(source)
    present = {c for folders in splits.values() for c in folders}
    # One class list for every split, so that label k means the same class in each file.
    class_names = [c for c in CLASS_ORDER if c in present]
    jobs = []
    for split, folders in splits.items():
        samples = [
            _Sample(hr=path, lr=None, label=class_names.index(c))
            for c in class_names
            if c in folders
            for path in _image_files(folders[c])
        ]
        rel = [s.hr.relative_to(source).as_posix() for s in samples]
        attrs = {**_attrs(source, "classes", rel), "lr_source": LR_SOURCE_BLOCK_MEAN}
        if split is not None:
            attrs["split"] = split
        target = out if split is None else out.with_name(f"{out.stem}-{split}{out.suffix}")
        jobs.append(
            _Job(out=target, samples=samples, class_names=class_names, scale=scale, attrs=attrs)
        )
    return jobs


def _scan_classes(source: Path) -> dict[str | None, dict[str, Path]]:
    """{split or None: {class: folder}}, split folders in natural order."""
    subdirs = _subdirs(source)
    if not subdirs:
        raise LensrError(
            f"{source}: empty folder (layout classes expects class folders: {_alias_hint()})"
        )
    if all(_class_of(d) for d in subdirs):
        return {None: _class_folders(source, subdirs)}
    splits = {}
    for split in subdirs:
        inner = _subdirs(split)
        if not inner or not all(_class_of(d) for d in inner):
            odd = next((d for d in inner if not _class_of(d)), split)
            raise LensrError(
                f"{odd}: neither a class folder ({_alias_hint()}) nor a split "
                "folder holding only class folders"
            )
        splits[split.name] = _class_folders(split, inner)
    return splits


def _class_folders(parent: Path, subdirs: list[Path]) -> dict[str, Path]:
    folders: dict[str, Path] = {}
    for sub in subdirs:
        cls = _class_of(sub)
        if cls in folders:
            raise LensrError(f"{sub}: holds class '{cls}' like {folders[cls]}; keep only one")
        folders[cls] = sub
    return folders


# Checking before writing, then writing ----------------------------------------------------


def _attrs(source: Path, layout: str, rel_files: list) -> dict:
    attrs = {
        "producer": "lensr import",
        "source": str(source.resolve()),
        "layout": layout,
        "units": UNITS,
    }
    listing = json.dumps(rel_files)
    if len(listing) <= MAX_SOURCE_FILES_CHARS:
        attrs["source_files"] = listing
    return attrs


def _probe_job(job: _Job, *, progress: bool) -> None:
    """Check every file's header and shape; fix the job's HR/LR shapes and scale."""
    ref = job.samples[0]
    desc = f"checking {job.out.name}"
    for sample in tqdm(job.samples, desc=desc, disable=not progress, unit="img"):
        hr_shape = _probe_shape(sample.hr)
        lr_shape = _probe_shape(sample.lr) if sample.lr is not None else None
        if sample is ref:
            _set_shapes(job, hr_shape, lr_shape)
        _check_same(sample.hr, hr_shape, job.hr_shape, ref.hr)
        if sample.lr is not None:
            _check_same(sample.lr, lr_shape, job.lr_shape, ref.lr)
    job.attrs["scale"] = job.scale


def _set_shapes(job: _Job, hr: tuple[int, int], lr: tuple[int, int] | None) -> None:
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


def _write_all(jobs: list[_Job], *, progress: bool) -> list[Path]:
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


def _write(job: _Job, *, progress: bool) -> Path:
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


def _read_sample(sample: _Sample, job: _Job) -> tuple[np.ndarray, np.ndarray]:
    hr = read_image(sample.hr)
    # Shapes were probed already; recheck in case a file changed since.
    _check_same(sample.hr, hr.shape, job.hr_shape, job.samples[0].hr)
    if sample.lr is None:
        return hr, block_mean(hr, job.scale)
    lr = read_image(sample.lr)
    _check_same(sample.lr, lr.shape, job.lr_shape, job.samples[0].lr)
    return hr, lr
