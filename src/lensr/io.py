"""Atomic file output and output locks: the one way lensr writes a file.

A file appears under its final name complete or not at all:

1. the content goes to a temporary file in the same folder as the target (same file
   system, so the rename is atomic), named ``.<stem>.partial-<pid>-<random><suffixes>``:
   hidden, unique to this run and ending like the target, so libraries that pick a format
   from the name (matplotlib, astropy's ``.gz``) still do;
2. the temporary file is flushed and fsynced, renamed onto the target, and the folder is
   fsynced so the rename itself survives a power cut;
3. on any failure (an exception, Ctrl-C) the temporary file is removed; nothing else is:
   the old target, if any, stays as it was, and files other runs are writing are not
   touched (their temporary names differ).

Files get ordinary modes (``0o666 & ~umask``, 0o644 under the usual umask 022), not the
0o600 of :func:`tempfile.mkstemp`.

An output may also be locked (``lock=True`` or :func:`file_lock`): an exclusive,
non-blocking ``flock`` on ``<target>.lock``, so a second process writing the same target
gets a one-line :class:`~lensr.errors.LensrError` instead of a silently mixed result. The
lock file is removed on release; the operating system drops the lock of a process that dies.

Example::

    from lensr.io import atomic_open, atomic_path, write_json

    write_json("runs/a/summary.json", {"psnr": 31.2})
    with atomic_open("runs/a/table.md", "w") as f:
        f.write("| model | psnr |\\n")
    with atomic_path("runs/a/fig.png") as tmp:      # for libraries that write by name
        fig.savefig(tmp)
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import IO, Any

from lensr.errors import LensrError

try:  # POSIX; elsewhere locks are no-ops
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_SUFFIX = ".lock"


def lock_path(path: str | Path) -> Path:
    """The lock file that guards writes to ``path``: ``<path>.lock``."""
    path = Path(path)
    return path.with_name(path.name + LOCK_SUFFIX)


def temp_path(path: str | Path) -> Path:
    """A fresh temporary name for ``path`` in its folder, unique to this process and call:
    ``.<stem>.partial-<pid>-<random><suffixes>`` (``fig.png`` -> ``.fig.partial-...png``)."""
    path = Path(path)
    suffixes = "".join(path.suffixes)
    stem = path.name[: len(path.name) - len(suffixes)] if suffixes else path.name
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    return path.with_name(f".{stem}.partial-{token}{suffixes}")


def fsync_dir(folder: str | Path) -> None:
    """Make a rename or creation in ``folder`` durable (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some file systems refuse fsync on folders
        pass
    finally:
        os.close(fd)


def fsync_file(path: str | Path) -> None:
    """Flush ``path``'s data to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(tmp: str | Path, path: str | Path) -> Path:
    """Publish a finished temporary file: fsync it, rename it onto ``path``, fsync the folder.

    For writers that manage their own temporary file (e.g. a resumable ``.partial``
    dataset); everything else uses :func:`atomic_path` or :func:`atomic_open`.
    """
    path = Path(path)
    fsync_file(tmp)
    os.replace(tmp, path)
    fsync_dir(path.parent if str(path.parent) else ".")
    return path


class FileLock:
    """An exclusive, non-blocking lock on ``<path>.lock`` (see :func:`file_lock`)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lock_file = lock_path(self.path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> FileLock:
        """Take the lock or raise a one-line :class:`LensrError` naming the path."""
        if self._fd is not None:
            raise LensrError(f"{self.path} is already locked by this writer")
        if fcntl is None:  # pragma: no cover - Windows
            self._fd = -1
            return self
        self.lock_file.parent.mkdir(parents=True, exist_ok=True)
        while True:
            try:
                fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise LensrError(f"cannot lock {self.path}: {exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise LensrError(
                    f"{self.path} is being written by another process "
                    f"(it holds {self.lock_file}); wait for it or write elsewhere"
                ) from None
            except BaseException:
                os.close(fd)
                raise
            # The holder before us may have removed the lock file between our open and our
            # flock: then we locked an orphan and must lock the file now at that name.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.lock_file))
            except FileNotFoundError:
                same = False
            if same:
                self._fd = fd
                return self
            os.close(fd)

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is None or fd < 0:
            return
        try:
            self.lock_file.unlink(missing_ok=True)  # while still holding the lock
        finally:
            os.close(fd)

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc) -> bool:
        self.release()
        return False


def file_lock(path: str | Path) -> FileLock:
    """Lock the output ``path`` against other processes for the ``with`` block.

    A second process (or a second lock in this one) gets a one-line :class:`LensrError`
    naming ``path``; nothing waits.

    Example::

        with file_lock("data/sim.h5"):
            ...  # write data/sim.h5 (e.g. through its own .partial file)
    """
    return FileLock(path)


@contextmanager
def atomic_path(path: str | Path, *, lock: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` for code that writes a file by name; when the
    block ends without error the file there is fsynced and renamed onto ``path``.

    On an error the temporary file (if the block created one) is removed and ``path`` is
    left as it was. ``lock`` (default False) holds :func:`file_lock` on ``path`` meanwhile.
    The folder of ``path`` is created if missing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    with file_lock(path) if lock else nullcontext():
        try:
            yield tmp
            if not tmp.is_file():
                raise LensrError(f"nothing was written for {path}")
            commit(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)  # the name is unique to this call: it is ours
            raise


@contextmanager
def atomic_open(
    path: str | Path, mode: str = "wb", *, lock: bool = False, encoding: str | None = None
) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path`` for writing (``mode`` "wb" or "w"); when the
    block ends without error it is flushed, fsynced and renamed onto ``path``.

    On an error the temporary file is removed and ``path`` is left as it was. Text mode
    defaults to UTF-8. ``lock`` as in :func:`atomic_path`.
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', not {mode!r}")
    if mode == "w" and encoding is None:
        encoding = "utf-8"
    with atomic_path(path, lock=lock) as tmp:
        # O_EXCL: never write into a file this call did not create; 0o666 & ~umask.
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, mode, encoding=encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())


def write_bytes(path: str | Path, data: bytes, *, lock: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path``."""
    with atomic_open(path, "wb", lock=lock) as f:
        f.write(data)
    return Path(path)


def write_text(path: str | Path, text: str, *, lock: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path``."""
    with atomic_open(path, "w", lock=lock) as f:
        f.write(text)
    return Path(path)


def write_json(path: str | Path, obj: Any, *, indent: int | None = 2, lock: bool = False) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (``json.dumps(obj, indent=indent)``,
    no trailing newline added); returns ``path``. Serialisation happens before any file is
    touched, so an object that is not JSON leaves nothing behind."""
    return write_text(path, json.dumps(obj, indent=indent), lock=lock)
