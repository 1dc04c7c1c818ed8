"""Training a :class:`~lensr.models.physics.PhysicsSR` without HR targets.

The loss per image, all terms in units of the LR noise (chi-square per LR pixel):

* **LR consistency** ``mean((D(SR) - y)^2 / var)``: ``D`` maps the model's HR-like output
  to LR (the matching kernel PSF_LR = PSF_HR * K, then the block mean:
  :func:`lensr.infer.degrade.instrument_for` with ``source="hr"``), ``var`` is the LR
  noise variance of the observed image. Without simulation parameters (imported data),
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
(:class:`LRImages`, which cannot read HR); HR images appear in validation only, for
PSNR/SSIM against the noisy and the noise-free HR (:func:`lensr.eval.metrics.score_images`).
Validation scores the network's own deflection (no per-image lens fit, which would cost
~2 s per image); ``lensr evaluate`` runs the exported model as configured, fit included.
"""

from __future__ import annotations

from typing import Literal

import h5py
import lightning as L
import numpy as np
import torch
from pydantic import Field, model_validator
from torch.nn import functional as F

from lensr.data.normalize import lr_scale_np
from lensr.data.store import open_dataset
from lensr.data.torch_data import FullImages, _H5Images, dihedral
from lensr.errors import LensrError
from lensr.eval.metrics import score_images
from lensr.infer.degrade import instrument_for
from lensr.models.physics import PhysicsOutput, PhysicsSR, dirichlet
from lensr.sim.psf import psf_kernel
from lensr.train.config import Runtime
from lensr.train.sr_module import make_scheduler

HR_KEYS = ("hr", "hr_clean")


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


# -- the LR instrument of a dataset -----------------------------------------------------------
def estimate_noise_var(lr: np.ndarray) -> float:
    """Pixel noise variance of an image from the MAD of horizontal pixel differences
    (robust to the lensed arcs, which are smooth on the pixel scale)."""
    d = np.diff(lr, axis=-1).ravel()
    sigma = 1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(2)
    return float(max(sigma**2, 1e-20))


class Instrument:
    """Per-image LR instrument of a dataset, for the images ``positions``.

    ``kernels[i]`` is image i's HR-to-LR kernel (for HR-like images: the matching kernel),
    padded to one odd size, and ``variance(i, lr)`` its LR noise variance per pixel for the
    (raw, unnormalised) LR image ``lr``. ``simulated`` says whether they come from the
    stored simulation parameters (else: a Gaussian matching kernel from ``psf_fwhm`` and
    the MAD noise estimate).
    """

    def __init__(self, path, positions, *, noise: str, psf_fwhm: tuple[float, float]):
        positions = np.asarray(positions)
        with open_dataset(path) as ds:
            self.scale = ds.scale
            has_params = ds.params is not None and bool(ds.attrs.get("config"))
            if noise == "instrument" and not has_params:
                raise LensrError(f"{path} has no simulation parameters: use noise='uniform'")
            self.simulated = has_params and noise != "uniform"
            if self.simulated:
                D, variance = instrument_for(ds, positions, source="hr")
                kernels = torch.flip(D.kernels[:, 0], (-2, -1)).numpy()
                # The variance is affine in the clipped LR model: keep its two coefficients.
                zeros = np.zeros((len(positions), 1, 1))
                self._offset = variance(zeros)[:, 0, 0]
                self._slope = variance(zeros + 1.0)[:, 0, 0] - self._offset
            else:
                lr_fwhm, hr_fwhm = psf_fwhm
                fwhm = float(np.sqrt(max(lr_fwhm**2 - hr_fwhm**2, 1e-6)))
                k = psf_kernel(kind="gaussian", fwhm=fwhm, pixel_scale=1.0)
                kernels = np.repeat(k[None], len(positions), axis=0)
        self.kernels = kernels.astype(np.float32)
        self.row = {int(p): i for i, p in enumerate(positions)}

    def kernel(self, pos: int) -> np.ndarray:
        return self.kernels[self.row[pos]]

    def variance(self, pos: int, lr: np.ndarray) -> np.ndarray:
        if not self.simulated:
            return np.full_like(lr, estimate_noise_var(lr))
        i = self.row[pos]
        return self._offset[i] + self._slope[i] * np.clip(lr, 0, None)


