"""The SR LightningModule: L1/MSE training on normalised patches, optional EMA, and
validation with the project's metrics against the noisy and the noise-free HR image."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from lensr.eval.metrics import score_images
from lensr.train.config import TrainConfig
from lensr.train.supervised import SupervisedModule

LOSSES = {"l1": F.l1_loss, "mse": F.mse_loss}


def make_scheduler(optimizer, cfg: TrainConfig, total_steps: int):
    """Per-step LR schedule: cosine to zero, multi-step decay, or constant."""
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    if cfg.schedule == "multistep":
        steps = sorted({max(1, int(m * total_steps)) for m in cfg.milestones})
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, steps, gamma=cfg.gamma)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def record_scores(store: dict[str, list], sr: torch.Tensor, hr: torch.Tensor, clean=None) -> None:
    """Append the per-image PSNR and SSIM of ``sr`` (N, 1, H, W) against ``hr`` to
    ``store["psnr"]`` and ``store["ssim"]``, and against ``clean`` (the noise-free HR, when
    given) to ``store["psnr_clean"]`` and ``store["ssim_clean"]``."""
    pred = sr.detach().float().cpu().numpy()[:, 0]
    scores = score_images(pred, hr.float().cpu().numpy()[:, 0])
    store["psnr"].append(scores["psnr"])
    store["ssim"].append(scores["ssim"])
    if clean is not None:
        clean_scores = score_images(pred, clean.float().cpu().numpy()[:, 0])
        store["psnr_clean"].append(clean_scores["psnr"])
        store["ssim_clean"].append(clean_scores["ssim"])


class SRModule(SupervisedModule):
    """Supervised SR: ``model`` maps normalised LR to normalised HR.

    ``total_steps`` sizes the LR schedule. Validation logs ``val_loss``, ``val_psnr``,
    ``val_ssim`` (against the noisy HR, as the literature does) and ``val_psnr_clean``,
    ``val_ssim_clean`` (against the noise-free HR) when the data has it.
    """

    def __init__(self, *, model: nn.Module, cfg: TrainConfig, total_steps: int):
        super().__init__(model=model, cfg=cfg, total_steps=total_steps, loss_fn=LOSSES[cfg.loss])
        self.ema = (
            AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
            if cfg.ema
            else None
        )
        self._val: dict[str, list] = {}

    @property
    def eval_model(self) -> nn.Module:
        """The weights to validate and export: the EMA when enabled."""
        return self.ema.module if self.ema is not None else self.model

    def forward(self, x):
        return self.eval_model(x)

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self.ema is not None:
            self.ema.update_parameters(self.model)

    def trainable_parameters(self):
        """The parameters the optimizer updates: all of the model's."""
        return self.model.parameters()

    def configure_optimizers(self):
        cfg = self.cfg
        opt = torch.optim.Adam(
            self.trainable_parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
        )
        sched = make_scheduler(opt, cfg, self.total_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # -- validation ---------------------------------------------------------------------
    def on_validation_epoch_start(self):
        self._val = {k: [] for k in ("loss", "psnr", "ssim", "psnr_clean", "ssim_clean")}

    def validation_step(self, batch, batch_idx):
        lr, hr, clean, _, _ = batch
        sr = self.eval_model(lr)
        self._val["loss"].append(self.loss_fn(sr, hr, reduction="none").mean(dim=(1, 2, 3)))
        has_clean = self.trainer.val_dataloaders.dataset.has_clean
        record_scores(self._val, sr, hr, clean if has_clean else None)

    def on_validation_epoch_end(self):
        for key, values in self._val.items():
            if not values:
                continue
            if key == "loss":
                mean = torch.cat(values).mean()
            else:
                mean = torch.tensor(float(np.mean(np.concatenate(values))))
            self.log(f"val_{key}", mean, prog_bar=key in ("psnr", "ssim"), sync_dist=True)
