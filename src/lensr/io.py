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
gets a one-line :class:`~lensr.errors.LensrError` naming the other run (the holder writes
its pid and command line into the lock file) instead of a silently mixed result. The lock
file is removed on release; the operating system drops the lock of a process that dies.

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
import shutil
import sys
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
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


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def remove_stale_temps(path: str | Path) -> list[Path]:
    """Delete the temporary files of ``path`` (:func:`temp_path` names) whose writing
    process no longer runs (a killed writer's leftovers); returns what was deleted. Files
    of live processes are never touched."""
    path = Path(path)
    suffixes = "".join(path.suffixes)
    stem = path.name[: len(path.name) - len(suffixes)] if suffixes else path.name
    prefix = f".{stem}.partial-"
    removed = []
    folder = path.parent if str(path.parent) else Path(".")
    try:
        candidates = [p for p in folder.iterdir() if p.name.startswith(prefix)]
    except OSError:
        return removed
    for p in candidates:
        pid = p.name[len(prefix) :].split("-", 1)[0]
        if pid.isdigit() and p.name.endswith(suffixes) and not _alive(int(pid)):
            if p.is_dir() and not p.is_symlink():  # a folder output's temporary folder
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def created_attr() -> dict:
    """``{"created": ...}`` only when ``SOURCE_DATE_EPOCH`` is set (then that instant, so
    reruns stay byte-identical); otherwise nothing: files of the same config and seed are
    byte-identical, and a file's creation time is its modification time."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not epoch:
        return {}
    try:
        when = datetime.fromtimestamp(int(epoch), UTC)
    except (ValueError, OverflowError, OSError):
        raise LensrError(f"SOURCE_DATE_EPOCH={epoch!r} is not a Unix time in seconds") from None
    return {"created": when.isoformat(timespec="seconds")}


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


def _stamp(fd: int) -> None:
    """Record who holds the lock: ``pid <pid>: <command line>`` (best effort)."""
    command = " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]) if sys.argv else "python"
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {command}"[:300].encode(errors="replace"), 0)
    except OSError:
        pass


def _holder(fd: int) -> str:
    """Who holds a lock, as its holder stamped it (a holder may not have stamped it yet)."""
    try:
        text = os.pread(fd, 300, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return " ".join(text.split()) or "pid unknown"


class FileLock:
    """An exclusive, non-blocking lock on ``<path>.lock`` (see :func:`file_lock`)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lock_file = lock_path(self.path)
        self._fd: int | None = None
        self._made: list[Path] = []  # folders acquire created, removed on release if empty

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
        parent = self.lock_file.parent
        self._made = [p for p in (parent, *parent.parents) if not p.exists()]
        while True:
            try:
                parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o666)
            except OSError as exc:
                raise LensrError(f"cannot lock {self.path}: {exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                raise LensrError(
                    f"{self.path} is being written by another run ({holder}; it holds "
                    f"{self.lock_file}): wait for it or write elsewhere"
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
                _stamp(fd)
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
        for folder in self._made:  # deepest first: a refused run leaves no empty folders
            try:
                folder.rmdir()
            except OSError:  # not empty (the output is there) or already gone
                break
        self._made = []

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
        if lock:
            remove_stale_temps(path)
        try:
            yield tmp
            if not tmp.is_file():
                raise LensrError(f"nothing was written for {path}")
            commit(tmp, path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)  # the name is unique to this call: it is ours
            if exc.filename is not None and Path(exc.filename) == tmp:
                # Name the file the user asked for, not our temporary one.
                raise OSError(exc.errno, exc.strerror, str(path)) from exc
            raise
        except BaseException:
            tmp.unlink(missing_ok=True)
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


class Journal:
    """An append-only file of checksummed JSON records, each durable once :meth:`append`
    returns: the progress file of a resumable writer.

    A record is one line ``<crc32 hex> <json>``; a process killed mid-append leaves a torn
    last line, which :meth:`read` ignores and :meth:`append` first cuts off, so the file
    always reads as exactly the records whose ``append`` returned.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._end: int | None = None  # where the next record goes, once known

    def _scan(self) -> tuple[list, int]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return [], 0
        records, good = [], 0
        while True:
            end = data.find(b"\n", good)
            if end < 0:
                break
            crc, _, body = data[good:end].partition(b" ")
            try:
                if int(crc, 16) != zlib.crc32(body):
                    break
                records.append(json.loads(body))
            except ValueError:
                break
            good = end + 1
        return records, good

    def read(self) -> list:
        """The records appended so far, oldest first."""
        return self._scan()[0]

    def append(self, record: Any) -> None:
        """Add ``record`` (JSON-serialisable) durably: written, fsynced, and for a new file
        the folder fsynced."""
        body = json.dumps(record, separators=(",", ":")).encode()
        line = f"{zlib.crc32(body):08x} ".encode() + body + b"\n"
        new = not self.path.exists()
        if self._end is None or new:
            self._end = self._scan()[1]
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o666)
        try:
            os.ftruncate(fd, self._end)  # drop a torn record of a killed writer
            os.pwrite(fd, line, self._end)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._end += len(line)
        if new:
            fsync_dir(self.path.parent if str(self.path.parent) else ".")

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
        self._end = None
