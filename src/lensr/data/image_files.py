"""Single-band image files (``.npy`` and FITS): suffixes, folder listings, reading and checks.

Used by ``lensr import`` (:mod:`lensr.data.importers`) and ``lensr upscale``
(:mod:`lensr.infer.upscale`). Every problem is a one-line :class:`~lensr.errors.LensrError`
naming the file; ``.npy`` files are read with ``allow_pickle=False`` after checking their
magic bytes, so a pickle is never loaded.

Example::

    from lensr.data.image_files import image_files, read_image
    images = [read_image(p) for p in image_files(Path("HR"))]   # float32 (H, W) each
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from lensr.data.fits_io import read_fits_image
from lensr.errors import LensrError

NPY_SUFFIXES = (".npy",)
NPY_MAGIC = b"\x93NUMPY"
FITS_SUFFIXES = (".fits.gz", ".fit.gz", ".fits", ".fit", ".fts")
SUFFIXES = NPY_SUFFIXES + FITS_SUFFIXES


# Names and folders ---------------------------------------------------------------------


def natural_key(name: str) -> list:
    """Sort key that puts sample2 before sample10 (splits alternate text, number, text...)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def is_ignored(path: Path) -> bool:
    """Hidden files and the metadata folder that macOS adds to zip archives."""
    return path.name.startswith(".") or path.name == "__MACOSX"


def suffix_of(path: Path, suffixes: tuple[str, ...] = SUFFIXES) -> str | None:
    """The first of ``suffixes`` (default: every image suffix) that ``path`` ends in, any case."""
    lower = path.name.lower()
    return next((s for s in suffixes if lower.endswith(s)), None)


def file_stem(path: Path) -> str:
    """The name of an image file without its (possibly double, ``.fits.gz``) suffix."""
    return path.name[: -len(suffix_of(path))]


def image_files(folder: Path) -> list[Path]:
    """The image files of ``folder`` in natural order; anything else is an error."""
    files, unsupported = [], []
    for path in folder.iterdir():
        if is_ignored(path):
            continue
        if path.is_file() and suffix_of(path):
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
    return sorted(files, key=lambda p: (natural_key(p.name), p.name))


# Reading and checking one image ---------------------------------------------------------


def load_npy(path: Path, *, mmap: bool) -> np.ndarray:
    """A plain numeric array from a ``.npy`` file (memory-mapped if ``mmap``), never a pickle."""
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
    return suffix_of(path) in FITS_SUFFIXES


def probe_shape(path: Path) -> tuple[int, int]:
    """(H, W) of an image file, reading only the .npy header (memory map)."""
    if _is_fits(path):
        return read_fits_image(path)[0].shape  # FITS needs parsing (and gunzip) anyway
    return _plane_shape(load_npy(path, mmap=True).shape, path)


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
        array = load_npy(path, mmap=False)
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