# -- data ------------------------------------------------------------------------------------
class _LROnly:
    """An open HDF5 file that hands out the LR images and refuses the HR ones."""

    def __init__(self, file: h5py.File):
        self._file = file

    def __getitem__(self, key: str):
        if key in HR_KEYS:
            raise PermissionError(f"physics training must not read {key!r}")
        return self._file[key]


class LRImages(torch.utils.data.Dataset):
    """Training items ``(lr, var, kernel)`` for the images ``positions``: the normalised
    LR image (1, h, w), its noise variance in the same units (1, h, w) and its HR-to-LR
    kernel (k, k), under one seeded dihedral transform per (epoch, image) when
    ``augment``. Items are indexed ``epoch * n + i`` (:class:`EpochSampler`).

    The HDF5 file is read through :class:`_LROnly`: HR images cannot be read from here.
    """

    def __init__(self, path, positions, *, instrument: Instrument, seed: int = 0, augment=True):
        self.images = _H5Images(path)
        self.positions = np.asarray(positions)
        self.instrument, self.seed, self.augment = instrument, seed, augment

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, item: int):
        epoch, i = divmod(int(item), len(self.positions))
        pos = int(self.positions[i])
        lr = _LROnly(self.images.file)["lr"][pos]
        norm = lr_scale_np(lr)
        var = self.instrument.variance(pos, lr) / norm**2
        kernel = self.instrument.kernel(pos)
        if self.augment:
            k = int(np.random.default_rng([self.seed, epoch, pos, 7]).integers(0, 8))
            lr, var, kernel = dihedral(lr, k), dihedral(var, k), dihedral(kernel, k)
        as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
        return as_t(lr / norm)[None], as_t(var)[None], as_t(kernel)


class ValImages(FullImages):
    """:class:`FullImages` items plus the LR noise variance and kernel, for val_chi2."""

    def __init__(self, path, positions, *, instrument: Instrument):
        super().__init__(path, positions)
        self.instrument = instrument

    def __getitem__(self, i: int):
        lr, hr, clean, norm, label = super().__getitem__(i)
        pos = int(self.positions[i])
        raw = lr[0].numpy() * float(norm)
        var = self.instrument.variance(pos, raw) / float(norm) ** 2
        kernel = torch.from_numpy(self.instrument.kernel(pos))
        return lr, hr, clean, norm, label, torch.from_numpy(var.astype(np.float32))[None], kernel


# -- a fast fixed-kernel degradation ----------------------------------------------------------
class _FixedCorrelation(torch.autograd.Function):
    """Per-image correlation with constant kernels (N, 1, k, k) whose backward is the same
    forward convolution with flipped kernels (conv2d's own backward is ~10x slower on CPU
    for one-channel images and large kernels)."""

    @staticmethod
    def _apply(x, k):
        n = x.shape[0]
        pad = k.shape[-1] // 2
        return F.conv2d(x.transpose(0, 1), k, padding=pad, groups=n).transpose(0, 1)

    @staticmethod
    def forward(ctx, x, k):
        ctx.save_for_backward(k)
        return _FixedCorrelation._apply(x, k)

    @staticmethod
    def backward(ctx, grad):
        (k,) = ctx.saved_tensors
        return _FixedCorrelation._apply(grad.contiguous(), torch.flip(k, (-2, -1))), None


def degrade(hr: torch.Tensor, kernels: torch.Tensor, scale: int) -> torch.Tensor:
    """``D(hr)`` for one-channel images (N, 1, H, W) and per-image kernels (N, k, k),
    the same operator as :class:`lensr.infer.degrade.Degradation` (convolution, block mean)."""
    flipped = torch.flip(kernels, (-2, -1))[:, None].to(hr)  # conv2d correlates
    return F.avg_pool2d(_FixedCorrelation.apply(hr, flipped), scale)


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
        chi2 = ((degrade(out.sr, kernels, self.model.scale) - lr) ** 2 / var).mean((1, 2, 3))
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


def describe_instrument(instrument: Instrument) -> dict:
    """JSON-able summary of how the LR-consistency term was computed."""
    return {"simulated": instrument.simulated, "kernel_size": int(instrument.kernels.shape[-1])}


__all__ = [
    "HR_KEYS",
    "Instrument",
    "LRImages",
    "PhysicsModule",
    "PhysicsTrainConfig",
    "ValImages",
    "degrade",
    "estimate_noise_var",
]
