"""The `lensr` command line: a thin layer over documented Python functions.

Every command imports its stage lazily so that `lensr --help` is instant.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from lensr import __version__
from lensr.errors import LensrError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Super-resolution of strong gravitational lenses, and what it does to the science.",
)
console = Console(emoji=False)


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


@app.command()
def simulate(
    preset: str = typer.Option("sim", help="Preset name (sim, observed, classify) or YAML path."),
    n: int = typer.Option(1000, "--n", help="Number of HR/LR pairs (of the whole run)."),
    seed: int = typer.Option(0, help="Random seed: same seed, same bytes."),
    out: Path = typer.Option(..., help="Output HDF5 file."),
    workers: int = typer.Option(1, help="Parallel processes; output is identical to serial."),
    shard: str = typer.Option(None, help="K/N: make only part K (0-based) of N, for job arrays."),
    resume: bool = typer.Option(False, help="Continue an interrupted run of the same command."),
    overwrite: bool = typer.Option(False, help="Replace an existing output file."),
):
    """Simulate HR/LR lens pairs with lenstronomy into an HDF5 dataset."""
    from lensr.sim.run import simulate as run

    path = run(
        preset,
        n=n,
        seed=seed,
        out=out,
        workers=workers,
        shard=shard,
        resume=resume,
        overwrite=overwrite,
    )
    console.print(f"wrote {path}")


@app.command()
def merge(
    parts: list[Path] = typer.Argument(..., help="Shard files of one run (any order)."),
    out: Path = typer.Option(..., help="Output HDF5 file."),
    overwrite: bool = typer.Option(False, help="Replace an existing output file."),
):
    """Join the shards of one simulation run into a single dataset."""
    from lensr.sim.run import merge as run

    console.print(f"wrote {run(parts, out, overwrite=overwrite)}")


@app.command()
def inspect(
    file: Path = typer.Argument(..., help="A lensr HDF5 dataset."),
    png: Path = typer.Option(None, help="Preview grid path (default: FILE with .png)."),
    per_class: int = typer.Option(3, help="Examples per class in the preview."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
):
    """Print counts, shapes, value ranges, S/N and class balance; write a PNG preview."""
    from lensr.data.inspect import preview_grid, summarize
    from lensr.data.store import open_dataset

    with open_dataset(file) as ds:
        summary = summarize(ds)
        png = preview_grid(ds, png or file.with_suffix(".png"), per_class=per_class)
    summary["preview"] = str(png)
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    _print_summary(summary)


def _print_summary(s: dict):
    console.print(
        f"[bold]{s['path']}[/]  {s['n']} pairs  HR {s['hr_shape']}  LR {s['lr_shape']}"
        f"  x{s['scale']}  ({s['preset']})"
    )
    console.print(f"units: {s['units']}")
    table = Table("array", "min", "median", "p99", "max")
    for key in ("hr", "lr", "hr_clean"):
        if key in s:
            v = s[key]
            table.add_row(key, *(f"{v[q]:.4g}" for q in ("min", "p50", "p99", "max")))
    console.print(table)
    snr = s["snr"]
    console.print(
        f"peak S/N ({snr['how']}), 5/50/95 %: HR "
        + " / ".join(f"{snr['hr'][q]:.1f}" for q in ("p5", "p50", "p95"))
        + ", LR "
        + " / ".join(f"{snr['lr'][q]:.1f}" for q in ("p5", "p50", "p95"))
    )
    console.print("classes: " + ", ".join(f"{k} {v}" for k, v in s["classes"].items()))
    console.print(f"preview: {s['preview']}")


@app.command("import")
def import_(
    source: Path = typer.Argument(
        ..., help="Folder in a DeepLense layout (HR/ + LR/, or class folders), npy or FITS files."
    ),
    out: Path = typer.Option(..., help="Output HDF5 file (one per split: OUT-train.h5 ...)."),
    layout: str = typer.Option("auto", help="auto, pairs or classes."),
    scale: int = typer.Option(
        None, help="HR/LR scale (inferred for pairs; default 2 for class folders)."
    ),
    overwrite: bool = typer.Option(False, help="Replace existing output files."),
):
    """Convert DeepLense .npy layouts and FITS files into lensr's HDF5 format."""
    from lensr.data.importers import import_dataset

    for path in import_dataset(source, out, layout=layout, scale=scale, overwrite=overwrite):
        console.print(f"wrote {path}")


