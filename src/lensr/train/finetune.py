"""`lensr finetune`: move a simulation-trained SR model to observed lenses in two stages.

The study's recipe (section 5.2, "Fine-tuning"): stage 1 freezes the feature extractor
(``SRNet.encode``) and trains only the upsampler/reconstruction part on the observed pairs;
stage 2 unfreezes everything and trains with a smaller learning rate (x
``stage2_lr_factor``), starting from stage 1's best weights. Each stage stops early when
the validation PSNR has not improved for ``patience`` epochs. With 300 observed pairs this
beat ADDA by 6 dB in the study (SRResNet: 29.99 dB / SSIM 0.739 against 23.56 / 0.426).

Outputs in ``out_dir``: ``stage1/`` and ``stage2/`` (each a :func:`lensr.train.fit.train`
run folder: checkpoints, CSV and TensorBoard logs), and ``best.safetensors``/``.json``, the
better of the two stages' best checkpoints by validation PSNR, whose sidecar records the
source checkpoint, the source model's score on the same validation images, both stages'
metrics, the data provenance and ``"transfer": "finetune"``.

>>> path = finetune("runs/sim/best.safetensors", data="observed.h5", out_dir="runs/ft",
...                 cfg=FinetuneConfig(stage1_epochs=10, stage2_epochs=10))
"""

from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping
from pydantic import Field, model_validator
from torch import nn

from lensr.data.normalize import SPEC as NORMALIZATION
from lensr.data.store import open_dataset
from lensr.errors import LensrError
from lensr.models.checkpoint import load_checkpoint, resolve_model, save_checkpoint
from lensr.models.common import SRNet, split_parameters
from lensr.train.config import Runtime, TrainConfig
from lensr.train.fit import TrainResult, _loaders, train
from lensr.train.sr_module import SRModule, make_scheduler
from lensr.train.trainer import is_global_zero


class FinetuneConfig(Runtime):
    """Two-stage fine-tuning (`lensr finetune`); a stage with 0 epochs is skipped."""

    stage1_epochs: int = Field(10, ge=0)
    """Maximum epochs of stage 1 (upsampler only)."""
    stage1_lr: float = Field(1e-4, gt=0)
    stage2_epochs: int = Field(10, ge=0)
    """Maximum epochs of stage 2 (all layers)."""
    stage2_lr_factor: float = Field(0.1, gt=0, le=1)
    """Stage 2 learning rate = stage1_lr x this."""
    patience: int = Field(3, ge=1)
    """Epochs without a better val_psnr before a stage stops."""
    schedule: Literal["constant", "cosine"] = "constant"
    """Learning rate within a stage; constant suits early stopping."""
    batch_size: int = Field(16, ge=1)
    patch: int = Field(32, ge=8)
    """LR patch side in pixels."""
    val_fraction: float = Field(0.1, gt=0, lt=1)
    max_val_images: int = Field(64, ge=1)
    loss: Literal["l1", "mse"] = "l1"

    @model_validator(mode="after")
    def _some_stage(self):
        if self.stage1_epochs == 0 and self.stage2_epochs == 0:
            raise ValueError("stage1_epochs and stage2_epochs are both 0: nothing to train")
        return self


# -- shared with ADDA ------------------------------------------------------------------------
def load_source(checkpoint: str | Path) -> tuple[SRNet, dict]:
    """The trained SR model to transfer and its sidecar, with one-line errors for a missing
    file, a baseline (nothing to train) or a non-SR checkpoint.

    >>> model, meta = load_source("runs/sim/best.safetensors")
    """
    model = resolve_model(str(checkpoint))
    meta = getattr(model, "metadata", {})
    if not any(True for _ in model.parameters()):
        raise LensrError(
            f"{checkpoint} has no parameters to transfer: give a trained checkpoint (lensr train)"
        )
    if not isinstance(model, SRNet):
        raise LensrError(f"{checkpoint} is a {meta.get('arch')!r} model, not an SR model")
    return model, meta


def check_data_scale(checkpoint: str | Path, scale: int, data: str | Path) -> dict:
    """The dataset's attributes, after checking that its HR/LR ratio is ``scale``."""
    with open_dataset(data) as ds:
        if ds.scale != scale:
            raise LensrError(
                f"checkpoint {checkpoint} is for scale {scale}, but {data} has scale {ds.scale}"
            )
        return dict(ds.attrs)


