"""The classifier network and its training: the seeded ResNet, the Lightning module
(cross-entropy; validation accuracy and one-vs-rest AUC), precise-BN recalibration before
each validation, and the callback that exports ``best``/``last`` safetensors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

from lensr.errors import LensrError
from lensr.eval.classification_metrics import roc_curves
from lensr.models import create_model, get_model_info
from lensr.models.checkpoint import save_checkpoint
from lensr.train.config import ClassifierConfig
from lensr.train.supervised import SupervisedModule


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


class ClassifierModule(SupervisedModule):
    """Cross-entropy training of ``model``; validation logs ``val_loss``, ``val_acc``,
    ``val_auc`` (macro one-vs-rest) and ``val_auc_<class>``; NaN where a class is absent
    from the validation set."""

    def __init__(self, *, model: nn.Module, cfg: ClassifierConfig, total_steps: int, names):
        super().__init__(model=model, cfg=cfg, total_steps=total_steps, loss_fn=F.cross_entropy)
        self.names = names
        self._val: list[tuple[torch.Tensor, torch.Tensor]] = []

    def forward(self, x):
        return self.model(x)

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
