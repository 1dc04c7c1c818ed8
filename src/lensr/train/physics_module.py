"""Training a :class:`~lensr.models.physics.PhysicsSR` without HR targets.

The loss per image, all terms in units of the LR noise (chi-square per LR pixel):

* **LR consistency** ``mean((D(SR) - y)^2 / var)``: ``D`` maps the model's HR-like output
  to LR (the matching kernel PSF_LR = PSF_HR * K, then the block mean: the
  :class:`~lensr.instrument.operators.Degradation` of
  :func:`lensr.instrument.from_dataset.instrument_for` with ``source="hr"``), ``var`` is
  the LR noise variance of the observed image. Without simulation parameters (imported data),
  ``D`` is the Gaussian matching kernel of the model's own PSFs and ``var`` a constant per
  image, estimated from the image (median absolute deviation of pixel differences).
* **source regulariser** ``source_weight * ||grad S||^2 / (mean var * n_lr)``: the term the
  source inversion minimises too, so that the total is the penalised likelihood of the lens
  (a lens that does not identify the multiple images needs a more complex source);
* **residual deflection** smoothness ``||grad alpha_res||^2`` and size ``||alpha_res||^2``
  (per LR pixel, HR pixels squared), like Shankar's variation-density loss;
* the **correction** size, when the model has one.

The batch objective is the mean of log(per-image loss) by default (``log_loss``).

The training batches hold LR images, their noise variance and their LR kernel only
(:class:`lensr.train.physics_data.LRImages`, which cannot read HR); HR images appear in
validation only, for PSNR/SSIM against the noisy and the noise-free HR
(:func:`lensr.eval.metrics.score_images`).
Validation scores the network's own deflection (no per-image lens fit, which would cost
~2 s per image); ``lensr evaluate`` runs the exported model as configured, fit included.
"""

from __future__ import annotations

from typing import Literal

import lightning as L
import numpy as np
import torch
from pydantic import Field, model_validator

from lensr.eval.metrics import score_images
from lensr.instrument.operators import Degradation
from lensr.models.physics import PhysicsOutput, PhysicsSR
from lensr.models.source_inversion import dirichlet
from lensr.train.config import Runtime
from lensr.train.sr_module import make_scheduler


class PhysicsTrainConfig(Runtime):
    """One unsupervised physics-informed run (`lensr train-physics`)."""

    model: str = "physics-tiny"
    model_kwargs: dict = Field(default_factory=dict)
    """Overrides of the model's keyword arguments; ``lr_psf_fwhm``/``hr_psf_fwhm`` (HR
    pixels) default to the dataset's median PSFs when it has simulation parameters."""
    refine_steps: int = Field(40, ge=0)
    """Per-image lens-fit steps the exported model runs at inference (its ``refine_steps``,
    unless ``model_kwargs`` sets it; 0: the network's deflection as it is). Training and
    the val_* metrics use the network's deflection as it is."""
    scale: int | None = None
    classes: list[str] | None = None
    val_fraction: float = Field(0.1, gt=0, lt=1)
    max_val_images: int = Field(32, ge=1)
    batch_size: int = Field(8, ge=1)
    augment: bool = True
    """Random dihedral transforms of the LR images (and of their PSF kernels)."""
    noise: Literal["auto", "instrument", "uniform"] = "auto"
    """LR noise model: the simulated one ("instrument"), one constant per image estimated
    from the image ("uniform"), or "auto": instrument when the data has parameters."""
    source_weight: float | None = Field(None, ge=0)
    """Weight of the source regulariser; None: the model's ``source_reg``."""
    log_loss: bool = True
    """Minimise the batch mean of log(per-image loss): each image has the same minimiser,
    but images whose lens is still far off (loss 10-100x the others) do not dominate."""
    residual_smoothness: float = Field(1.0, ge=0)
    residual_size: float = Field(0.01, ge=0)
    correction_weight: float = Field(1.0, ge=0)
    lr: float = Field(1e-3, gt=0)
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = Field(0.0, ge=0)
    schedule: Literal["cosine", "multistep", "constant"] = "cosine"
    milestones: list[float] = Field(default_factory=lambda: [0.5, 0.75])
    gamma: float = Field(0.5, gt=0, le=1)
    max_epochs: int = Field(10, ge=1)
    max_steps: int = Field(-1, ge=-1)
    max_time_minutes: float | None = Field(None, gt=0)
    val_check_interval: int | None = Field(None, ge=1)
    grad_clip: float | None = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _milestones(self):
        if any(not 0 < m < 1 for m in self.milestones):
            raise ValueError("milestones are fractions of the run, each between 0 and 1")
        return self


