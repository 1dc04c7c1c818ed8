"""`lensr train-physics`: fit a physics-informed SR model on LR images alone.

Same run folder as :func:`lensr.train.fit.train`: ``best.safetensors``/``.json`` (highest
validation PSNR against the noisy HR, which only validation reads),
``last.safetensors``/``.json``, ``logs/version_N/metrics.csv``, ``tb/``,
``lightning/last.ckpt`` and ``train_config.json``. The validation split is the one
``lensr train`` makes with the same seed, so the supervised and the unsupervised models
are validated on the same images.

The model's built-in instrument (``lr_psf_fwhm``, ``hr_psf_fwhm`` in HR pixels) is set
from the dataset's median simulated PSFs unless ``model_kwargs`` gives it; Moffat PSFs
(``observed``) are approximated by Gaussians of the same FWHM inside the model, while the
training loss uses each image's exact kernel.

>>> result = train_physics(PhysicsTrainConfig(max_epochs=5), data="sim.h5",
...                        out_dir="runs/physics")
>>> result.best_metrics["metrics"]["val_psnr_clean"]
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from lensr.data.normalize import SPEC as NORMALIZATION
from lensr.data.store import open_dataset
from lensr.data.torch_data import EpochSampler, split_indices
from lensr.errors import LensrError
from lensr.instrument.from_dataset import LRInstrumentTable
from lensr.models import create_model, get_model_info
from lensr.models.physics import PhysicsSR
from lensr.train.fit import TrainResult, fit_and_export
from lensr.train.physics_data import LRImages, ValImages
from lensr.train.physics_module import PhysicsModule, PhysicsTrainConfig
from lensr.train.trainer import seed_run, start_run, total_steps


def _split(cfg: PhysicsTrainConfig, data: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """Train and validation positions (as `lensr train` makes them) and dataset facts."""
    with open_dataset(data) as ds:
        info = {
            "scale": ds.scale,
            "attrs": ds.attrs,
            "names": ds.class_names,
            "params": ds.params,
            "pixel": float(ds.attrs.get("hr_pixel_scale", 0) or 0),
        }
        labels = ds.labels
    if cfg.scale is not None and cfg.scale != info["scale"]:
        raise LensrError(f"config asks for scale {cfg.scale}, but {data} has scale {info['scale']}")
    usable = np.arange(len(labels))
    if cfg.classes is not None:
        unknown = [c for c in cfg.classes if c not in info["names"]]
        if unknown:
            raise LensrError(f"{data} has no class {unknown[0]!r} (classes: {info['names']})")
        usable = np.flatnonzero(np.isin(labels, [info["names"].index(c) for c in cfg.classes]))
    train_idx, val_idx = split_indices(len(usable), val_fraction=cfg.val_fraction, seed=cfg.seed)
    return usable[train_idx], usable[val_idx][: cfg.max_val_images], info


def instrument_kwargs(info: dict, model_kwargs: dict) -> dict:
    """``lr_psf_fwhm``/``hr_psf_fwhm`` (HR pixels) from the dataset's median simulated PSFs,
    where ``model_kwargs`` does not set them and the dataset has parameters."""
    params, pixel = info["params"], info["pixel"]
    out = {}
    if params is None or not pixel > 0:  # NaN: a mixture of pixel scales
        return out
    for key, field in (("lr_psf_fwhm", "lr_fwhm"), ("hr_psf_fwhm", "hr_fwhm")):
        if key not in model_kwargs:
            out[key] = round(float(np.median(params[field])) / pixel, 4)
    return out


def build_physics_module(
    cfg: PhysicsTrainConfig, *, scale: int, total_steps: int, info: dict
) -> PhysicsModule:
    """The seeded model, with the dataset's instrument, in its Lightning module."""
    model_info = get_model_info(cfg.model)
    if not isinstance(create_model(cfg.model, scale=scale), PhysicsSR):
        raise LensrError(
            f"{cfg.model!r} ({model_info.description}) is not a physics-informed model: "
            "use `lensr train` for it, or a physics model (physics, physics-tiny)"
        )
    kwargs = {
        **instrument_kwargs(info, cfg.model_kwargs),
        "refine_steps": cfg.refine_steps,
        **cfg.model_kwargs,
    }
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, scale=scale, **kwargs)
    return PhysicsModule(model=model, cfg=cfg, total_steps=total_steps)


def _loaders(cfg, data, train_pos, val_pos, *, psf_fwhm):
    instrument = LRInstrumentTable(
        data, np.concatenate((train_pos, val_pos)), noise=cfg.noise, psf_fwhm=psf_fwhm
    )
    train_set = LRImages(data, train_pos, instrument=instrument, seed=cfg.seed, augment=cfg.augment)
    val_set = ValImages(data, val_pos, instrument=instrument)
    workers = {"num_workers": cfg.num_workers, "persistent_workers": cfg.num_workers > 0}
    train = DataLoader(
        train_set,
        batch_size=cfg.batch_size,
        sampler=EpochSampler(len(train_set), seed=cfg.seed),
        **workers,
    )
    val = DataLoader(val_set, batch_size=8, **workers)
    return train, val, instrument


def train_physics(
    cfg: PhysicsTrainConfig,
    *,
    data: str | Path,
    out_dir: str | Path,
    resume: bool = False,
    progress: bool = True,
    callbacks: list[Callback] | None = None,
) -> TrainResult:
    """Train ``cfg.model`` (a physics model) on the LR images of ``data`` into ``out_dir``.

    Deterministic for a seed on CPU. ``resume`` continues an interrupted run;
    ``callbacks`` are extra Lightning callbacks. Returns the paths of the best and last
    checkpoints and the best checkpoint's metadata (``metrics``: val_psnr, val_ssim,
    val_psnr_clean, val_ssim_clean, val_chi2, ...).
    """
    data, out_dir = Path(data), Path(out_dir)
    ckpt = start_run(cfg, out_dir, resume, write=False)  # written once inputs are checked
    seed_run(cfg)
    train_pos, val_pos, info = _split(cfg, data)
    total = total_steps(cfg, -(-len(train_pos) // cfg.batch_size))
    module = build_physics_module(cfg, scale=info["scale"], total_steps=total, info=info)
    mc = module.model.config
    train_loader, val_loader, instrument = _loaders(
        cfg, data, train_pos, val_pos, psf_fwhm=(mc["lr_psf_fwhm"], mc["hr_psf_fwhm"])
    )
    attrs = info["attrs"]
    metadata = {
        "normalization": NORMALIZATION,
        "data": {
            "path": str(data),
            "preset": str(attrs.get("preset", attrs.get("producer", ""))),
            "seed": int(attrs["seed"]) if "seed" in attrs else None,
            "n_train": len(train_pos),
            "n_val": len(val_pos),
            "classes": cfg.classes or info["names"],
        },
        "training": json.loads(cfg.model_dump_json()),
        "supervision": "none: LR images and the LR instrument only (HR for validation)",
        "instrument": instrument.describe(),
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
        grad_clip=cfg.grad_clip,
        save_config=True,
        # grid_sample's CUDA backward has no deterministic kernel: exact on CPU, warn on GPU.
        deterministic=True if cfg.accelerator == "cpu" else "warn",
    )
