"""`lensr train`: fit one SR model on an HDF5 dataset and export safetensors checkpoints.

Outputs in ``out_dir``: ``best.safetensors``/``.json`` (highest validation PSNR),
``last.safetensors``/``.json``, ``logs/version_N/metrics.csv`` (CSV log, one version per
attempt, see :func:`read_history`), ``tb/`` (TensorBoard),
``lightning/last.ckpt`` (full state for ``--resume``) and ``train_config.json``.
"""

from __future__ import annotations

import csv
import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from lensr.data.normalize import SPEC as NORMALIZATION
from lensr.data.store import check_finite_dataset, dataset_provenance, open_dataset
from lensr.data.torch_data import EpochSampler, FullImages, PairPatches, split_indices
from lensr.errors import LensrError
from lensr.models import create_discriminator, create_model, get_model_info
from lensr.models.checkpoint import save_checkpoint
from lensr.train.config import GANConfig, TrainConfig
from lensr.train.gan_module import GANModule
from lensr.train.sr_module import SRModule
from lensr.train.trainer import (
    claim_run_folder,
    make_trainer,
    seed_run,
    start_run,
    total_steps,
)


@dataclass
class TrainResult:
    """Where a run's files are and how well its best checkpoint validated."""

    out_dir: Path
    best: Path
    last: Path
    best_metrics: dict
    history: Path


class ExportCheckpoints(Callback):
    """After every validation: ``last.safetensors``, and ``best.safetensors`` on improvement
    of ``val_psnr``. Weights are the EMA's when enabled; sidecars carry the provenance."""

    def __init__(self, out_dir: Path, metadata: dict):
        self.out_dir, self.metadata = out_dir, metadata
        self.best_psnr = -math.inf
        self.best_metrics: dict = {}
        self.last_metrics: dict = {}

    def state_dict(self):
        return {
            "best_psnr": self.best_psnr,
            "best_metrics": self.best_metrics,
            "last_metrics": self.last_metrics,
        }

    def load_state_dict(self, state):
        self.best_psnr, self.best_metrics = state["best_psnr"], state["best_metrics"]
        self.last_metrics = state["last_metrics"]

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")}
        if trainer.is_global_zero and "val_psnr" in metrics:
            self.last_metrics = self._info(trainer, metrics)
            self._save(pl_module, "last", self.last_metrics)
            if metrics["val_psnr"] > self.best_psnr:
                self.best_psnr, self.best_metrics = metrics["val_psnr"], self.last_metrics
                self._save(pl_module, "best", self.best_metrics)
        # Full state (optimizer, schedule, EMA, this callback's best so far, updated above)
        # for --resume; every rank takes part, rank zero writes.
        trainer.save_checkpoint(self.out_dir / "lightning" / "last.ckpt")

    def on_train_end(self, trainer, pl_module):
        # A budget in steps can end mid-epoch after the last validation: `last` must still be
        # the final weights; its metrics are those of the latest validation, at `validated_step`.
        if (
            trainer.is_global_zero
            and self.last_metrics.get("validated_step") != trainer.global_step
        ):
            info = {
                **self.last_metrics,
                "epoch": trainer.current_epoch,
                "step": trainer.global_step,
            }
            self._save(pl_module, "last", info)

    def _info(self, trainer, metrics: dict) -> dict:
        return {
            **self.metadata,
            "epoch": trainer.current_epoch,
            "step": trainer.global_step,
            "validated_step": trainer.global_step,
            "metrics": metrics,
        }

    def _save(self, pl_module, name: str, info: dict):
        save_checkpoint(pl_module.eval_model, self.out_dir / f"{name}.safetensors", metadata=info)


# ResumeMidEpoch makes the plain DataLoader resume exactly; Lightning cannot know that.
warnings.filterwarnings("ignore", message=".*checkpoint that ended before the epoch ended")


class ResumeMidEpoch(Callback):
    """A run resumed from a mid-epoch checkpoint continues the epoch at the next unseen
    batch, so it ends with the weights of an uninterrupted run (tested bit for bit on one
    CPU device). Lightning itself would restart the epoch's batches from the first."""

    def __init__(self, loader):
        self.loader = loader

    def on_train_start(self, trainer, pl_module):
        sampler = getattr(self.loader, "sampler", None)
        batches = trainer.num_training_batches
        if trainer.ckpt_path is None or not isinstance(sampler, EpochSampler):
            return
        if batches in (0, float("inf")) or trainer.accumulate_grad_batches != 1:
            return
        done = trainer.global_step - trainer.current_epoch * int(batches)
        if 0 < done < batches:
            sampler.set_epoch(trainer.current_epoch)
            sampler.skip_next(done * self.loader.batch_size * trainer.world_size)
            # The iterator was made before this hook; with workers it already holds indices.
            iter(trainer.fit_loop._data_fetcher)


