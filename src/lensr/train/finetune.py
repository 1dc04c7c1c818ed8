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
from contextlib import nullcontext
from pathlib import Path

from lightning.pytorch.callbacks import EarlyStopping
from torch import nn

from lensr.data.normalize import SPEC as NORMALIZATION
from lensr.errors import LensrError
from lensr.io import file_lock
from lensr.models.checkpoint import load_checkpoint, save_checkpoint
from lensr.models.common import SRNet, split_parameters
from lensr.train import transfer
from lensr.train.config import FinetuneConfig, TrainConfig
from lensr.train.fit import TrainResult, sr_loaders, train
from lensr.train.sr_module import SRModule
from lensr.train.trainer import is_global_zero, seed_run


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

    def trainable_parameters(self):
        """Only the parameters that are not frozen."""
        return [p for p in self.model.parameters() if p.requires_grad]


# -- the driver --------------------------------------------------------------------------------
def stage_config(cfg: FinetuneConfig, meta: dict, *, lr: float, epochs: int) -> TrainConfig:
    """The TrainConfig of one stage (recorded in its ``train_config.json``)."""
    copy = ("loss", "schedule", "strategy", "num_workers", "threads")
    return transfer.source_train_config(meta, cfg, copy=copy, lr=lr, max_epochs=epochs)


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

    with transfer.quiet_eval_mode_warning():
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
    model, meta = transfer.load_source(checkpoint)
    transfer.check_data_scale(checkpoint, meta["scale"], data)
    # Rank 0 only: DDP's other ranks re-run the command and must not contend for the lock.
    with file_lock(out_dir) if is_global_zero() else nullcontext():
        transfer.check_new_out(out_dir, "best.safetensors", "stage1", "stage2")

        tcfg1 = stage_config(cfg, meta, lr=cfg.stage1_lr, epochs=max(cfg.stage1_epochs, 1))
        seed_run(cfg, workers=False)
        _, val_loader, _, _ = sr_loaders(tcfg1, data)
        source_metrics = transfer.validate_model(model, val_loader, tcfg1)

        stages = []  # (name, config, upsampler only?)
        if cfg.stage1_epochs:
            stages.append(("stage1", tcfg1, True))
        if cfg.stage2_epochs:
            lr2 = cfg.stage1_lr * cfg.stage2_lr_factor
            tcfg2 = stage_config(cfg, meta, lr=lr2, epochs=cfg.stage2_epochs)
            stages.append(("stage2", tcfg2, False))
        runs: dict[str, tuple[TrainResult, dict]] = {}
        for name, tcfg, frozen in stages:
            runs[name] = run_stage(
                model,
                tcfg,
                frozen=frozen,
                patience=cfg.patience,
                data=data,
                out_dir=out_dir / name,
                progress=progress,
            )
            model, _ = load_checkpoint(runs[name][0].best)  # the next stage starts from here
        return _export(runs, checkpoint, meta, cfg, source_metrics, out_dir)


def _export(runs, checkpoint, meta, cfg, source_metrics, out_dir: Path) -> Path:
    # Ties go to the later stage: it has seen the same data with more freedom.
    selected = max(runs, key=lambda k: (runs[k][1]["metrics"]["val_psnr"], k))
    result, _ = runs[selected]
    best = result.best_metrics
    model, _ = load_checkpoint(result.best)
    info = {
        "transfer": "finetune",
        "source_checkpoint": transfer.source_info(checkpoint, meta),
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
