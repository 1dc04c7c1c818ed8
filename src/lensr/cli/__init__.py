"""The ``lensr`` command line: a thin layer over documented Python functions.

``app`` is the Typer application and :func:`main` the console entry point. Each file holds
one area's commands (data, train, transfer, classify, evaluate, upscale, report, study);
``options`` holds what they share (the runtime options of every training command, the
config merge, the console). Every command imports its stage lazily so that ``lensr --help``
is instant; the table below registers them in the order ``lensr --help`` lists them.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from lensr._version import __version__
from lensr.cli import classify, data, evaluate, report, study, train, transfer, upscale
from lensr.cli.options import console
from lensr.errors import LensrError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Super-resolution of strong gravitational lenses, and what it does to the science.",
)


def _version(value: bool):
    if value:
        console.print(f"lensr {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
):
    """lensr: simulate lenses, train and compare SR models, report."""


COMMANDS = {
    "simulate": data.simulate,
    "merge": data.merge,
    "inspect": data.inspect,
    "import": data.import_,
    "presets": data.presets,
    "models": data.models,
    "train": train.train,
    "lr-sweep": train.lr_sweep,
    "run": study.run_,
    "demo": study.demo,
    "upscale": upscale.upscale_command,
    "finetune": transfer.finetune_command,
    "adda": transfer.adda_command,
    "train-physics": train.train_physics,
    "evaluate": evaluate.evaluate_command,
    "report": report.report_command,
}
"""Every top-level command by name, in the order of ``lensr --help``."""

for _name, _command in COMMANDS.items():
    app.command(_name)(_command)
app.add_typer(classify.app, name="classify")


def main():
    """Console entry point: user errors print one line and exit with status 2."""
    try:
        app()
    except LensrError as exc:
        # No emoji codes: "--force train:x: ..." must not print a cross.
        err = Console(stderr=True, emoji=False)
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted (a simulation can continue with --resume)")
        sys.exit(130)
