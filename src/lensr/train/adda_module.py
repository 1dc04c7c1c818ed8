"""The ADDA game of :mod:`lensr.train.adda`: the feature discriminator, the Lightning module
that alternates one discriminator and one target-encoder step, and the callback that tracks
every validation (and the best weights by val_psnr)."""

from __future__ import annotations

import copy

import torch
from lightning.pytorch.callbacks import Callback
from torch import nn
from torch.nn import functional as F

from lensr.models.common import SRNet, split_parameters
from lensr.train.config import ADDAConfig, TrainConfig
from lensr.train.sr_module import SRModule


class FeatureDiscriminator(nn.Module):
    """Domain discriminator on (N, C, H, W) feature maps -> (N, 1) logits: conv 3x3 then two
    stride-2 convs (LeakyReLU 0.2), global average pooling, one linear layer."""

    def __init__(self, *, in_channels: int, channels: int = 64):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(channels, 2 * channels, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(2 * channels, 1)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(feats))


def feature_channels(model: SRNet) -> int:
    """Channels of ``model.encode``'s output."""
    with torch.no_grad():
        return int(model.encode(torch.zeros(1, model.config.get("in_channels", 1), 8, 8)).shape[1])


class ADDAModule(SRModule):
    """The ADDA game; ``self.model`` is the target network (target encoder + the source's
    frozen upsampler) that validation scores and export saves."""

    def __init__(self, *, source: SRNet, cfg: ADDAConfig, monitor_cfg: TrainConfig):
        target = copy.deepcopy(source)
        super().__init__(model=target, cfg=monitor_cfg, total_steps=cfg.steps)
        self.adda = cfg
        self.source = source.eval().requires_grad_(False)
        _, upsampler = split_parameters(target)
        for name, p in target.named_parameters():
            p.requires_grad_(name not in set(upsampler))
        self.discriminator = FeatureDiscriminator(
            in_channels=feature_channels(source), channels=cfg.disc_channels
        )
        self.automatic_optimization = False

    def set_modes(self):
        self.source.eval()
        self.model.train()
        self.discriminator.train()

    def on_fit_start(self):
        self.set_modes()

    def on_train_epoch_start(self):
        self.set_modes()

    def configure_optimizers(self):
        cfg = self.adda
        encoder = [p for p in self.model.parameters() if p.requires_grad]
        opt_t = torch.optim.Adam(encoder, lr=cfg.lr, betas=cfg.betas)
        opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=cfg.disc_lr, betas=cfg.betas)
        return [opt_t, opt_d]

    def training_step(self, batch, batch_idx):
        cfg = self.adda
        opt_t, opt_d = self.optimizers()
        source_lr, target_lr = batch
        with torch.no_grad():
            f_source = self.source.encode(source_lr)
            f_anchor = self.source.encode(target_lr) if cfg.identity_weight > 0 else None
        f_target = self.model.encode(target_lr)

        # Discriminator: source features are "1", target features "0".
        d_source, d_target = self.discriminator(f_source), self.discriminator(f_target.detach())
        d_loss = 0.5 * (
            F.binary_cross_entropy_with_logits(d_source, torch.ones_like(d_source))
            + F.binary_cross_entropy_with_logits(d_target, torch.zeros_like(d_target))
        )
        opt_d.zero_grad()
        self.manual_backward(d_loss)
        opt_d.optimizer.step()  # raw: global_step counts encoder steps only
        d_acc = 0.5 * ((d_source > 0).float().mean() + (d_target < 0).float().mean())

        # Target encoder: inverted labels, its features should pass as source ("1").
        pred = self.discriminator(f_target)
        adv = F.binary_cross_entropy_with_logits(pred, torch.ones_like(pred))
        identity = torch.zeros((), device=adv.device)
        if f_anchor is not None:
            identity = F.l1_loss(f_target, f_anchor) / f_anchor.abs().mean().clamp_min(1e-8)
        loss = cfg.adversarial_weight * adv + cfg.identity_weight * identity
        opt_t.zero_grad()
        self.manual_backward(loss)
        opt_t.step()
        self.log_dict(
            {"d_loss": d_loss, "adv_loss": adv, "identity_loss": identity, "d_acc": d_acc},
            prog_bar=True,
            on_step=True,
            on_epoch=False,
        )
        return loss


class Track(Callback):
    """Records every validation's metrics; keeps a copy of the best weights by val_psnr."""

    def __init__(self):
        self.history: list[dict] = []
        self.best: dict | None = None
        self.best_state: dict | None = None

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val_")}
        row = {"step": trainer.global_step, "metrics": metrics}
        if self.history and self.history[-1]["step"] == row["step"]:
            return
        self.history.append(row)
        if self.best is None or metrics["val_psnr"] > self.best["metrics"]["val_psnr"]:
            self.best = row
            self.best_state = copy.deepcopy(pl_module.model.state_dict())
