"""Writing a lensr dataset: :class:`DatasetWriter`, crash-safe and resumable.

The format is :mod:`lensr.data.store`'s. Example::

    with DatasetWriter("d.h5", n=2, hr_shape=(8, 8), lr_shape=(4, 4), class_names=["none"],
                       attrs={}) as w:
        for i in range(2):
            w.write(i, hr=hr[i], lr=lr[i], label=0)
        w.finish()
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from lensr._version import __version__
from lensr.data.store import KIND, SUBHALO_DTYPE, params_dtype, partial_path
from lensr.errors import LensrError
from lensr.io import (
    FileLock,
    Journal,
    commit,
    created_attr,
    fsync_file,
    remove_stale_temps,
    temp_path,
)


def progress_path(path: Path) -> Path:
    """The journal of a partial file: which images are durably written (see DatasetWriter)."""
    return path.with_name(path.name + ".partial.progress")



class UnusablePartial(LensrError):
    """A ``.partial`` file that cannot be continued (unreadable, or killed while finishing)."""


class DatasetWriter:
    """Writes a dataset into ``<path>.partial`` and renames it to ``path`` on :meth:`finish`.

    An interrupted write therefore never leaves a file under the final name. Use as a
    context manager: on an exception the partial file is removed unless ``keep_partial``.
    While it writes, the writer holds the lock of ``path`` (:func:`lensr.io.file_lock`, or
    the held ``lock`` given): a second writer of the same file gets a one-line LensrError.

    Crash safety (``kill -9`` at any instant, then :meth:`reopen`): the partial file is
    built complete (every dataset allocated up front, so later writes change pixels, never
    the file's structure) under a temporary name, fsynced and only then renamed to
    ``<path>.partial``. Which images are done lives in a separate journal,
    ``<path>.partial.progress`` (:class:`lensr.io.Journal`), together with their subhalo
    rows: :meth:`flush` first flushes and fsyncs the pixels, then appends the record. So a
    partial file always holds a well-formed dataset, and every image the journal names is
    on disk. The subhalo table is written once, by :meth:`finish`.
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
        lock: FileLock | None = None,
    ):
        self._setup(path, keep_partial, lock)
        try:
            self.journal.remove()  # first: a partial without a journal has nothing done
            self.tmp.unlink(missing_ok=True)
            remove_stale_temps(self.tmp)  # a killed writer's half-built file
            build = temp_path(self.tmp)
            try:
                with h5py.File(build, "w") as f:
                    _layout(f, n, hr_shape, lr_shape, with_clean, param_fields, indices)
                    f.attrs.update(
                        sorted(
                            {
                                "kind": KIND,
                                "lensr_version": __version__,
                                "class_names": list(class_names),
                                **created_attr(),
                                **attrs,
                            }.items()
                        )
                    )
                commit(build, self.tmp)
            except BaseException:
                build.unlink(missing_ok=True)
                raise
            self._open()
        except BaseException:
            self.lock.release()
            raise

    def _setup(self, path, keep_partial: bool, lock: FileLock | None) -> None:
        self.path = Path(path)
        self.tmp = partial_path(self.path)
        self.journal = Journal(progress_path(self.path))
        self.keep_partial = keep_partial
        self.lock = lock if lock is not None else FileLock(self.path).acquire()
        self.file = None

    def _open(self, records: Sequence[dict] = ()) -> None:
        try:
            self.file = h5py.File(self.tmp, "r+")
            n = len(self.file["hr"])
            self._fsync_every = bool(self.keep_partial)
        except (OSError, KeyError) as exc:
            if self.file is not None:
                self.file.close()
            raise UnusablePartial(f"{self.tmp} is unreadable ({_short(exc)})") from None
        self._done = np.zeros(n, dtype=bool)
        self._rows: dict[int, list] = {}
        self._pending: list[int] = []
        for record in records:
            for pos, rows in zip(record["done"], record["subhalos"], strict=True):
                self._done[pos] = True
                self._rows[pos] = rows

    @classmethod
    def reopen(cls, path: str | Path, *, lock: FileLock | None = None) -> DatasetWriter:
        """Continue a partial file (``--resume``) with the images its journal names as done.

        Raises :class:`UnusablePartial` (the lock released) when the partial file cannot be
        read or was killed while finishing: the caller then starts over.
        """
        self = cls.__new__(cls)
        self._setup(path, True, lock)
        try:
            records = self.journal.read()
            if any(r.get("finishing") for r in records):
                raise UnusablePartial(f"{self.tmp} was interrupted while being finished")
            self._open(records)
        except BaseException:
            self.lock.release()
            raise
        return self

    @property
    def done(self) -> np.ndarray:
        """Which images (positions in this file) are durably written."""
        return self._done.copy()

    def write(self, pos: int, *, hr, lr, label: int, hr_clean=None, params=None, subhalos=None):
        """Store image ``pos`` of this file (not the global index); it counts as done after
        the next :meth:`flush`."""
        f = self.file
        f["hr"][pos], f["lr"][pos], f["label"][pos] = hr, lr, label
        if hr_clean is not None:
            f["hr_clean"][pos] = hr_clean
        if params is not None:
            row = np.zeros((), dtype=f["params"].dtype)
            for name in row.dtype.names:
                row[name] = params[name]
            f["params"][pos] = row
        rows = [] if subhalos is None else np.asarray(subhalos, dtype=float)[:, :3].tolist()
        self._rows[int(pos)] = rows
        self._pending.append(int(pos))

    def flush(self):
        """Make the images written since the last flush durable, then mark them done."""
        if not self._pending:
            return
        self.file.flush()
        if self._fsync_every:
            fsync_file(self.tmp)
            self.journal.append(
                {"done": self._pending, "subhalos": [self._rows[p] for p in self._pending]}
            )
        self._done[self._pending] = True
        self._pending = []

    def finish(self) -> Path:
        """Check completeness, write the subhalo table, close and rename to the final path."""
        self.flush()
        f = self.file
        missing = int((~self._done).sum())
        if missing:
            raise LensrError(f"{self.tmp}: {missing} images were never written")
        if "params" in f:  # simulations: one subhalo table, sorted by image
            if self._fsync_every:
                self.journal.append({"finishing": True})
            index = f["index"][:]
            order = np.argsort(index, kind="stable")
            rows = [(index[p], *r) for p in order for r in self._rows[int(p)]]
            table = np.array(rows, dtype=float).reshape(-1, 4)
            data = np.zeros(len(table), dtype=SUBHALO_DTYPE)
            for k, name in enumerate(SUBHALO_DTYPE.names):
                data[name] = table[:, k]
            if "subhalos" in f:
                del f["subhalos"]
            f.create_dataset("subhalos", data=data, maxshape=(None,), chunks=(4096,))
        f.close()
        commit(self.tmp, self.path)
        self.journal.remove()
        self.lock.release()
        return self.path

    def abort(self):
        """Close the file, delete it unless ``keep_partial``, release the lock."""
        try:
            if self.file is not None and self.file.id.valid:
                self.file.close()
            if not self.keep_partial:
                self.tmp.unlink(missing_ok=True)
                self.journal.remove()
        finally:
            self.lock.release()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        return False


def _layout(f, n, hr_shape, lr_shape, with_clean, param_fields, indices) -> None:
    """Every dataset of a partial file, its storage allocated now (never grown later)."""
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
    for name, shape in (("hr", hr_shape), ("lr", lr_shape)) + (
        (("hr_clean", hr_shape),) if with_clean else ()
    ):
        f.create_dataset(name, (n, *shape), dtype="<f4", chunks=(1, *shape), dcpl=dcpl.copy())
    f.create_dataset("label", (n,), dtype="i1", dcpl=dcpl.copy())
    f.create_dataset("index", data=np.arange(n) if indices is None else np.asarray(indices))
    if param_fields is not None:
        f.create_dataset("params", (n,), dtype=params_dtype(param_fields), dcpl=dcpl.copy())


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:160]
