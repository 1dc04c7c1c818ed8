"""The HDF5 dataset format shared by every stage.

Layout (``kind = "lensr-dataset/1"``)::

    hr        (N, H, W)  float32  noisy high-resolution image, chunked per image
    lr        (N, h, w)  float32  noisy low-resolution image of the same sky, H = s*h
    hr_clean  (N, H, W)  float32  noise-free HR image (simulations only)
    label     (N,)       int8     class index; attrs["class_names"] names them
    index     (N,)       int64    image number within the full run (shards hold a slice)
    params    (N,)       compound one row of drawn scalars per image (simulations only)
    subhalos  (M,)       compound rows (image, x, y, mass) sorted by image
    attrs: kind, lensr_version, scale, hr_pixel_scale, lr_pixel_scale, units, config,
           seed, producer-specific provenance, and ``created`` only when SOURCE_DATE_EPOCH
           is set (so the same config and seed give byte-identical files).

Writing goes through ``<path>.partial`` (resumable after a kill) under the output's lock:
:class:`lensr.data.writer.DatasetWriter`. Reading never loads the whole file:
:class:`LensDataset` hands out h5py datasets that slice into numpy arrays.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from lensr.errors import LensrError

KIND = "lensr-dataset/1"
SUBHALO_DTYPE = np.dtype([("image", "<i8"), ("x", "<f8"), ("y", "<f8"), ("mass", "<f8")])
REQUIRED = ("hr", "lr", "label")


def partial_path(path: Path) -> Path:
    """Where a file is written before it is complete (renamed to ``path`` at the end)."""
    return path.with_name(path.name + ".partial")


def dataset_provenance(path: str | Path, attrs: dict, *, n_train: int, n_val: int, **more) -> dict:
    """What a checkpoint records about the dataset it was trained on: its path, the preset
    (or producer) and seed from its attributes, the split sizes, then ``more``."""
    return {
        "path": str(path),
        "preset": str(attrs.get("preset", attrs.get("producer", ""))),
        "seed": int(attrs["seed"]) if "seed" in attrs else None,
        "n_train": n_train,
        "n_val": n_val,
        **more,
    }


def params_dtype(fields: Sequence[str]) -> np.dtype:
    return np.dtype([(name, "<f8") for name in fields])


def check_output_path(path: str | Path, *, overwrite: bool = False) -> Path:
    """Validate an output path before any work starts: writable folder, no clobbering."""
    path = Path(path)
    if path.suffix not in (".h5", ".hdf5"):
        raise LensrError(f"output {path} should end in .h5 or .hdf5")
    if path.is_dir():
        raise LensrError(f"output {path} is a directory")
    parent = path.parent if str(path.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise LensrError(f"cannot write {path}: {parent} is not a directory")
    parent.mkdir(parents=True, exist_ok=True)
    if not os.access(parent, os.W_OK):
        raise LensrError(f"cannot write {path}: folder {parent} is not writable")
    if path.exists() and not overwrite:
        raise LensrError(f"{path} already exists (pass --overwrite to replace it)")
    return path


class LensDataset:
    """Read access to a lensr HDF5 dataset; arrays are sliced lazily from disk.

    >>> ds = open_dataset("data/sim.h5")
    >>> ds.hr[:8].shape, ds.lr[0].shape, ds.class_names
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            hint = " (an unfinished run? see --resume)" if partial_path(self.path).exists() else ""
            raise LensrError(f"dataset {self.path} does not exist{hint}")
        try:
            self.file = h5py.File(self.path, "r")
        except OSError as exc:
            raise LensrError(f"{self.path} is not a readable HDF5 file ({exc})") from None
        self._validate()

    def _validate(self):
        f, name = self.file, self.path
        missing = [k for k in REQUIRED if k not in f]
        if missing:
            raise LensrError(f"{name} is not a lensr dataset: missing '{missing[0]}'")
        if "done" in f:
            raise LensrError(f"{name} is an unfinished write")
        hr, lr = f["hr"], f["lr"]
        if hr.ndim != 3 or lr.ndim != 3:
            raise LensrError(f"{name}: hr and lr must be (N, H, W), got {hr.shape} and {lr.shape}")
        if not (len(hr) == len(lr) == len(f["label"])):
            raise LensrError(
                f"{name}: hr, lr and label disagree in length "
                f"({len(hr)}, {len(lr)}, {len(f['label'])})"
            )
        if hr.shape[1] % lr.shape[1] or hr.shape[1] // lr.shape[1] != hr.shape[2] // lr.shape[2]:
            raise LensrError(
                f"{name}: HR {hr.shape[1:]} is not an integer multiple of LR {lr.shape[1:]}"
            )

    # Arrays -------------------------------------------------------------------------
    @property
    def hr(self) -> h5py.Dataset:
        return self.file["hr"]

    @property
    def lr(self) -> h5py.Dataset:
        return self.file["lr"]

    @property
    def hr_clean(self) -> h5py.Dataset | None:
        return self.file.get("hr_clean")

    @property
    def labels(self) -> np.ndarray:
        return self.file["label"][:].astype(np.int64)

    @property
    def index(self) -> np.ndarray:
        return self.file["index"][:] if "index" in self.file else np.arange(len(self))

    @property
    def params(self) -> np.ndarray | None:
        return self.file["params"][:] if "params" in self.file else None

    def subhalos(self, image: int | None = None) -> np.ndarray:
        """Subhalo rows, all or those of one global image number."""
        if "subhalos" not in self.file:
            return np.zeros(0, dtype=SUBHALO_DTYPE)
        rows = self.file["subhalos"][:]
        return rows if image is None else rows[rows["image"] == image]

    # Metadata -----------------------------------------------------------------------
    @property
    def attrs(self) -> dict:
        return dict(self.file.attrs)

    @property
    def class_names(self) -> list[str]:
        return [str(c) for c in self.file.attrs.get("class_names", [])]

    @property
    def config(self) -> dict:
        raw = self.file.attrs.get("config")
        return json.loads(raw) if raw else {}

    @property
    def scale(self) -> int:
        return self.hr.shape[1] // self.lr.shape[1]

    @property
    def hr_shape(self) -> tuple[int, int]:
        return tuple(self.hr.shape[1:])

    @property
    def lr_shape(self) -> tuple[int, int]:
        return tuple(self.lr.shape[1:])

    def __len__(self) -> int:
        return len(self.hr)

    def __getitem__(self, i: int) -> dict:
        item = {"hr": self.hr[i], "lr": self.lr[i], "label": int(self.file["label"][i])}
        if self.hr_clean is not None:
            item["hr_clean"] = self.hr_clean[i]
        return item

    def close(self):
        self.file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __repr__(self) -> str:
        return (
            f"LensDataset({self.path}, n={len(self)}, hr={self.hr_shape}, lr={self.lr_shape}, "
            f"classes={self.class_names})"
        )


def check_finite_dataset(ds: LensDataset, names=("hr", "lr"), *, chunk: int = 256) -> None:
    """Refuse a dataset whose arrays ``names`` hold NaN or inf (read ``chunk`` images at a
    time): a one-line LensrError naming the array and the first bad image."""
    for name in names:
        if name not in ds.file:
            continue
        array = ds.file[name]
        for start in range(0, len(array), chunk):
            block = array[start : start + chunk]
            finite = np.isfinite(block).reshape(len(block), -1).all(axis=1)
            if not finite.all():
                first = start + int(np.argmin(finite))
                raise LensrError(
                    f"{ds.path}: {name}[{first}] holds NaN or inf values "
                    f"({int((~finite).sum())} such images in this block); fix the data first"
                )


def open_dataset(path: str | Path) -> LensDataset:
    """Open a lensr HDF5 dataset for reading.

    >>> ds = open_dataset("data/sim.h5")
    >>> hr, lr = ds.hr[0], ds.lr[0]      # numpy arrays, only these images are read
    """
    return LensDataset(path)

