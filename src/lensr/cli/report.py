"""The ``lensr report`` command: a thin Typer layer over :func:`lensr.report.build_report`.

Example (shell)::

    lensr report runs/demo                      # writes runs/demo/report.html
    lensr report runs/demo --out ~/demo.html
"""

from __future__ import annotations

from pathlib import Path

import typer


def report_command(
    run_dir: Path = typer.Argument(..., help="A study run folder (what `lensr study` wrote)."),
    out: Path = typer.Option(None, help="Output HTML file (default: RUN_DIR/report.html)."),
):
    """Write one self-contained HTML page (embedded figures, no JavaScript) summarising a
    study run: data, learning-rate sweep, training, results, pipeline and environment."""
    from lensr.report.html import build_report

    typer.echo(str(build_report(run_dir, out=out)))