def read_history(out_dir: str | Path) -> list[dict]:
    """The CSV training log of a run, all attempts (resumes) joined in step order; where a
    resumed attempt repeats steps, its rows replace the earlier ones."""
    rows: list[dict] = []
    versions = sorted(
        Path(out_dir, "logs").glob("version_*"), key=lambda p: int(p.name.split("_")[1])
    )
    for version in versions:
        with open(version / "metrics.csv", newline="") as f:
            new = [r for r in csv.DictReader(f)]
        if new:
            first = min(int(r["step"]) for r in new)
            rows = [r for r in rows if int(r["step"]) < first] + new
    return rows


def sr_loaders(cfg: TrainConfig, data: Path):
    """The training (HR/LR patches) and validation (whole images) loaders of ``data`` for
    ``cfg``'s split and classes, its scale, and the data provenance for the sidecars."""
    with open_dataset(data) as ds:
        scale, attrs, labels, names = ds.scale, ds.attrs, ds.labels, ds.class_names
        check_finite_dataset(ds, ("hr", "lr"))  # NaN/inf would train to nonsense
    if cfg.scale is not None and cfg.scale != scale:
        raise LensrError(f"config asks for scale {cfg.scale}, but {data} has scale {scale}")
    usable = np.arange(len(labels))
    if cfg.classes is not None:
        unknown = [c for c in cfg.classes if c not in names]
        if unknown:
            raise LensrError(f"{data} has no class {unknown[0]!r} (classes: {', '.join(names)})")
        usable = np.flatnonzero(np.isin(labels, [names.index(c) for c in cfg.classes]))
    train_idx, val_idx = split_indices(len(usable), val_fraction=cfg.val_fraction, seed=cfg.seed)
    train_pos, val_pos = usable[train_idx], usable[val_idx]
    train_set = PairPatches(data, train_pos, patch=cfg.patch, seed=cfg.seed)
    val_set = FullImages(data, val_pos[: cfg.max_val_images])
    workers = {"num_workers": cfg.num_workers, "persistent_workers": cfg.num_workers > 0}
    train = DataLoader(
        train_set,
        batch_size=cfg.batch_size,
        sampler=EpochSampler(len(train_set), seed=cfg.seed),
        **workers,
    )
    val = DataLoader(val_set, batch_size=8, **workers)
    provenance = dataset_provenance(
        data, attrs, n_train=len(train_pos), n_val=len(val_set), classes=cfg.classes or names
    )
    return train, val, scale, provenance


def build_module(cfg: TrainConfig, *, scale: int, total_steps: int) -> SRModule:
    """The model (seeded) wrapped in its Lightning module (GAN when the model asks for it)."""
    info = get_model_info(cfg.model)
    if not info.trainable or info.family != "sr":
        raise LensrError(f"{cfg.model!r} is not a trainable SR model (see `lensr models`)")
    if cfg.model.startswith("physics"):
        # Its loss needs whole LR images and the instrument, not HR patches.
        raise LensrError(f"{cfg.model!r} trains without HR targets: use `lensr train-physics`")
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, scale=scale, **cfg.model_kwargs)
    if info.gan and cfg.gan is None:
        cfg = cfg.model_copy(update={"gan": GANConfig()})
    if cfg.gan is not None:
        disc = create_discriminator(cfg.gan.discriminator, **cfg.gan.discriminator_kwargs)
        return GANModule(model=model, discriminator=disc, cfg=cfg, total_steps=total_steps)
    return SRModule(model=model, cfg=cfg, total_steps=total_steps)


