"""`lensr classify train`: a substructure classifier (ResNet-18) trained on HR images.

The classifier is the instrument that measures what super-resolution does to the science:
it is trained once, on HR simulations, and then asked to classify HR, LR (bicubic-upsampled)
and SR images (:mod:`lensr.eval.classification`).

Every image, in training and at evaluation, is divided by its own 99.5th percentile
(:func:`lensr.eval.classification.normalize_images`). The classifier sees no LR partner
at evaluation, so the SR convention "divide by a scale of the LR image" does not apply;
a scale taken from the image itself is the same rule for every input kind and removes the
source brightness, so the network has to learn morphology, and an SR or upsampled image
whose flux scale is slightly off still lands in the same input range.

Training: cross-entropy, AdamW with a per-step cosine schedule, each HR image under one of
the 8 dihedral symmetries drawn from (seed, epoch, image), so a run is a pure function of
its config. The validation split is stratified by class; validation accuracy and macro
one-vs-rest AUC are logged every epoch.

Outputs in ``out_dir``: ``best.safetensors``/``.json`` (highest validation accuracy, ties
to the higher macro AUC, then the lower loss), ``last.safetensors``/``.json``,
``logs/version_N/metrics.csv`` and ``train_config.json``. The sidecars carry
``task: "classification"``, ``class_names``, ``input_size``, ``normalization``, ``data``
(provenance), ``training`` (the config), ``epoch``, ``step`` and ``metrics``.

Example::

    from lensr.train.classifier import ClassifierConfig, train_classifier
    result = train_classifier(ClassifierConfig(max_epochs=5), data="classify.h5",
                              out_dir="runs/classifier")
    result.best, result.metrics["val_acc"]
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from pydantic import Field
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from lensr.data.store import open_dataset
from lensr.data.torch_data import EpochSampler, _H5Images, dihedral, split_indices
from lensr.errors import LensrError
from lensr.eval.classification import NORMALIZATION, normalize_images, roc_curves
from lensr.models import create_model, get_model_info
from lensr.models.checkpoint import save_checkpoint
from lensr.train.config import Runtime
from lensr.train.trainer import make_trainer, start_run

logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=".*LeafSpec.*")
warnings.filterwarnings("ignore", message=".*does not have many workers.*")

TASK = "classification"
"""The ``task`` recorded in a classifier's sidecar (SR checkpoints have none)."""


class ClassifierConfig(Runtime):
    """One classifier training run (`lensr classify train`), with its defaults."""

    model: str = "resnet18"
    model_kwargs: dict = Field(default_factory=dict)
    """Passed to the model factory, e.g. ``{"small_input": False}`` for a cheap stem;
    ``num_classes`` is taken from the dataset."""
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    batch_size: int = Field(64, ge=1)
    max_epochs: int = Field(20, ge=1)
    max_steps: int = Field(-1, ge=-1)
    """Stop after this many optimizer steps (-1: run max_epochs)."""
    val_fraction: float = Field(0.1, gt=0, lt=1)
    """Share of every class held out for validation."""
    bn_recalibration_images: int = Field(256, ge=0)
    """Before each validation, recompute the BatchNorm statistics as exact averages over
    this many training images (0: keep the running averages). In short runs the running
    averages lag the fast-moving weights and an eval-mode network can be at chance while
    it fits its training batches perfectly."""


@dataclass
class ClassifierResult:
    """Where a run's checkpoints and log are, and the best checkpoint's validation metrics."""

    best: Path
    metrics: dict
    history: Path
    last: Path | None = None


# Data ------------------------------------------------------------------------------------


