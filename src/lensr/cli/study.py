"""The study commands: ``lensr run`` (a whole study with cached stages) and ``lensr demo``,
thin layers over :func:`lensr.study.run_study`.

Example (shell)::

    lensr demo                                   # runs/demo/report.html
    lensr run paper --out runs/paper --force train:rcan-tiny
"""

from __future__ import annotations

from pathlib import Path

import typer

from lensr.cli.options import console


def run_(
    config: str = typer.Argument(..., help="Study YAML (or the shipped 'demo' / 'paper')."),
    out: Path = typer.Option(None, help="Run folder (default runs/<study name>)."),
    force: list[str] = typer.Option(
        [],
        help="Rerun this stage (and what depends on it); repeatable, e.g. --force train:rcan-tiny.",
    ),
):
    """Run a whole study (simulate, sweep, train, evaluate, report) with cached stages."""
    from lensr.study import run_study

    run_dir = run_study(config, out=out, force=force)
    report = run_dir / "report.html"
    console.print(f"report: {report.resolve()}" if report.exists() else f"run folder: {run_dir}")


def demo(out: Path = typer.Option(Path("runs/demo"), help="Run folder.")):
    """The demo study on CPU in minutes (same as `lensr run demo`); ends with the report path."""
    run_(config="demo", out=out, force=[])