@app.command()
def presets(name: str = typer.Argument(None, help="Print this preset's YAML.")):
    """List the simulation presets, or print one to copy and edit."""
    from lensr.sim.config import preset_names, preset_path

    if name:
        print(preset_path(name).read_text(), end="")
        return
    for p in preset_names():
        console.print(f"{p:10s} {preset_path(p)}")


@app.command()
def models():
    """List every registered model with its parameter count and a one-line description."""
    from lensr.models import count_parameters, create_model, list_models

    table = Table("name", "family", "parameters (x2, 1 ch)", "description")
    for info in list_models():
        kwargs = {"num_classes": 3} if info.family == "classifier" else {}
        params = count_parameters(create_model(info.name, **kwargs))
        table.add_row(info.name, info.family, f"{params:,}", info.description)
    console.print(table)


def _train_config(config: Path | None, overrides: dict):
    from lensr.config import read_yaml, validate
    from lensr.train.config import TrainConfig

    base = read_yaml(config) if config else {}
    base = {**(base or {}), **{k: v for k, v in overrides.items() if v is not None}}
    return validate(TrainConfig, base, source=str(config) if config else "command line")


_TRAIN_OPTIONS = {
    "config": typer.Option(None, help="Training YAML (keys of TrainConfig); options override."),
    "model": typer.Option(None, help="Registered model name (see `lensr models`)."),
    "epochs": typer.Option(None, help="Maximum epochs."),
    "max_steps": typer.Option(None, help="Maximum optimizer steps (-1: no limit)."),
    "lr": typer.Option(None, help="Learning rate."),
    "batch_size": typer.Option(None, help="Batch size."),
    "patch": typer.Option(None, help="LR patch size in pixels."),
    "loss": typer.Option(None, help="l1 or mse."),
    "ema": typer.Option(None, help="EMA decay of the weights, e.g. 0.999."),
    "seed": typer.Option(None, help="Seed of the split, the crops and the initial weights."),
    "accelerator": typer.Option(None, help="cpu, gpu, auto ... (Lightning)."),
    "devices": typer.Option(None, help="Number of devices (Lightning)."),
    "strategy": typer.Option(None, help="auto, ddp ... (Lightning)."),
    "precision": typer.Option(None, help="32-true, bf16-mixed, 16-mixed (Lightning)."),
    "threads": typer.Option(None, help="torch CPU threads (default: torch's choice)."),
}


@app.command()
def train(
    data: Path = typer.Option(..., help="HDF5 dataset of HR/LR pairs."),
    out: Path = typer.Option(..., help="Run folder (checkpoints, logs)."),
    resume: bool = typer.Option(False, help="Continue an interrupted run in OUT."),
    config: Path = _TRAIN_OPTIONS["config"],
    model: str = _TRAIN_OPTIONS["model"],
    epochs: int = _TRAIN_OPTIONS["epochs"],
    max_steps: int = _TRAIN_OPTIONS["max_steps"],
    lr: float = _TRAIN_OPTIONS["lr"],
    batch_size: int = _TRAIN_OPTIONS["batch_size"],
    patch: int = _TRAIN_OPTIONS["patch"],
    loss: str = _TRAIN_OPTIONS["loss"],
    ema: float = _TRAIN_OPTIONS["ema"],
    seed: int = _TRAIN_OPTIONS["seed"],
    accelerator: str = _TRAIN_OPTIONS["accelerator"],
    devices: int = _TRAIN_OPTIONS["devices"],
    strategy: str = _TRAIN_OPTIONS["strategy"],
    precision: str = _TRAIN_OPTIONS["precision"],
    threads: int = _TRAIN_OPTIONS["threads"],
):
    """Train an SR model (PyTorch Lightning; CPU by default, GPUs/DDP with the same code)."""
    from lensr.train.fit import train as run
    from lensr.train.trainer import is_global_zero

    cfg = _train_config(
        config,
        {
            "model": model,
            "max_epochs": epochs,
            "max_steps": max_steps,
            "lr": lr,
            "batch_size": batch_size,
            "patch": patch,
            "loss": loss,
            "ema": ema,
            "seed": seed,
            "accelerator": accelerator,
            "devices": devices,
            "strategy": strategy,
            "precision": precision,
            "threads": threads,
        },
    )
    result = run(cfg, data=data, out_dir=out, resume=resume)
    if not is_global_zero():
        return
    m = result.best_metrics["metrics"]
    console.print(
        f"best: {result.best}  (epoch {result.best_metrics['epoch']}, "
        f"val PSNR {m['val_psnr']:.2f} dB, SSIM {m['val_ssim']:.4f})"
    )