def train(
    cfg: TrainConfig,
    *,
    data: str | Path | None = None,
    out_dir: str | Path,
    preset: str | list[str] | None = None,
    preset_weights: str | list[float] | None = None,
    preset_reuse: int = 1,
    resume: bool = False,
    progress: bool = True,
    callbacks: list[Callback] | None = None,
    module_factory: Callable[..., SRModule] | None = None,
) -> TrainResult:
    """Train ``cfg.model`` on ``data`` (an HDF5 file) or on pairs streamed from ``preset``
    (names, comma-separated, mixed by ``preset_weights``, ``preset_reuse`` patches per
    simulated image: :mod:`lensr.train.streaming`) into ``out_dir``.

    ``module_factory(cfg, scale=, total_steps=)`` replaces :func:`build_module`, e.g. to
    train an already loaded model (fine-tuning, :mod:`lensr.train.finetune`).

    >>> result = train(TrainConfig(model="rcan-tiny", max_epochs=5), data="sim.h5",
    ...                out_dir="runs/rcan-tiny")
    >>> result.best, result.best_metrics["metrics"]["val_psnr"]
    """
    if (data is None) == (preset is None):
        raise LensrError("give exactly one of --data FILE and --preset NAME[,NAME...]")
    out_dir = Path(out_dir)
    # Nothing is written until every input is checked: fit_and_export then claims the run
    # folder (its lock, the config) just before fitting.
    ckpt = start_run(cfg, out_dir, resume, write=False)
    seed_run(cfg)
    if preset is not None:  # pairs simulated on the fly (lensr.train.streaming)
        from lensr.train.streaming import streaming_loaders

        train_loader, val_loader, scale, provenance = streaming_loaders(
            cfg, preset, weights=preset_weights, out_dir=out_dir, reuse=preset_reuse, resume=resume
        )
    else:
        train_loader, val_loader, scale, provenance = sr_loaders(cfg, Path(data))
    total = total_steps(cfg, len(train_loader))
    module = (module_factory or build_module)(cfg, scale=scale, total_steps=total)
    metadata = {
        "normalization": NORMALIZATION,
        "data": provenance,
        "training": json.loads(cfg.model_dump_json()),
    }
    return fit_and_export(
        cfg,
        module,
        train_loader,
        val_loader,
        out_dir=out_dir,
        metadata=metadata,
        resume_from=ckpt if resume else None,
        callbacks=callbacks,
        progress=progress,
        grad_clip=None if isinstance(module, GANModule) else cfg.grad_clip,
        save_config=True,
    )


def fit_and_export(
    cfg,
    module: L.LightningModule,
    train_loader,
    val_loader,
    *,
    out_dir: Path,
    metadata: dict,
    resume_from: Path | None,
    callbacks: list[Callback] | None,
    progress: bool,
    grad_clip: float | None,
    deterministic: bool | str = True,
    save_config: bool = False,
) -> TrainResult:
    """Fit ``module`` within ``cfg``'s budget (steps, epochs, minutes), validating every
    ``cfg.val_check_interval`` steps or every epoch, exporting ``best``/``last`` safetensors
    with ``metadata``; shared by SR and physics-informed training."""
    export = ExportCheckpoints(out_dir, metadata)
    trainer = make_trainer(
        cfg,
        out_dir,
        callbacks=[export, ResumeMidEpoch(train_loader), *(callbacks or [])],
        progress=progress,
        steps_per_epoch=len(train_loader),
        deterministic=deterministic,
        max_epochs=cfg.max_epochs,
        max_steps=cfg.max_steps,
        max_time={"minutes": cfg.max_time_minutes} if cfg.max_time_minutes else None,
        gradient_clip_val=grad_clip,
        val_check_interval=cfg.val_check_interval,
        check_val_every_n_epoch=None if cfg.val_check_interval else 1,
    )
    # Every input checked (data, model, devices): now the run folder, locked against a
    # second run, with its config.
    # Rank 0 only: DDP's other ranks re-run this function and must not contend for the lock.
    claim = save_config and trainer.is_global_zero
    lock = claim_run_folder(cfg, out_dir, resume_from is not None) if claim else None
    try:
        # weights_only=True: a planted checkpoint never runs code (torch < 2.6 defaults False)
        trainer.fit(module, train_loader, val_loader, ckpt_path=resume_from, weights_only=True)
    finally:
        if lock is not None:
            lock.release()
    # Rank 0 exported; under DDP every rank returns its result.
    best_metrics = trainer.strategy.broadcast(export.best_metrics)
    if not best_metrics:
        raise LensrError("training ended before the first validation: raise the budget")
    return TrainResult(
        out_dir=out_dir,
        best=out_dir / "best.safetensors",
        last=out_dir / "last.safetensors",
        best_metrics=best_metrics,
        history=Path(trainer.loggers[0].log_dir) / "metrics.csv",
    )
