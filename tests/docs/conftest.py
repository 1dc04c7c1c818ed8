"""Run the Python code of a documentation page, as a reader would paste it into a notebook.

:func:`python_cells` extracts the fenced ``python`` blocks of a Markdown page in order,
leaving out a block that the line before it marks ``<!-- not run by the test suite ... -->``;
the ``run_page`` fixture runs them as one script in a fresh Python process inside a
temporary folder (matplotlib without a display), so the page cannot drift from the code.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
SKIP_MARK = "<!-- not run by the test suite"
_FENCE = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)


def python_cells(page: Path) -> list[str]:
    """The ``python`` code blocks of ``page``, in order, without the marked ones."""
    text = page.read_text()
    cells = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        if not before.startswith(SKIP_MARK):
            cells.append(match.group(1))
    return cells


@pytest.fixture
def run_page(tmp_path):
    """``run_page(name, timeout=...)``: run the cells of ``docs/<name>`` in ``tmp_path``;
    returns the completed process (stdout and stderr as text)."""

    def run(name: str, *, timeout: float = 600) -> subprocess.CompletedProcess:
        cells = python_cells(DOCS / name)
        assert cells, f"docs/{name} has no python cells"
        script = tmp_path / "page.py"
        script.write_text("\n".join(f"# --- cell {i + 1}\n{cell}" for i, cell in enumerate(cells)))
        env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONWARNINGS": "ignore"}
        proc = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert proc.returncode == 0, f"docs/{name} failed:\n{proc.stderr[-4000:]}"
        return proc

    return run