class LabelledImages(Dataset):
    """Normalised images of one array (default ``hr``) with their labels: ``(x, y)``.

    ``x`` is float32 (1, H, W), ``y`` an int64 class index. With ``augment`` (default
    True) item ``epoch * n + i`` (see :class:`~lensr.data.torch_data.EpochSampler`) shows
    image ``positions[i]`` under the dihedral map drawn from ``(seed, epoch, position)``.

    Example::

        ds = LabelledImages("classify.h5", [0, 1, 2], augment=False)
        x, y = ds[0]        # (1, 64, 64) float32, class index
    """

    def __init__(self, path, positions, *, seed: int = 0, augment: bool = True, key: str = "hr"):
        self.images = _H5Images(path)
        self.positions = np.asarray(positions, dtype=np.int64)
        self.seed, self.augment, self.key = seed, augment, key
        with open_dataset(path) as ds:
            self.labels = ds.labels[self.positions]

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, item: int):
        epoch, i = divmod(int(item), len(self.positions))
        pos = int(self.positions[i])
        image = self.images.file[self.key][pos]
        if self.augment:
            k = int(np.random.default_rng([self.seed, epoch, pos]).integers(0, 8))
            image = dihedral(image, k)
        x = torch.from_numpy(np.ascontiguousarray(normalize_images(image)))[None]
        return x, torch.tensor(self.labels[i], dtype=torch.int64)


