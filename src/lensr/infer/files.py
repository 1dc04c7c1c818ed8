"""The files ``lensr upscale`` reads and writes: input kinds, output checks, one image file.

INPUT is a ``.npy`` file, a FITS file, a lensr HDF5 dataset or a folder of .npy/FITS
files (:func:`input_kind`); OUT must be of the same kind, and everything about it is
checked before any work starts (:func:`check_output`, :func:`check_sigma_outputs`).
One .npy or FITS file is read as an (N, H, W) stack that remembers its own layout and
header (:func:`read_image_file`) and written back in that layout, with the WCS rescaled
and the uncertainty map beside it (:func:`write_image_file`).

Example::

    from lensr.infer.files import read_image_file, write_image_file
    item = read_image_file(Path("cut.fits"))          # item.images: (1, H, W)
    write_image_file(Path("x2.fits"), item, sr, scale=2, note="lensr upscale x2")
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits

from lensr.data.fits_io import read_fits_image, scale_wcs_header, write_fits_image
from lensr.data.image_files import FITS_SUFFIXES, image_files, load_npy, suffix_of
from lensr.errors import LensrError
from lensr.infer.arrays import check_finite
from lensr.io import atomic_open, atomic_path

H5_SUFFIXES = (".h5", ".hdf5")
SIGMA_SUFFIX = "_sigma"
"""``--uncertainty`` with .npy output: ``<stem>_sigma.npy`` beside ``<stem>.npy``."""
SIGMA_EXTNAME = "UNCERTAINTY"
"""``--uncertainty`` with FITS output: the image extension holding sigma."""


# Kinds and output checks ----------------------------------------------------------------

_KIND_SUFFIXES = {"npy": (".npy",), "fits": FITS_SUFFIXES, "h5": H5_SUFFIXES}
_ALL_SUFFIXES = (".npy",) + FITS_SUFFIXES + H5_SUFFIXES
_KIND_NAMES = {"npy": "a .npy file", "fits": "a FITS file", "h5": "an HDF5 file"}


def input_kind(src: Path) -> str:
    """The kind of INPUT, one of "folder", "npy", "fits" or "h5"; anything else is an error."""
    if src.is_dir():
        return "folder"
    if not src.exists():
        raise LensrError(f"{src}: no such file or folder")
    for kind, suffixes in _KIND_SUFFIXES.items():
        if suffix_of(src, suffixes):
            return kind
    raise LensrError(
        f"{src}: unsupported file type {src.suffix or '(no extension)'!r}; expected .npy, "
        f"FITS ({', '.join(FITS_SUFFIXES)}), .h5/.hdf5 or a folder of .npy/FITS files"
    )


def check_output(src: Path, dst: Path, kind: str, *, overwrite: bool) -> None:
    """Everything about OUT that can be checked before any work starts; writes nothing."""
    if dst.resolve() == src.resolve():
        raise LensrError(f"output {dst} is the input; choose another output path")
    if kind == "folder":
        if suffix_of(dst, _ALL_SUFFIXES):
            raise LensrError(f"input {src} is a folder, so the output must be a folder, not {dst}")
        if src.resolve() in dst.resolve().parents:
            raise LensrError(f"output folder {dst} must not lie inside the input folder {src}")
    elif not suffix_of(dst, _KIND_SUFFIXES[kind]):
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


def sigma_path(path: Path) -> Path:
    """Where the uncertainty map of a .npy output goes: ``a.npy`` -> ``a_sigma.npy``."""
    return path.with_name(path.name[: -len(".npy")] + SIGMA_SUFFIX + ".npy")


def check_sigma_outputs(src: Path, dst: Path, kind: str, *, overwrite: bool) -> None:
    """The extra files ``--uncertainty`` writes must not clash with anything."""
    if kind == "npy":
        sigma = sigma_path(dst)
        if sigma.resolve() == src.resolve():
            raise LensrError(f"the uncertainty map {sigma} would overwrite the input")
        if (sigma.exists() or sigma.is_symlink()) and not overwrite:
            raise LensrError(f"{sigma} already exists (pass --overwrite to replace it)")
    elif kind == "folder":
        names = {p.name.lower() for p in image_files(src)}
        for name in sorted(names):
            if suffix_of(Path(name), (".npy",)) and sigma_path(Path(name)).name in names:
                raise LensrError(
                    f"{src} holds both {name} and {sigma_path(Path(name)).name}: the "
                    "uncertainty map of the first would overwrite the output of the second"
                )


def _check_replaceable_folder(dst: Path) -> None:
    # --overwrite must not delete a folder the user did not get from lensr upscale.
    if not dst.is_dir():
        raise LensrError(f"{dst} exists and is not a folder; the output of a folder is a folder")
    foreign = [
        p
        for p in dst.iterdir()
        if not p.name.startswith(".") and not (p.is_file() and suffix_of(p, _ALL_SUFFIXES))
    ]
    if foreign:
        raise LensrError(
            f"{dst} holds {len(foreign)} entries that are not images (e.g. {foreign[0].name}); "
            "remove it yourself or choose another output folder"
        )


# Reading and writing one image file --------------------------------------------------


@dataclass
class ImageStack:
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


def read_image_file(path: Path) -> ImageStack:
    """Read and check one .npy or FITS file; every problem is a LensrError naming it."""
    if suffix_of(path, FITS_SUFFIXES):
        image, header = read_fits_image(path)
        check_finite(image, str(path))
        return ImageStack(image[None], image.shape, header)
    array = load_npy(path, mmap=False)
    images = np.ascontiguousarray(array.reshape(_stack_shape(array.shape, path)), np.float32)
    check_finite(images, str(path))
    return ImageStack(images, array.shape)


def write_image_file(
    path: Path,
    item: ImageStack,
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
        with atomic_path(path) as tmp:  # a name unique to this run: never another's file
            write_fits_image(tmp, sr[0], header=header, extra_hdus=extra, overwrite=True)
        return
    layout = (*item.shape[:-2], *sr.shape[-2:])
    if sigma is not None:  # first, so that the image's presence means both are there
        _atomic_npy(sigma_path(path), sigma.reshape(layout))
    _atomic_npy(path, sr.reshape(layout))


def _atomic_npy(path: Path, array: np.ndarray) -> None:
    with atomic_open(path, "wb") as fh:
        np.save(fh, array, allow_pickle=False)