@app.command("lr-sweep")
def lr_sweep(
    data: Path = typer.Option(..., help="HDF5 dataset of HR/LR pairs."),
    out: Path = typer.Option(..., help="Sweep folder (one run per rate, JSON, PNG)."),
    lrs: str = typer.Option("1e-4,3e-4,1e-3,3e-3", help="Comma-separated learning rates."),
    steps: int = typer.Option(200, help="Training steps per rate."),
    config: Path = _TRAIN_OPTIONS["config"],
    model: str = _TRAIN_OPTIONS["model"],
    batch_size: int = _TRAIN_OPTIONS["batch_size"],
    patch: int = _TRAIN_OPTIONS["patch"],
):
    """Train one model briefly at several learning rates; plot their validation-loss curves."""
    from lensr.train.lr_sweep import lr_sweep as run

    try:
        rates = tuple(float(v) for v in lrs.split(","))
    except ValueError:
        raise LensrError(f"--lrs must be comma-separated numbers, got {lrs!r}") from None
    cfg = _train_config(config, {"model": model, "batch_size": batch_size, "patch": patch})
    summary = run(cfg, data=data, out_dir=out, lrs=rates, steps=steps)
    console.print(f"best lr {summary['best_lr']:g}; figure: {summary['figure']}")


@app.command("run")
def run_(
    config: str = typer.Argument(..., help="Study YAML (or the shipped 'demo' / 'paper')."),
    out: Path = typer.Option(None, help="Run folder (default runs/<study name>)."),
    force: list[str] = typer.Option(
        [],
        help="Rerun this stage (and what depends on it); repeatable, e.g. --force train:rcan-tiny.",
    ),
):
    """Run a whole study (simulate, sweep, train, evaluate, report) with cached stages."""
    from lensr.pipeline import run_study

    run_dir = run_study(config, out=out, force=force)
    report = run_dir / "report.html"
    console.print(f"report: {report.resolve()}" if report.exists() else f"run folder: {run_dir}")


@app.command()
def demo(out: Path = typer.Option(Path("runs/demo"), help="Run folder.")):
    """The demo study on CPU in minutes (same as `lensr run demo`); ends with the report path."""
    run_(config="demo", out=out, force=[])


def _register_stage_commands():
    # Stage commands live beside their stage; the CLI only collects them.
    from lensr.eval.classify_commands import (
        classify_audit_command,
        classify_eval_command,
        classify_train_command,
    )
    from lensr.eval.commands import evaluate_command
    from lensr.infer.commands import upscale_command
    from lensr.report.commands import report_command
    from lensr.train.physics_commands import physics_train_command
    from lensr.train.transfer_commands import adda_command, finetune_command

    classify = typer.Typer(
        no_args_is_help=True,
        help="Substructure classification: "
        "train a ResNet-18 on HR, test it on HR, LR and SR images.",
    )
    classify.command("train")(classify_train_command)
    classify.command("eval")(classify_eval_command)
    classify.command("audit")(classify_audit_command)
    app.add_typer(classify, name="classify")
    app.command("upscale")(upscale_command)
    app.command("finetune")(finetune_command)
    app.command("adda")(adda_command)
    app.command("train-physics")(physics_train_command)
    app.command("evaluate")(evaluate_command)
    app.command("report")(report_command)


_register_stage_commands()


def main():
    """Console entry point: user errors print one line and exit with status 2."""
    try:
        app()
    except LensrError as exc:
        Console(stderr=True).print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted (a simulation can continue with --resume)")
        sys.exit(130)


if __name__ == "__main__":
    main()
