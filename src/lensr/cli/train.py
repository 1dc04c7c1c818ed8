"""The training commands: ``lensr train``, ``lr-sweep`` and ``train-physics``, thin layers
over :func:`lensr.train.fit.train`, :func:`lensr.train.lr_sweep.lr_sweep` and
:func:`lensr.train.physics_fit.train_physics`. A YAML ``--config`` holds the config's keys;
options given override it.

Example (shell)::

    lensr train --data sim.h5 --out runs/rcan --model rcan-tiny --epochs 20
    lensr lr-sweep --data sim.h5 --out runs/sweep --lrs 1e-4,1e-3
    lensr train-physics --data sim.h5 --out runs/physics --epochs 20
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from lensr.cli.options import BatchSize, Patch, config_from, console, runtime_options
from lensr.errors import LensrError

TrainYaml = Annotated[
    Path | None, typer.Option(help="Training YAML (keys of TrainConfig); options override.")
]
ModelName = Annotated[str | None, typer.Option(help="Registered model name (see `lensr models`).")]
Epochs = Annotated[int | None, typer.Option(help="Maximum epochs.")]
MaxSteps = Annotated[int | None, typer.Option(help="Maximum optimizer steps (-1: no limit).")]
Lr = Annotated[float | None, typer.Option(help="Learning rate.")]


@runtime_options
def train(
    data: Path = typer.Option(None, help="HDF5 dataset of HR/LR pairs (or --preset)."),
    out: Path = typer.Option(..., help="Run folder (checkpoints, logs)."),
    preset: str = typer.Option(
        None,
        help="Stream pairs simulated on the fly from preset(s) NAME[,NAME2...] instead of "
        "--data (NAME/GLOB keeps a mixture preset's matching variants, e.g. 'generalist/space*').",
    ),
    preset_weights: str = typer.Option(None, help="Mixture weights of --preset, e.g. 3,1."),
    resume: bool = typer.Option(False, help="Continue an interrupted run in OUT."),
    config: TrainYaml = None,
    model: ModelName = None,
    epochs: Epochs = None,
    max_steps: MaxSteps = None,
    lr: Lr = None,
    batch_size: BatchSize = None,
    patch: Patch = None,
    loss: str = typer.Option(None, help="l1 or mse."),
    ema: float = typer.Option(None, help="EMA decay of the weights, e.g. 0.999."),
    runtime: dict = None,  # the runtime options, from @runtime_options
):
    """Train an SR model (PyTorch Lightning; CPU by default, GPUs/DDP with the same code)."""
    from lensr.train.config import TrainConfig
    from lensr.train.fit import train as run
    from lensr.train.trainer import is_global_zero

    cfg = config_from(
        TrainConfig,
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
            **runtime,
        },
    )
    if (data is None) == (preset is None):
        raise LensrError("give exactly one of --data FILE and --preset NAME[,NAME...]")
    if preset_weights is not None and preset is None:
        raise LensrError("--preset-weights needs --preset")
    result = run(
        cfg, data=data, preset=preset, preset_weights=preset_weights, out_dir=out, resume=resume
    )
    if not is_global_zero():
        return
    m = result.best_metrics["metrics"]
    console.print(
        f"best: {result.best}  (epoch {result.best_metrics['epoch']}, "
        f"val PSNR {m['val_psnr']:.2f} dB, SSIM {m['val_ssim']:.4f})"
    )


def lr_sweep(
    data: Path = typer.Option(..., help="HDF5 dataset of HR/LR pairs."),
    out: Path = typer.Option(..., help="Sweep folder (one run per rate, JSON, PNG)."),
    lrs: str = typer.Option("1e-4,3e-4,1e-3,3e-3", help="Comma-separated learning rates."),
    steps: int = typer.Option(200, help="Training steps per rate."),
    config: TrainYaml = None,
    model: ModelName = None,
    batch_size: BatchSize = None,
    patch: Patch = None,
):
    """Train one model briefly at several learning rates; plot their validation-loss curves."""
    from lensr.train.config import TrainConfig
    from lensr.train.lr_sweep import lr_sweep as run

    if steps < 2:  # a curve needs at least two points (the study's SweepSpec says the same)
        raise LensrError(f"--steps must be at least 2, got {steps}")

    try:
        rates = tuple(float(v) for v in lrs.split(","))
    except ValueError:
        raise LensrError(f"--lrs must be comma-separated numbers, got {lrs!r}") from None
    options = {"model": model, "batch_size": batch_size, "patch": patch}
    cfg = config_from(TrainConfig, config, options)
    summary = run(cfg, data=data, out_dir=out, lrs=rates, steps=steps)
    console.print(f"best lr {summary['best_lr']:g}; figure: {summary['figure']}")


@runtime_options
def train_physics(
    data: Path = typer.Option(..., help="HDF5 dataset; training reads its LR images only."),
    out: Path = typer.Option(..., help="Run folder (best/last.safetensors, logs)."),
    resume: bool = typer.Option(False, help="Continue an interrupted run in OUT."),
    config: Path = typer.Option(None, help="YAML of PhysicsTrainConfig keys; options override."),
    model: str = typer.Option(None, help="physics or physics-tiny (default)."),
    epochs: Epochs = None,
    max_steps: MaxSteps = None,
    lr: Lr = None,
    batch_size: int = typer.Option(None, help="Batch size (whole LR images)."),
    refine_steps: int = typer.Option(
        None, help="Per-image lens-fit steps the exported model runs at inference (0: none)."
    ),
    noise: str = typer.Option(None, help="LR noise model: auto, instrument or uniform."),
    runtime: dict = None,  # the runtime options, from @runtime_options
):
    """Train the physics-informed SR model on LR images only (no HR targets).

    A CNN predicts the deflection field; the source is inverted from the LR image and
    re-lensed at HR; the loss is LR consistency through the LR instrument.
    """
    from lensr.train.physics_fit import train_physics as run
    from lensr.train.physics_module import PhysicsTrainConfig
    from lensr.train.trainer import is_global_zero

    cfg = config_from(
        PhysicsTrainConfig,
        config,
        {
            "model": model,
            "max_epochs": epochs,
            "max_steps": max_steps,
            "lr": lr,
            "batch_size": batch_size,
            "refine_steps": refine_steps,
            "noise": noise,
            **runtime,
        },
    )
    result = run(cfg, data=data, out_dir=out, resume=resume)
    if not is_global_zero():
        return
    m = result.best_metrics["metrics"]
    clean = (
        f", noise-free HR {m['val_psnr_clean']:.2f} dB / {m['val_ssim_clean']:.4f}"
        if "val_psnr_clean" in m
        else ""
    )
    console.print(
        f"best: {result.best}  (epoch {result.best_metrics['epoch']}, LR chi2 "
        f"{m['val_chi2']:.2f}, val PSNR {m['val_psnr']:.2f} dB, SSIM {m['val_ssim']:.4f}"
        f"{clean})",
        highlight=False,
        soft_wrap=True,
    )
