"""The ``lensr finetune`` and ``lensr adda`` commands: thin Typer layers over
:func:`lensr.train.finetune.finetune` and :func:`lensr.train.adda.adda`.

Registered in ``lensr.cli`` as ``app.command("finetune")(finetune_command)`` and
``app.command("adda")(adda_command)``. The work is imported lazily so that ``lensr --help``
stays instant. A YAML ``--config`` holds the config's keys; options given override it.

Example (shell)::

    lensr finetune --model runs/sim/best.safetensors --data observed.h5 --out runs/ft
    lensr adda --model runs/sim/best.safetensors --source sim.h5 --target observed.h5 \\
        --out runs/adda --steps 2000
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console()

_MODEL = typer.Option(
    ..., "--model", help="Trained SR checkpoint (.safetensors) from `lensr train`."
)
_CONFIG = typer.Option(None, help="YAML of config keys; the options below override it.")
_LIGHTNING = {
    "seed": typer.Option(None, help="Seed of the split, the crops and the order."),
    "accelerator": typer.Option(None, help="cpu, gpu, auto ... (Lightning)."),
    "devices": typer.Option(None, help="Number of devices (Lightning)."),
    "strategy": typer.Option(None, help="auto, ddp ... (Lightning; ddp for several GPUs)."),
    "precision": typer.Option(None, help="32-true, bf16-mixed, 16-mixed (Lightning)."),
    "threads": typer.Option(None, help="torch CPU threads."),
}


def load_config(model_cls, config: Path | None, overrides: dict):
    """``model_cls`` from the YAML ``config`` (optional) with the non-None ``overrides``.

    Example::

        load_config(FinetuneConfig, None, {"stage1_epochs": 5, "patience": None})
    """
    from lensr.config import read_yaml, validate

    source = str(config) if config else "command line"
    base = (read_yaml(config) if config else None) or {}
    if not isinstance(base, dict):
        return validate(model_cls, base, source=source)  # raises its one-line error
    merged = {**base, **{k: v for k, v in overrides.items() if v is not None}}
    return validate(model_cls, merged, source=source)


def _summary(path: Path) -> str:
    import json

    info = json.loads(path.with_suffix(".json").read_text())
    m = info.get("metrics") or {}
    if "val_psnr" not in m:
        return f"wrote {path}"
    return f"wrote {path}  (val PSNR {m['val_psnr']:.2f} dB, SSIM {m['val_ssim']:.4f})"


def finetune_command(
    model: Path = _MODEL,
    data: Path = typer.Option(..., help="Observed HR/LR pairs (HDF5) to fine-tune on."),
    out: Path = typer.Option(..., help="Run folder (stage1/, stage2/, best.safetensors)."),
    config: Path = _CONFIG,
    stage1_epochs: int = typer.Option(None, help="Max epochs training the upsampler only."),
    stage2_epochs: int = typer.Option(None, help="Max epochs training all layers."),
    stage1_lr: float = typer.Option(None, help="Stage 1 learning rate."),
    stage2_lr_factor: float = typer.Option(None, help="Stage 2 lr = stage 1 lr x this."),
    patience: int = typer.Option(None, help="Epochs without better val PSNR before stopping."),
    batch_size: int = typer.Option(None, help="Batch size."),
    patch: int = typer.Option(None, help="LR patch size in pixels."),
    seed: int = _LIGHTNING["seed"],
    accelerator: str = _LIGHTNING["accelerator"],
    devices: int = _LIGHTNING["devices"],
    strategy: str = _LIGHTNING["strategy"],
    precision: str = _LIGHTNING["precision"],
    threads: int = _LIGHTNING["threads"],
):
    """Fine-tune a simulation-trained model on observed pairs: upsampler, then all layers."""
    from lensr.train.finetune import FinetuneConfig, finetune

    cfg = load_config(
        FinetuneConfig,
        config,
        {
            "stage1_epochs": stage1_epochs,
            "stage2_epochs": stage2_epochs,
            "stage1_lr": stage1_lr,
            "stage2_lr_factor": stage2_lr_factor,
            "patience": patience,
            "batch_size": batch_size,
            "patch": patch,
            "seed": seed,
            "accelerator": accelerator,
            "devices": devices,
            "strategy": strategy,
            "precision": precision,
            "threads": threads,
        },
    )
    path = finetune(model, data=data, out_dir=out, cfg=cfg)
    from lensr.train.trainer import is_global_zero

    if is_global_zero():  # one summary, not one per DDP rank
        console.print(_summary(path), highlight=False, soft_wrap=True)


def adda_command(
    model: Path = _MODEL,
    source: Path = typer.Option(..., help="The simulation set the model was trained on (LR)."),
    target: Path = typer.Option(..., help="Observed dataset; only its LR trains (HR: monitor)."),
    out: Path = typer.Option(..., help="Run folder (best/last.safetensors, logs)."),
    config: Path = _CONFIG,
    steps: int = typer.Option(None, help="Target-encoder updates."),
    lr: float = typer.Option(None, help="Target encoder learning rate."),
    disc_lr: float = typer.Option(None, help="Discriminator learning rate."),
    batch_size: int = typer.Option(None, help="Images per domain and step."),
    patch: int = typer.Option(None, help="LR patch size in pixels."),
    adversarial_weight: float = typer.Option(None, help="Weight of the adversarial loss."),
    identity_weight: float = typer.Option(
        None, help="Weight of the feature-preserving L1 regulariser (0: pure ADDA)."
    ),
    val_every: int = typer.Option(None, help="Validate on the target every N steps."),
    select_by_val: bool = typer.Option(
        None,
        "--select-by-val/--select-last",
        help="Keep the best target val PSNR (peeks at target HR) or the last step (default).",
    ),
    monitor: bool = typer.Option(
        None, "--monitor/--no-monitor", help="Score the target validation split (reads HR)."
    ),
    seed: int = _LIGHTNING["seed"],
    accelerator: str = _LIGHTNING["accelerator"],
    devices: int = _LIGHTNING["devices"],
    strategy: str = _LIGHTNING["strategy"],
    precision: str = _LIGHTNING["precision"],
    threads: int = _LIGHTNING["threads"],
):
    """Adapt a model's encoder to observed LR images with ADDA (unpaired; upsampler fixed)."""
    from lensr.train.adda import ADDAConfig, adda

    cfg = load_config(
        ADDAConfig,
        config,
        {
            "steps": steps,
            "lr": lr,
            "disc_lr": disc_lr,
            "batch_size": batch_size,
            "patch": patch,
            "adversarial_weight": adversarial_weight,
            "identity_weight": identity_weight,
            "val_every": val_every,
            "select_by_val": select_by_val,
            "monitor": monitor,
            "seed": seed,
            "accelerator": accelerator,
            "devices": devices,
            "strategy": strategy,
            "precision": precision,
            "threads": threads,
        },
    )
    path = adda(model, source_data=source, target_data=target, out_dir=out, cfg=cfg)
    from lensr.train.trainer import is_global_zero

    if is_global_zero():  # one summary, not one per DDP rank
        console.print(_summary(path), highlight=False, soft_wrap=True)
