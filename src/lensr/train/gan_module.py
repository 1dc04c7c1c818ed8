"""SRGAN training (Ledig et al. 2017): the generator minimises a content loss plus an
adversarial loss against a discriminator that tells real HR from SR patches."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from lensr.train.config import TrainConfig
from lensr.train.sr_module import SRModule, make_scheduler


class GANModule(SRModule):
    """SR module with a discriminator; manual optimisation of both players."""

    def __init__(
        self, *, model: nn.Module, discriminator: nn.Module, cfg: TrainConfig, total_steps: int
    ):
        super().__init__(model=model, cfg=cfg, total_steps=total_steps)
        self.discriminator = discriminator
        self.automatic_optimization = False

    def configure_optimizers(self):
        cfg, gan = self.cfg, self.cfg.gan
        opt_g = torch.optim.Adam(self.model.parameters(), lr=cfg.lr, betas=cfg.betas)
        opt_d = torch.optim.Adam(
            self.discriminator.parameters(), lr=gan.discriminator_lr, betas=cfg.betas
        )
        return [opt_g, opt_d], [make_scheduler(opt_g, cfg, self.total_steps)]

    def training_step(self, batch, batch_idx):
        gan = self.cfg.gan
        opt_g, opt_d = self.optimizers()
        lr, hr = batch
        sr = self.model(lr)
        content = self.loss_fn(sr, hr)
        adversarial = torch.zeros((), device=sr.device)
        if self.global_step >= gan.pretrain_steps and gan.adversarial_weight > 0:
            real, fake = self.discriminator(hr), self.discriminator(sr.detach())
            d_loss = F.binary_cross_entropy_with_logits(
                real, torch.ones_like(real)
            ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
            opt_d.zero_grad()
            self.manual_backward(d_loss)
            # The raw optimizer: Lightning counts only generator steps as global steps, so
            # max_steps and the schedule mean the same as for non-adversarial training.
            opt_d.optimizer.step()
            self.log("d_loss", d_loss, prog_bar=True, on_step=True, on_epoch=True)
            pred = self.discriminator(sr)
            adversarial = F.binary_cross_entropy_with_logits(pred, torch.ones_like(pred))
        g_loss = gan.content_weight * content + gan.adversarial_weight * adversarial
        opt_g.zero_grad()
        self.manual_backward(g_loss)
        if self.cfg.grad_clip:
            self.clip_gradients(opt_g, gradient_clip_val=self.cfg.grad_clip)
        opt_g.step()
        self.lr_schedulers().step()
        self.log_dict(
            {"train_loss": g_loss, "content_loss": content, "adv_loss": adversarial},
            prog_bar=True,
            on_step=True,
            on_epoch=True,
        )
        return g_loss
