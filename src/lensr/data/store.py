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
           seed, created, and producer-specific provenance.

Writing goes through ``<path>.partial`` (resumable) under the output's lock
(:mod:`lensr.io`); reading never loads the whole file: :class:`LensDataset` hands out h5py
datasets that slice into numpy arrays.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import h5py
import numpy as np

from lensr._version import __version__
from lensr.errors import LensrError
from lensr.io import FileLock, commit

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


class DatasetWriter:
    """Writes a dataset into ``<path>.partial`` and renames it to ``path`` on :meth:`finish`.

    An interrupted write therefore never leaves a file under the final name. Use as a
    context manager: on an exception the partial file is removed unless ``keep_partial``.
    While it writes, the writer holds the lock of ``path`` (:func:`lensr.io.file_lock`): a
    second writer of the same file, in any process, gets a one-line ``LensrError``.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        n: int,
        hr_shape: tuple[int, int],
        lr_shape: tuple[int, int],
        class_names: Sequence[str],
        attrs: dict,
        param_fields: Sequence[str] | None = None,
        with_clean: bool = False,
        indices: np.ndarray | None = None,
        keep_partial: bool = False,
    ):
        self.path = Path(path)
        self.tmp = partial_path(self.path)
        self.keep_partial = keep_partial
        self.lock = FileLock(self.path).acquire()
        try:
            self.tmp.unlink(missing_ok=True)  # a stale one: a fresh file, not a truncated one
            self.file = h5py.File(self.tmp, "w")
        except BaseException:
            self.lock.release()
            raise
        f = self.file
        for name, shape in (("hr", hr_shape), ("lr", lr_shape)) + (
            (("hr_clean", hr_shape),) if with_clean else ()
        ):
            f.create_dataset(name, (n, *shape), dtype="<f4", chunks=(1, *shape))
        f.create_dataset("label", (n,), dtype="i1")
        f.create_dataset("index", data=np.arange(n) if indices is None else np.asarray(indices))
        f.create_dataset("done", (n,), dtype=bool)
        if param_fields is not None:
            f.create_dataset("params", (n,), dtype=params_dtype(param_fields))
            f.create_dataset(
                "subhalos", (0,), maxshape=(None,), dtype=SUBHALO_DTYPE, chunks=(4096,)
            )
        f.attrs.update(
            {
                "kind": KIND,
                "lensr_version": __version__,
                "class_names": list(class_names),
                "created": datetime.now(UTC).isoformat(timespec="seconds"),
                **attrs,
            }
        )

    @classmethod
    def reopen(cls, path: str | Path) -> DatasetWriter:
        """Continue a partial file (``--resume``); rows of unfinished images are dropped."""
        self = cls.__new__(cls)
        self.path = Path(path)
        self.tmp = partial_path(self.path)
        self.keep_partial = True
        self.lock = FileLock(self.path).acquire()
        try:
            self.file = h5py.File(self.tmp, "r+")
        except OSError as exc:
            self.lock.release()
            raise LensrError(f"cannot resume: {self.tmp} is unreadable ({exc})") from None
        except BaseException:
            self.lock.release()
            raise
        try:
            if "subhalos" in self.file:
                rows = self.file["subhalos"][:]
                pos = np.searchsorted(self.file["index"][:], rows["image"])
                keep = rows[self.file["done"][:][pos]]
                self.file["subhalos"].resize((len(keep),))
                self.file["subhalos"][:] = keep
        except BaseException:
            self.abort()
            raise
        return self

    @property
    def done(self) -> np.ndarray:
        return self.file["done"][:]

    def write(self, pos: int, *, hr, lr, label: int, hr_clean=None, params=None, subhalos=None):
        """Store image ``pos`` of this file (not the global index)."""
        f = self.file
        f["hr"][pos], f["lr"][pos], f["label"][pos] = hr, lr, label
        if hr_clean is not None:
            f["hr_clean"][pos] = hr_clean
        if params is not None:
            row = np.zeros((), dtype=f["params"].dtype)
            for name in row.dtype.names:
                row[name] = params[name]
            f["params"][pos] = row
        if subhalos is not None and len(subhalos):
            rows = np.zeros(len(subhalos), dtype=SUBHALO_DTYPE)
            rows["image"] = f["index"][pos]
            rows["x"], rows["y"], rows["mass"] = subhalos[:, 0], subhalos[:, 1], subhalos[:, 2]
            ds = f["subhalos"]
            ds.resize((len(ds) + len(rows),))
            ds[-len(rows) :] = rows
        f["done"][pos] = True

    def flush(self):
        self.file.flush()

    def finish(self) -> Path:
        """Check completeness, sort the subhalo table, close and rename to the final path."""
        f = self.file
        missing = int((~f["done"][:]).sum())
        if missing:
            raise LensrError(f"{self.tmp}: {missing} images were never written")
        if "subhalos" in f and len(f["subhalos"]):
            rows = f["subhalos"][:]
            f["subhalos"][:] = rows[np.argsort(rows["image"], kind="stable")]
        del f["done"]
        f.close()
        commit(self.tmp, self.path)
        self.lock.release()
        return self.path

    def abort(self):
        """Close the file, delete it unless ``keep_partial``, release the lock."""
        try:
            if self.file.id.valid:
                self.file.close()
            if not self.keep_partial:
                self.tmp.unlink(missing_ok=True)
        finally:
            self.lock.release()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        return False


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


def open_dataset(path: str | Path) -> LensDataset:
    """Open a lensr HDF5 dataset for reading.

    >>> ds = open_dataset("data/sim.h5")
    >>> hr, lr = ds.hr[0], ds.lr[0]      # numpy arrays, only these images are read
    """
    return LensDataset(path)
