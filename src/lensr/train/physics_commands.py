"""The ``lensr train-physics`` command: a thin Typer layer over
:func:`lensr.train.physics_fit.train_physics`.

Registered in ``lensr.cli`` as ``app.command("train-physics")(physics_train_command)``. The
work is imported lazily so that ``lensr --help`` stays instant. A YAML ``--config`` holds
keys of :class:`~lensr.train.physics_module.PhysicsTrainConfig`; options given override it.

Example (shell)::

    lensr train-physics --data sim.h5 --out runs/physics --epochs 20
    lensr evaluate --data test.h5 --model bicubic --model runs/physics/best.safetensors ...
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console(emoji=False)


def _config(config: Path | None, overrides: dict):
    from lensr.config import read_yaml, validate
    from lensr.train.physics_module import PhysicsTrainConfig

    source = str(config) if config else "command line"
    base = (read_yaml(config) if config else None) or {}
    if not isinstance(base, dict):
        return validate(PhysicsTrainConfig, base, source=source)  # raises its one-line error
    merged = {**base, **{k: v for k, v in overrides.items() if v is not None}}
    return validate(PhysicsTrainConfig, merged, source=source)


def physics_train_command(
    data: Path = typer.Option(..., help="HDF5 dataset; training reads its LR images only."),
    out: Path = typer.Option(..., help="Run folder (best/last.safetensors, logs)."),
    resume: bool = typer.Option(False, help="Continue an interrupted run in OUT."),
    config: Path = typer.Option(None, help="YAML of PhysicsTrainConfig keys; options override."),
    model: str = typer.Option(None, help="physics or physics-tiny (default)."),
    epochs: int = typer.Option(None, help="Maximum epochs."),
    max_steps: int = typer.Option(None, help="Maximum optimizer steps (-1: no limit)."),
    lr: float = typer.Option(None, help="Learning rate."),
    batch_size: int = typer.Option(None, help="Batch size (whole LR images)."),
    refine_steps: int = typer.Option(
        None, help="Per-image lens-fit steps the exported model runs at inference (0: none)."
    ),
    noise: str = typer.Option(None, help="LR noise model: auto, instrument or uniform."),
    seed: int = typer.Option(None, help="Seed of the split, the order and the weights."),
    accelerator: str = typer.Option(None, help="cpu, gpu, auto ... (Lightning)."),
    devices: int = typer.Option(None, help="Number of devices (Lightning)."),
    strategy: str = typer.Option(None, help="auto, ddp ... (Lightning; ddp for several GPUs)."),
    precision: str = typer.Option(None, help="32-true, bf16-mixed ... (Lightning)."),
    threads: int = typer.Option(None, help="torch CPU threads."),
):
    """Train the physics-informed SR model on LR images only (no HR targets).

    A CNN predicts the deflection field; the source is inverted from the LR image and
    re-lensed at HR; the loss is LR consistency through the LR instrument.
    """
    from lensr.train.physics_fit import train_physics
    from lensr.train.trainer import is_global_zero

    cfg = _config(
        config,
        {
            "model": model,
            "max_epochs": epochs,
            "max_steps": max_steps,
            "lr": lr,
            "batch_size": batch_size,
            "refine_steps": refine_steps,
            "noise": noise,
            "seed": seed,
            "accelerator": accelerator,
            "devices": devices,
            "strategy": strategy,
            "precision": precision,
            "threads": threads,
        },
    )
    result = train_physics(cfg, data=data, out_dir=out, resume=resume)
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
