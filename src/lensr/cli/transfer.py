"""The transfer commands: ``lensr finetune`` and ``lensr adda``, thin layers over
:func:`lensr.train.finetune.finetune` and :func:`lensr.train.adda.adda`. A YAML ``--config``
holds the config's keys; options given override it.

Example (shell)::

    lensr finetune --model runs/sim/best.safetensors --data observed.h5 --out runs/ft
    lensr adda --model runs/sim/best.safetensors --source sim.h5 --target observed.h5 \\
        --out runs/adda --steps 2000
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from lensr.cli.options import BatchSize, Patch, config_from, console, runtime_options

SourceModel = Annotated[
    Path,
    typer.Option(
        "--model",
        help="Trained SR checkpoint (.safetensors) from `lensr train`, or a shipped pretrained"
        " name (`lensr models`).",
    ),
]
ConfigYaml = Annotated[
    Path | None, typer.Option(help="YAML of config keys; the options below override it.")
]


def _summary(path: Path) -> str:
    info = json.loads(path.with_suffix(".json").read_text())
    m = info.get("metrics") or {}
    if "val_psnr" not in m:
        return f"wrote {path}"
    return f"wrote {path}  (val PSNR {m['val_psnr']:.2f} dB, SSIM {m['val_ssim']:.4f})"


def _report(path: Path) -> None:
    from lensr.train.trainer import is_global_zero

    if is_global_zero():  # one summary, not one per DDP rank
        console.print(_summary(path), highlight=False, soft_wrap=True)


@runtime_options
def finetune_command(
    model: SourceModel,
    data: Path = typer.Option(..., help="Observed HR/LR pairs (HDF5) to fine-tune on."),
    out: Path = typer.Option(..., help="Run folder (stage1/, stage2/, best.safetensors)."),
    config: ConfigYaml = None,
    stage1_epochs: int = typer.Option(None, help="Max epochs training the upsampler only."),
    stage2_epochs: int = typer.Option(None, help="Max epochs training all layers."),
    stage1_lr: float = typer.Option(None, help="Stage 1 learning rate."),
    stage2_lr_factor: float = typer.Option(None, help="Stage 2 lr = stage 1 lr x this."),
    patience: int = typer.Option(None, help="Epochs without better val PSNR before stopping."),
    batch_size: BatchSize = None,
    patch: Patch = None,
    runtime: dict = None,  # the runtime options, from @runtime_options
):
    """Fine-tune a simulation-trained model on observed pairs: upsampler, then all layers."""
    from lensr.train.finetune import FinetuneConfig, finetune

    cfg = config_from(
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
            **runtime,
        },
    )
    _report(finetune(model, data=data, out_dir=out, cfg=cfg))


@runtime_options
def adda_command(
    model: SourceModel,
    source: Path = typer.Option(..., help="The simulation set the model was trained on (LR)."),
    target: Path = typer.Option(..., help="Observed dataset; only its LR trains (HR: monitor)."),
    out: Path = typer.Option(..., help="Run folder (best/last.safetensors, logs)."),
    config: ConfigYaml = None,
    steps: int = typer.Option(None, help="Target-encoder updates."),
    lr: float = typer.Option(None, help="Target encoder learning rate."),
    disc_lr: float = typer.Option(None, help="Discriminator learning rate."),
    batch_size: int = typer.Option(None, help="Images per domain and step."),
    patch: Patch = None,
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
    runtime: dict = None,  # the runtime options, from @runtime_options
):
    """Adapt a model's encoder to observed LR images with ADDA (unpaired; upsampler fixed)."""
    from lensr.train.adda import ADDAConfig, adda

    cfg = config_from(
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
            **runtime,
        },
    )
    _report(adda(model, source_data=source, target_data=target, out_dir=out, cfg=cfg))