def check_new_out(out_dir: Path, *names: str) -> None:
    """Refuse to mix a new run into a folder that already holds one. Checked by the reporting
    process only: the other DDP ranks start after it and find its fresh folders."""
    if not is_global_zero():
        return
    taken = [n for n in names if (out_dir / n).exists()]
    if taken:
        raise LensrError(f"{out_dir} already holds a run ({taken[0]}): use a new --out")


def validate_model(model: nn.Module, val_loader, cfg: TrainConfig) -> dict[str, float]:
    """The validation metrics of ``model`` as-is (the SRModule's, e.g. ``val_psnr``)."""
    trainer = L.Trainer(
        accelerator=cfg.accelerator,
        devices=1,
        precision=cfg.precision,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    module = SRModule(model=model, cfg=cfg, total_steps=1)
    (metrics,) = trainer.validate(module, val_loader, verbose=False)
    return {k: float(v) for k, v in metrics.items()}


def source_info(checkpoint: str | Path, meta: dict) -> dict:
    """What a transferred checkpoint records about the model it started from."""
    return {
        "path": str(checkpoint),
        "arch": meta.get("arch"),
        "data": meta.get("data"),
        "metrics": meta.get("metrics"),
    }


@contextmanager
def quiet_eval_mode_warning():
    """Silence Lightning's warning about modules in eval mode: ours are on purpose."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode")
        yield


# -- the fine-tuning module --------------------------------------------------------------------
def feature_norm_layers(model: SRNet) -> list[nn.Module]:
    """Batch-norm layers of the feature extractor (outside ``upsampler_prefixes``)."""
    prefixes = tuple(model.upsampler_prefixes)
    return [
        m
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
        and not any(name == p or name.startswith(p + ".") for p in prefixes)
    ]


def freeze_features(model: SRNet) -> int:
    """Set ``requires_grad=False`` on the feature-extractor parameters; returns how many
    upsampler parameters stay trainable."""
    features, upsampler = split_parameters(model)
    frozen = set(features)
    for name, p in model.named_parameters():
        p.requires_grad_(name not in frozen)
    return len(upsampler)


class FinetuneModule(SRModule):
    """SRModule that optimises only trainable parameters and keeps the batch-norm layers of a
    frozen feature extractor in eval mode.

    Why eval mode: in train mode batch norm normalises with each batch's statistics and
    updates its running averages, so a "frozen" extractor would still change (its buffers)
    and the upsampler would learn on features that differ from those it sees at inference.
    """

    def __init__(self, *, model: SRNet, cfg: TrainConfig, total_steps: int, frozen: bool):
        super().__init__(model=model, cfg=cfg, total_steps=total_steps)
        self._frozen_norms = feature_norm_layers(model) if frozen else []

    def set_modes(self):
        self.model.train()
        for layer in self._frozen_norms:
            layer.eval()

    # Lightning does not switch modes before fitting, and a loaded checkpoint is in eval.
    def on_fit_start(self):
        self.set_modes()

    def on_train_epoch_start(self):
        self.set_modes()

    def configure_optimizers(self):
        cfg = self.cfg
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        opt = torch.optim.Adam(trainable, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
        sched = make_scheduler(opt, cfg, self.total_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


# -- the driver --------------------------------------------------------------------------------
def stage_config(cfg: FinetuneConfig, meta: dict, *, lr: float, epochs: int) -> TrainConfig:
    """The TrainConfig of one stage (recorded in its ``train_config.json``)."""
    return TrainConfig(
        model=meta["arch"],
        model_kwargs=meta["kwargs"],
        scale=meta["scale"],
        val_fraction=cfg.val_fraction,
        max_val_images=cfg.max_val_images,
        patch=cfg.patch,
        batch_size=cfg.batch_size,
        loss=cfg.loss,
        lr=lr,
        schedule=cfg.schedule,
        max_epochs=epochs,
        seed=cfg.seed,
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        strategy=cfg.strategy,
        precision=cfg.precision,
        num_workers=cfg.num_workers,
        threads=cfg.threads,
    )


def run_stage(
    model: SRNet,
    tcfg: TrainConfig,
    *,
    frozen: bool,
    patience: int,
    data: Path,
    out_dir: Path,
    progress: bool,
) -> tuple[TrainResult, dict]:
    """One fine-tuning stage with early stopping; returns the run and a summary."""
    if frozen and freeze_features(model) == 0:
        raise LensrError(f"{model.arch!r} declares no upsampler parameters: set stage1_epochs to 0")
    stop = EarlyStopping(monitor="val_psnr", mode="max", patience=patience)

    def factory(c: TrainConfig, *, scale: int, total_steps: int) -> FinetuneModule:
        return FinetuneModule(model=model, cfg=c, total_steps=total_steps, frozen=frozen)

    with quiet_eval_mode_warning():
        result = train(
            tcfg,
            data=data,
            out_dir=out_dir,
            progress=progress,
            callbacks=[stop],
            module_factory=factory,
        )
    best = result.best_metrics
    summary = {
        "lr": tcfg.lr,
        "trained": "upsampler" if frozen else "all",
        "max_epochs": tcfg.max_epochs,
        "stopped_early": stop.stopped_epoch > 0,
        "best_epoch": best["epoch"],
        "best_step": best["step"],
        "metrics": best["metrics"],
    }
    return result, summary


def finetune(
    checkpoint: str | Path,
    *,
    data: str | Path,
    out_dir: str | Path,
    cfg: FinetuneConfig | None = None,
    progress: bool = True,
) -> Path:
    """Fine-tune the SR model in ``checkpoint`` on the HR/LR pairs in ``data`` (two stages,
    see the module docstring); returns ``out_dir/best.safetensors``.

    ``cfg`` defaults to ``FinetuneConfig()``; ``progress`` (default True) shows bars.

    >>> best = finetune("runs/sim/best.safetensors", data="observed.h5", out_dir="runs/ft")
    >>> model, meta = load_checkpoint(best); meta["stages"]["stage2"]["metrics"]["val_psnr"]
    """
    cfg = cfg or FinetuneConfig()
    data, out_dir = Path(data), Path(out_dir)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    model, meta = load_source(checkpoint)
    check_data_scale(checkpoint, meta["scale"], data)
    check_new_out(out_dir, "best.safetensors", "stage1", "stage2")

    tcfg1 = stage_config(cfg, meta, lr=cfg.stage1_lr, epochs=max(cfg.stage1_epochs, 1))
    L.seed_everything(cfg.seed, verbose=False)
    _, val_loader, _, _ = _loaders(tcfg1, data)
    source_metrics = validate_model(model, val_loader, tcfg1)

    runs: dict[str, tuple[TrainResult, dict]] = {}
    if cfg.stage1_epochs:
        runs["stage1"] = run_stage(
            model,
            tcfg1,
            frozen=True,
            patience=cfg.patience,
            data=data,
            out_dir=out_dir / "stage1",
            progress=progress,
        )
        model, _ = load_checkpoint(runs["stage1"][0].best)
    if cfg.stage2_epochs:
        tcfg2 = stage_config(
            cfg, meta, lr=cfg.stage1_lr * cfg.stage2_lr_factor, epochs=cfg.stage2_epochs
        )
        runs["stage2"] = run_stage(
            model,
            tcfg2,
            frozen=False,
            patience=cfg.patience,
            data=data,
            out_dir=out_dir / "stage2",
            progress=progress,
        )
    return _export(runs, checkpoint, meta, cfg, source_metrics, out_dir)


def _export(runs, checkpoint, meta, cfg, source_metrics, out_dir: Path) -> Path:
    # Ties go to the later stage: it has seen the same data with more freedom.
    selected = max(runs, key=lambda k: (runs[k][1]["metrics"]["val_psnr"], k))
    result, _ = runs[selected]
    best = result.best_metrics
    model, _ = load_checkpoint(result.best)
    info = {
        "transfer": "finetune",
        "source_checkpoint": source_info(checkpoint, meta),
        "source_metrics": source_metrics,
        "normalization": NORMALIZATION,
        "data": best["data"],
        "finetune": json.loads(cfg.model_dump_json()),
        "stages": {name: summary for name, (_, summary) in runs.items()},
        "selected_stage": selected,
        "training": best["training"],
        "epoch": best["epoch"],
        "step": best["step"],
        "metrics": best["metrics"],
    }
    if not is_global_zero():
        return out_dir / "best.safetensors"
    return save_checkpoint(model, out_dir / "best.safetensors", metadata=info)
