"""The output folder of an evaluation, written all or nothing.

:func:`check_out_dir` checks the folder before any work; :func:`write_all` writes every
file under a temporary name and renames them all at the end, JSON files last (so a
``metrics.json``, ``classification.json`` or ``hallucination.json`` means the run
finished); a failure leaves no new file behind. Writers are ``fn(path)`` callables;
:func:`text_writer` and :func:`json_writer` make the common ones.

Example::

    out = check_out_dir("eval/")
    write_all(out, {"table.md": text_writer("# ..."), "metrics.json": json_writer(result)})
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from lensr.errors import LensrError

Writer = Callable[[Path], None]
"""Writes one output file to the path it is given."""


def check_out_dir(out_dir) -> Path:
    """``out_dir`` as a Path if it is (or can become) a writable folder; else a LensrError."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise LensrError(f"output {out} exists and is not a folder")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise LensrError(f"cannot write into {out}: {parent} is not a writable folder")
    return out


def write_all(out: Path, writers: dict[str, Writer]) -> None:
    """Write every file under a temporary name, then rename all (JSON files last): a
    failure leaves no new file behind."""
    out.mkdir(parents=True, exist_ok=True)
    tmps: dict[str, Path] = {}
    try:
        for name, write in writers.items():
            p = Path(name)
            tmps[name] = out / f".{p.stem}.partial-{os.getpid()}{p.suffix}"
            write(tmps[name])
        for name in sorted(tmps, key=lambda k: k.endswith(".json")):
            os.replace(tmps[name], out / name)
    except BaseException:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)
        raise


def text_writer(text: str) -> Writer:
    """A writer of ``text``."""

    def write(path: Path) -> None:
        path.write_text(text)

    return write


def json_writer(result: dict) -> Writer:
    """A writer of ``result`` as indented, strict JSON (no NaN) with a final newline."""

    def write(path: Path) -> None:
        path.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")

    return write
