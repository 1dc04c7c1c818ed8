"""What the command files share: the console, the runtime options of every training command
(seed, accelerator, devices, strategy, precision, threads; declared once here), and the
"YAML file, then the options that were given" config merge.

A training command takes the runtime options in one parameter::

    @runtime_options
    def train(..., lr: float = typer.Option(None, help="Learning rate."), runtime: dict = None):
        cfg = config_from(TrainConfig, config, {"lr": lr, **runtime})
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

console = Console(emoji=False)
"""Standard output of every command (no emoji codes: paths may contain ``:x:``)."""

RUNTIME_OPTIONS = {
    "seed": (int, "Seed of the split, the crops, the order and the weights (default 0)."),
    "accelerator": (str, "cpu, gpu, mps or auto (Lightning; default cpu)."),
    "devices": (str, "Number of devices or a list such as 0,1 (Lightning; default 1)."),
    "strategy": (str, "auto, ddp ... (Lightning; ddp for several GPUs; default auto)."),
    "precision": (str, "32-true, bf16-mixed or 16-mixed (Lightning; default 32-true)."),
    "threads": (int, "torch CPU threads (default: torch's choice)."),
}
"""The runtime options of every training command: name -> (type, help). None: not given."""


BatchSize = Annotated[int | None, typer.Option(help="Batch size.")]
Patch = Annotated[int | None, typer.Option(help="LR patch size in pixels.")]
"""Options of several training commands (SR training, sweep, fine-tuning, ADDA)."""


def parse_devices(value: str | None) -> int | str | None:
    """``--devices``: a count (``"2"`` -> 2) or Lightning's device list (``"0,1"``) as given."""
    if value is None:
        return None
    return int(value) if value.strip().isdigit() else value.strip()


def runtime_options(command: Callable) -> Callable:
    """Give a training command the runtime options (:data:`RUNTIME_OPTIONS`).

    The command declares a ``runtime: dict`` parameter; the options take its place in the
    command's signature (and so in its ``--help``), and the command receives them as config
    keys in ``runtime`` (None where an option was not given).
    """
    signature = inspect.signature(command, eval_str=True)
    params = []
    for param in signature.parameters.values():
        if param.name != "runtime":
            params.append(param)
            continue
        for name, (kind, help_text) in RUNTIME_OPTIONS.items():
            option = Annotated[kind | None, typer.Option(help=help_text)]
            params.append(inspect.Parameter(name, param.kind, default=None, annotation=option))

    @functools.wraps(command)
    def wrapper(**kwargs):
        runtime = {name: kwargs.pop(name) for name in RUNTIME_OPTIONS}
        runtime["devices"] = parse_devices(runtime["devices"])
        return command(**kwargs, runtime=runtime)

    wrapper.__signature__ = signature.replace(parameters=params)
    wrapper.__annotations__ = {p.name: p.annotation for p in params}
    return wrapper


def config_from(model, config: Path | None, options: dict):
    """``model`` from the optional YAML file ``config``, with the ``options`` that were
    given (not None) taking precedence.

    Example::

        config_from(FinetuneConfig, None, {"stage1_epochs": 5, "patience": None})
    """
    from lensr.config import load

    return load(model, config, {k: v for k, v in options.items() if v is not None})
