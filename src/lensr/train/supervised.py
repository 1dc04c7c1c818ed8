"""The supervised Lightning module base: one network, one loss of its output against a
target, the training step that logs ``train_loss``. SR and the classifier build on it."""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
from torch import nn


class SupervisedModule(L.LightningModule):
    """Trains ``model`` on ``(input, target)`` batches with ``loss_fn(model(input), target)``.

    ``cfg`` (the run's config) and ``total_steps`` (sizing the LR schedule) are kept for
    the subclass's ``configure_optimizers`` and validation.
    """

    def __init__(
        self,
        *,
        model: nn.Module,
        cfg,
        total_steps: int,
        loss_fn: Callable[..., torch.Tensor],
    ):
        super().__init__()
        self.model, self.cfg, self.total_steps = model, cfg, total_steps
        self.loss_fn = loss_fn

    def training_step(self, batch, batch_idx):
        inputs, targets = batch
        loss = self.loss_fn(self.model(inputs), targets)
        self.log("train_loss", loss, prog_bar=True, on_step=True, on_epoch=True)
        return loss