# -- the Lightning module --------------------------------------------------------------------
class PhysicsModule(L.LightningModule):
    """Unsupervised training of a :class:`PhysicsSR` (see the module docstring).

    Logs ``train_loss`` and its parts (``train_chi2``, ``train_source``, ``train_residual``)
    and, in validation, ``val_loss`` (the same loss), ``val_chi2``, ``val_psnr``,
    ``val_ssim`` against the noisy HR and ``val_psnr_clean``, ``val_ssim_clean`` against the
    noise-free HR when the data has it, and ``val_theta_e`` (mean Einstein radius, HR px).
    """

    def __init__(self, *, model: PhysicsSR, cfg: PhysicsTrainConfig, total_steps: int):
        super().__init__()
        self.model, self.cfg, self.total_steps = model, cfg, total_steps
        self.source_weight = (
            model.config["source_reg"] if cfg.source_weight is None else cfg.source_weight
        )
        self._val: dict[str, list] = {}

    @property
    def eval_model(self) -> PhysicsSR:
        return self.model

    def forward(self, x):
        return self.model(x)

    def losses(self, lr, var, kernels) -> tuple[dict[str, torch.Tensor], PhysicsOutput]:
        """Per-image loss terms (N,) of a batch, their weighted sum ``loss`` and the
        (detached) mean Einstein radius ``theta_e``; and the model's outputs."""
        out = self.model.run(lr)
        n_lr = lr.shape[-2] * lr.shape[-1]
        mean_var = var.mean((1, 2, 3))
        # Direct convolutions only (no FFT), with the operator's fast hand-written backward.
        D = Degradation(kernels=kernels, scale=self.model.scale, fft_above=None)
        chi2 = ((D(out.sr) - lr) ** 2 / var).mean((1, 2, 3))
        terms = {
            "chi2": chi2,
            "source": self.source_weight * dirichlet(out.source).sum(1) / (mean_var * n_lr),
        }
        if out.residual is not None:
            smooth = dirichlet(out.residual).sum(1) / n_lr
            size = out.residual.pow(2).mean((1, 2, 3))
            terms["residual"] = (
                self.cfg.residual_smoothness * smooth + self.cfg.residual_size * size
            )
        if out.correction is not None:
            terms["correction"] = self.cfg.correction_weight * (
                out.correction.pow(2).mean((1, 2, 3)) / mean_var
            )
        terms["loss"] = sum(terms.values())
        terms["theta_e"] = out.macro["theta_e"].detach()
        return terms, out

    def training_step(self, batch, batch_idx):
        lr, var, kernels = batch
        terms, _ = self.losses(lr, var, kernels)
        for key, value in terms.items():
            if key != "theta_e":
                self.log(
                    f"train_{key}",
                    value.mean(),
                    prog_bar=key == "loss",
                    on_step=True,
                    on_epoch=True,
                )
        loss = terms["loss"]
        return torch.log(loss).mean() if self.cfg.log_loss else loss.mean()

    def configure_optimizers(self):
        cfg = self.cfg
        opt = torch.optim.Adam(
            self.model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
        )
        sched = make_scheduler(opt, cfg, self.total_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    # -- validation ---------------------------------------------------------------------
    def on_validation_epoch_start(self):
        keys = ("loss", "chi2", "theta_e", "psnr", "ssim", "psnr_clean", "ssim_clean")
        self._val = {k: [] for k in keys}

    def validation_step(self, batch, batch_idx):
        lr, hr, clean, _, _, var, kernels = batch
        terms, out = self.losses(lr, var, kernels)
        for key in ("loss", "chi2", "theta_e"):
            self._val[key].append(terms[key].detach().cpu().numpy())
        pred = out.sr.detach().float().cpu().numpy()[:, 0]
        scores = score_images(pred, hr.float().cpu().numpy()[:, 0])
        self._val["psnr"].append(scores["psnr"])
        self._val["ssim"].append(scores["ssim"])
        if self.trainer.val_dataloaders.dataset.has_clean:
            clean_scores = score_images(pred, clean.float().cpu().numpy()[:, 0])
            self._val["psnr_clean"].append(clean_scores["psnr"])
            self._val["ssim_clean"].append(clean_scores["ssim"])

    def on_validation_epoch_end(self):
        for key, values in self._val.items():
            if values:
                mean = torch.tensor(float(np.mean(np.concatenate(values))))
                self.log(f"val_{key}", mean, prog_bar=key in ("psnr", "ssim"), sync_dist=True)


__all__ = ["PhysicsModule", "PhysicsTrainConfig"]