def stratified_split(
    labels: np.ndarray, *, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation positions, ``val_fraction`` of every class held out (at least
    one image of each class with two or more images; a class of one trains only).

    Example::

        train_pos, val_pos = stratified_split(ds.labels, val_fraction=0.1, seed=0)
    """
    train, val = [], []
    for k in np.unique(labels):
        members = np.flatnonzero(labels == k)
        if len(members) < 2:
            train.append(members)
            continue
        t, v = split_indices(len(members), val_fraction=val_fraction, seed=seed)
        train.append(members[t])
        val.append(members[v])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val or [np.zeros(0, int)]))


def _dataset_facts(data: Path) -> dict:
    with open_dataset(data) as ds:
        names, labels, attrs = ds.class_names, ds.labels, ds.attrs
        size = list(ds.hr_shape)
    if len(names) < 2:
        raise LensrError(f"{data} names {len(names)} class(es); a classifier needs at least 2")
    bad = labels[(labels < 0) | (labels >= len(names))]
    if len(bad):
        raise LensrError(f"{data}: label {int(bad[0])} is outside the classes {names}")
    return {"names": names, "labels": labels, "attrs": attrs, "size": size}


def _loaders(cfg: ClassifierConfig, data: Path, facts: dict):
    train_pos, val_pos = stratified_split(
        facts["labels"], val_fraction=cfg.val_fraction, seed=cfg.seed
    )
    if len(val_pos) == 0:
        raise LensrError(f"{data} holds too few images per class to hold out a validation set")
    workers = {"num_workers": cfg.num_workers, "persistent_workers": cfg.num_workers > 0}
    train_set = LabelledImages(data, train_pos, seed=cfg.seed)
    train = DataLoader(
        train_set,
        batch_size=cfg.batch_size,
        sampler=EpochSampler(len(train_set), seed=cfg.seed),
        **workers,
    )
    val = DataLoader(
        LabelledImages(data, val_pos, augment=False), batch_size=cfg.batch_size, **workers
    )
    calibration = None
    if cfg.bn_recalibration_images:
        pick = np.random.default_rng([cfg.seed, 0xB7]).permutation(len(train_pos))
        subset = np.sort(train_pos[pick[: cfg.bn_recalibration_images]])
        calibration = DataLoader(
            LabelledImages(data, subset, augment=False), batch_size=cfg.batch_size
        )
    attrs, labels = facts["attrs"], facts["labels"]
    provenance = {
        "path": str(data),
        "preset": str(attrs.get("preset", attrs.get("producer", ""))),
        "seed": int(attrs["seed"]) if "seed" in attrs else None,
        "n_train": len(train_pos),
        "n_val": len(val_pos),
        "class_counts": {n: int((labels == k).sum()) for k, n in enumerate(facts["names"])},
        "images": "hr",
    }
    return train, val, calibration, provenance


# Model -----------------------------------------------------------------------------------


def build_classifier(cfg: ClassifierConfig, *, num_classes: int) -> nn.Module:
    """The seeded classifier network for ``num_classes`` classes.

    Example::

        model = build_classifier(ClassifierConfig(), num_classes=3)   # ResNet-18
    """
    info = get_model_info(cfg.model)
    if info.family != "classifier":
        raise LensrError(f"{cfg.model!r} is not a classifier (see `lensr models`)")
    kwargs = dict(cfg.model_kwargs)
    if kwargs.setdefault("num_classes", num_classes) != num_classes:
        raise LensrError(
            f"model_kwargs.num_classes is {kwargs['num_classes']}, "
            f"but the dataset has {num_classes} classes"
        )
    torch.manual_seed(cfg.seed)
    return create_model(cfg.model, **kwargs)


def _macro_auc(labels: np.ndarray, probs: np.ndarray, names: list[str]) -> tuple[float, dict]:
    curves = roc_curves(labels, probs, names)
    return curves["macro_auc"], curves["auc"]


class ClassifierModule(L.LightningModule):
    """Cross-entropy training of ``model``; validation logs ``val_loss``, ``val_acc``,
    ``val_auc`` (macro one-vs-rest) and ``val_auc_<class>``; NaN where a class is absent
    from the validation set."""

    def __init__(self, *, model: nn.Module, cfg: ClassifierConfig, total_steps: int, names):
        super().__init__()
        self.model, self.cfg, self.total_steps, self.names = model, cfg, total_steps, names
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self.model(x), y)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.AdamW(
            self.model.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay
        )
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(self.total_steps, 1))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_validation_epoch_start(self):
        self._val = []

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self._val.append((self.model(x).float(), y))

    def on_validation_epoch_end(self):
        if not self._val:
            return
        logits = torch.cat([v[0] for v in self._val])
        labels = torch.cat([v[1] for v in self._val])
        if self.trainer.world_size > 1:
            logits = self.all_gather(logits).flatten(0, 1)
            labels = self.all_gather(labels).flatten(0, 1)
        loss = F.cross_entropy(logits, labels)
        acc = (logits.argmax(1) == labels).float().mean()
        probs = torch.softmax(logits, 1).cpu().double().numpy()
        macro, per_class = _macro_auc(labels.cpu().numpy(), probs, self.names)
        # Every rank holds the same gathered values; syncing them just says so to Lightning.
        sync = {"sync_dist": self.trainer.world_size > 1}
        self.log("val_loss", loss, **sync)
        self.log("val_acc", acc, prog_bar=True, **sync)
        self.log("val_auc", torch.tensor(macro), prog_bar=True, **sync)
        for name, value in per_class.items():
            self.log(f"val_auc_{name}", torch.tensor(value), **sync)


class RecalibrateBatchNorm(Callback):
    """Before every validation, replace each BatchNorm layer's running mean and variance by
    their exact average over the batches of ``loader`` (Wu & Johnson 2021, "precise BN")."""

    def __init__(self, loader: DataLoader):
        self.loader = loader

    @torch.no_grad()
    def on_validation_epoch_start(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        norms = [m for m in pl_module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the calibration batches
        was_training = pl_module.training
        pl_module.train()
        try:
            for x, _ in self.loader:
                pl_module.model(x.to(pl_module.device))
        finally:
            for m, momentum in zip(norms, momenta, strict=True):
                m.momentum = momentum
            pl_module.train(was_training)


# Export ----------------------------------------------------------------------------------


def _rank_key(metrics: dict) -> tuple[float, float, float]:
    """Higher is better: accuracy, then macro AUC, then lower validation loss."""
    auc = metrics.get("val_auc", math.nan)
    return metrics["val_acc"], -math.inf if math.isnan(auc) else auc, -metrics["val_loss"]


class ExportClassifier(Callback):
    """After every validation: ``last.safetensors``, and ``best.safetensors`` when the
    validation accuracy improves (ties: higher macro AUC, then lower loss); both with full
    sidecars."""

    def __init__(self, out_dir: Path, metadata: dict):
        self.out_dir, self.metadata = out_dir, metadata
        self.best_key: tuple[float, ...] = (-math.inf,) * 3
        self.best_metrics: dict = {}
        self.last_metrics: dict = {}

    def state_dict(self):
        return {
            "best_key": list(self.best_key),
            "best_metrics": self.best_metrics,
            "last_metrics": self.last_metrics,
        }

    def load_state_dict(self, state):
        self.best_key, self.best_metrics = tuple(state["best_key"]), state["best_metrics"]
        self.last_metrics = state["last_metrics"]

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")}
        if trainer.is_global_zero and "val_acc" in metrics:
            self.last_metrics = {
                "epoch": trainer.current_epoch,
                "step": trainer.global_step,
                **metrics,
            }
            self._save(pl_module, "last", self.last_metrics)
            if _rank_key(metrics) > self.best_key:
                self.best_key, self.best_metrics = _rank_key(metrics), self.last_metrics
                self._save(pl_module, "best", self.best_metrics)
        # Full state (optimizer, schedule, this callback's best so far) for --resume; every
        # rank takes part. Not after the extra validation that follows fit().
        if trainer.state.fn == "fit":
            trainer.save_checkpoint(self.out_dir / "lightning" / "last.ckpt")

    def _save(self, pl_module, name: str, metrics: dict):
        meta = {**self.metadata, "epoch": metrics.get("epoch"), "step": metrics.get("step")}
        meta["metrics"] = {k: _json_float(v) for k, v in metrics.items() if k.startswith("val_")}
        save_checkpoint(pl_module.model, self.out_dir / f"{name}.safetensors", metadata=meta)


def _json_float(value: float) -> float | None:
    return None if math.isnan(value) else value


# Entry point ------------------------------------------------------------------------------


def train_classifier(
    cfg: ClassifierConfig,
    *,
    data: str | Path,
    out_dir: str | Path,
    progress: bool = True,
    resume: bool = False,
    callbacks: list[Callback] | None = None,
) -> ClassifierResult:
    """Train ``cfg.model`` to classify the HR images of ``data``; write into ``out_dir``.

    ``out_dir`` must not hold a run already, unless ``resume`` (default False) continues an
    interrupted one with the same config from its last validation; on CPU the result is
    then identical to an uninterrupted run, as it is for the same config and seed.
    ``progress`` (default True) shows a bar; ``callbacks`` are extra Lightning callbacks.

    Example::

        result = train_classifier(ClassifierConfig(max_epochs=10), data="classify.h5",
                                  out_dir="runs/classifier", progress=False)
        result.metrics["val_acc"], result.metrics["val_auc"]
    """
    data, out_dir = Path(data), Path(out_dir)
    facts = _dataset_facts(data)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    train_loader, val_loader, calibration, provenance = _loaders(cfg, data, facts)
    steps_per_epoch = len(train_loader)
    total = cfg.max_steps if cfg.max_steps > 0 else cfg.max_epochs * steps_per_epoch
    model = build_classifier(cfg, num_classes=len(facts["names"]))
    module = ClassifierModule(model=model, cfg=cfg, total_steps=total, names=facts["names"])
    ckpt = start_run(cfg, out_dir, resume)
    metadata = {
        "task": TASK,
        "class_names": facts["names"],
        "input_size": facts["size"],
        "normalization": NORMALIZATION,
        "data": provenance,
        "training": json.loads(cfg.model_dump_json()),
    }
    export = ExportClassifier(out_dir, metadata)
    trainer = make_trainer(
        cfg,
        out_dir,
        callbacks=([RecalibrateBatchNorm(calibration)] if calibration else [])
        + [export, *(callbacks or [])],
        progress=progress,
        steps_per_epoch=steps_per_epoch,
        tensorboard=False,
        max_epochs=cfg.max_epochs,
        max_steps=cfg.max_steps,
    )
    trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt if resume else None)
    # Only rank 0 exports; every DDP rank must take the same branch below.
    if trainer.strategy.broadcast(export.last_metrics.get("step")) != trainer.global_step:
        # A step budget ended mid-epoch: validate (and export) the final weights too.
        trainer.validate(module, val_loader, verbose=False)
    best_metrics = trainer.strategy.broadcast(export.best_metrics)
    if not best_metrics:
        raise LensrError(f"no validation metrics were produced for {data}")
    return ClassifierResult(
        best=out_dir / "best.safetensors",
        metrics=best_metrics,
        history=Path(trainer.logger.log_dir) / "metrics.csv",
        last=out_dir / "last.safetensors",
    )
