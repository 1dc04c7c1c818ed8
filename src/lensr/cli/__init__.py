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


try:  # typer >= 0.2x vendors its own click
    from typer._click import exceptions as _click_errors
except ImportError:  # pragma: no cover - older typer on the real click
    from click import exceptions as _click_errors

_NO_ARGS = getattr(_click_errors, "NoArgsIsHelpError", ())


def _fail(message: str) -> None:
    # No emoji codes: "--force train:x: ..." must not print a cross.
    err = Console(stderr=True, emoji=False)
    err.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    sys.exit(2)


def main():
    """Console entry point: user errors (bad arguments, bad files, unwritable outputs) print
    one line and exit with status 2."""
    try:
        code = app(standalone_mode=False)
    except _NO_ARGS as exc:  # `lensr` or `lensr classify` alone: the help, as before
        Console().print(exc.ctx.get_help(), highlight=False)
        sys.exit(2)
    except _click_errors.UsageError as exc:  # bad option values: one line, not a box
        where = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
        _fail(f"{where}{' '.join(exc.format_message().split())}")
    except LensrError as exc:
        _fail(str(exc))
    except OSError as exc:
        # A file the user named cannot be written or read (read-only place, permission,
        # full disk): one line naming it, never a traceback.
        where = f" {exc.filename}" if getattr(exc, "filename", None) else ""
        _fail(f"cannot access{where}: {exc.strerror or exc}")
    except (KeyboardInterrupt, typer.Abort):
        Console(stderr=True).print("interrupted (a simulation can continue with --resume)")
        sys.exit(130)
    if isinstance(code, int) and not isinstance(code, bool) and code:
        sys.exit(code)  # typer.Exit(code) under standalone_mode=False
