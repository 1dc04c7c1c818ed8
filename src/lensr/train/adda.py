"""`lensr adda`: adversarial discriminative domain adaptation (ADDA) of an SR model's encoder.

ADDA (Tzeng et al., CVPR 2017) as applied to SR by Wang et al. (ICCV 2021, "Unsupervised
real-world super-resolution: a domain adaptation perspective"), and as tried by the study we
reproduce (section 5.2): make the target encoder map observed LR images to features the
simulation-trained upsampler already knows how to decode.

Where this follows the papers:

- The source model (encoder ``M_s`` = ``SRNet.encode``, "classifier" ``C`` =
  ``SRNet.decode``) is trained with supervision on the source domain first (`lensr train`
  on simulations); ADDA starts from its checkpoint.
- The target encoder ``M_t`` has its own (untied) weights, initialised from ``M_s``; ``M_s``
  and the upsampler stay fixed throughout (Tzeng et al.'s fixed source encoder and classifier).
- A domain discriminator ``D`` learns to tell ``M_s(x_s)`` from ``M_t(x_t)`` (binary
  cross-entropy); ``M_t`` is trained with the inverted-label GAN loss
  ``-log D(M_t(x_t))``, one discriminator step then one encoder step per batch.
- Alignment acts on the deep feature maps at LR resolution, the "feature distribution
  alignment" of Wang et al.: features of either degradation should be indistinguishable.
- Training sees source LR images and *unpaired* target LR images only; the target's HR
  images are never used to compute a gradient. The result is ``M_t`` followed by the source
  upsampler, saved as an ordinary checkpoint of the same architecture.

Where it departs (on purpose):

- ``D`` is a small convolutional network over the feature map (3 convs, two of stride 2,
  LeakyReLU, global average pooling, one linear logit) instead of Tzeng et al.'s
  fully connected 500-500-1 network on feature vectors: SR features are spatial maps of any
  size. It is not Wang et al.'s discriminator either.
- An optional content-preserving regulariser (``identity_weight``, default 1.0; 0 gives
  pure ADDA): the L1 distance between ``M_t(x_t)`` and the frozen ``M_s(x_t)`` on the same
  target images, divided by the mean absolute value of ``M_s(x_t)`` so the weight does not
  depend on the architecture's feature scale. Wang et al. add regularisers that keep the
  aligned features near the target domain; ours is a simpler stand-in, not theirs. It is
  there because with ~300 target images pure ADDA is unstable: the study's discriminator
  failed and the encoder degraded (SRResNet: 23.56 dB against 29.99 dB for fine-tuning).
  The relative L1 (~0.3 once the features have moved) stays below the adversarial loss
  (~0.69 at equilibrium) at weight 1; at 0.1 it made no difference on small test runs.
- Only ADDA's two-player game plus that one regulariser: none of Wang et al.'s other
  training terms (their own regularisation losses, any cycle, consistency, pixel-level or
  perceptual loss), and the upsampler is never retrained: it stays the source's, as ADDA
  keeps the source classifier.
- The target encoder trains in train mode, so its batch-norm layers (SRResNet) re-estimate
  their running statistics on target images (an AdaBN-like side effect of ADDA with BN).
- Each step draws ``batch_size`` source and target images with replacement (a pure
  function of seed and step), a random ``patch`` x ``patch`` LR crop of each and one of the
  8 dihedral symmetries; every image is normalised by its own LR scale, as at inference.
- Lightning manual optimisation with Adam (beta1 0.5, the usual GAN choice); the
  discriminator steps through its raw optimizer, so ``global_step`` counts encoder steps.
- Model selection: the weights after the last step (``select_by_val: false``, the default),
  because choosing by validation PSNR peeks at target HR labels that an unsupervised method
  does not have. The validation PSNR on the target dataset's validation split (the same
  split as `lensr train`/`lensr finetune` with the same seed) is computed only to monitor
  the run; ``select_by_val: true`` selects by it and the sidecar says so
  (``"selected_by": "val_psnr"``); ``monitor: false`` never reads the target HR at all.

This file holds the data drawing and the driver; the discriminator and the Lightning module
are in :mod:`lensr.train.adda_module`.

Outputs in ``out_dir``: ``best.safetensors``/``.json`` (the selected checkpoint),
``last.safetensors``/``.json`` (the final weights), ``logs/version_0/metrics.csv`` (losses,
discriminator accuracy, validation metrics), ``tb/`` and ``adda_config.json``.

>>> path = adda("runs/sim/best.safetensors", source_data="sim.h5",
...             target_data="observed.h5", out_dir="runs/adda", cfg=ADDAConfig(steps=2000))
"""

from __future__ import annotations

import copy
import json
import warnings
from contextlib import nullcontext
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from lensr.data.normalize import SPEC as NORMALIZATION
from lensr.data.normalize import lr_scale_np
from lensr.data.store import dataset_provenance, open_dataset
from lensr.data.torch_data import FullImages, H5Images, dihedral, split_indices
from lensr.errors import LensrError
from lensr.io import file_lock, write_text
from lensr.models.checkpoint import save_checkpoint
from lensr.train import transfer
from lensr.train.adda_module import ADDAModule, Track
from lensr.train.config import ADDAConfig, TrainConfig
from lensr.train.trainer import is_global_zero, make_trainer, seed_run


# -- data ----------------------------------------------------------------------------------
class UnpairedLR(Dataset):
    """Item ``i``: ``(source_lr, target_lr)`` normalised LR patches (1, p, p) of two images
    drawn with replacement; crops and flips are a pure function of ``(seed, i)``.

    Only the ``lr`` arrays are ever read, from either file.
    """

    def __init__(self, source, source_positions, target, target_positions, *, patch, seed, n):
        self.domains = (
            (H5Images(source), np.asarray(source_positions)),
            (H5Images(target), np.asarray(target_positions)),
        )
        self.patch, self.seed, self.n = patch, seed, n
        for path in (source, target):
            with open_dataset(path) as ds:
                if patch > min(ds.lr_shape):
                    raise LensrError(f"patch {patch} is larger than the LR images of {path}")

    def __len__(self) -> int:
        return self.n

    def _crop(self, images: H5Images, positions: np.ndarray, rng) -> torch.Tensor:
        pos = int(positions[rng.integers(len(positions))])
        lr = images.file["lr"][pos]
        p = self.patch
        y = int(rng.integers(0, lr.shape[0] - p + 1))
        x = int(rng.integers(0, lr.shape[1] - p + 1))
        crop = dihedral(lr[y : y + p, x : x + p], int(rng.integers(0, 8))) / lr_scale_np(lr)
        return torch.from_numpy(np.ascontiguousarray(crop, dtype=np.float32))[None]

    def __getitem__(self, i: int):
        rngs = [np.random.default_rng([self.seed, int(i), d]) for d in (0, 1)]
        return tuple(self._crop(*dom, rng) for dom, rng in zip(self.domains, rngs, strict=True))


def _provenance(path: Path, attrs: dict, n_train: int, n_val: int) -> dict:
    names = [str(c) for c in attrs.get("class_names", [])]
    return dataset_provenance(path, attrs, n_train=n_train, n_val=n_val, classes=names)


# -- the driver --------------------------------------------------------------------------------
def _split(path: Path, cfg: ADDAConfig) -> tuple[np.ndarray, np.ndarray]:
    with open_dataset(path) as ds:
        n = len(ds.labels)
    return split_indices(n, val_fraction=cfg.val_fraction, seed=cfg.seed)


def _monitor_config(cfg: ADDAConfig, meta: dict) -> TrainConfig:
    # What SRModule's validation needs (loss, no EMA); recorded as "training" in sidecars.
    return transfer.source_train_config(meta, cfg, lr=cfg.lr, max_epochs=1, max_steps=cfg.steps)


def _trainer(cfg: ADDAConfig, out_dir: Path, callbacks: list, progress: bool) -> L.Trainer:
    several = isinstance(cfg.devices, int) and cfg.devices > 1
    if cfg.strategy == "ddp" or (cfg.strategy == "auto" and several):
        # Each step updates either the discriminator or the encoder, never both, so DDP
        # must expect parameters without gradients.
        cfg = cfg.model_copy(update={"strategy": "ddp_find_unused_parameters_true"})
    return make_trainer(
        cfg,
        out_dir,
        callbacks=callbacks,
        progress=progress,
        steps_per_epoch=cfg.steps,
        max_epochs=1,
        max_steps=cfg.steps,
        # Lightning refuses an interval longer than the run; the last step is validated anyway.
        val_check_interval=cfg.val_every if cfg.val_every and cfg.val_every < cfg.steps else None,
    )


def adda(
    checkpoint: str | Path,
    *,
    source_data: str | Path,
    target_data: str | Path,
    out_dir: str | Path,
    cfg: ADDAConfig | None = None,
    progress: bool = True,
) -> Path:
    """Adapt the encoder of the SR model in ``checkpoint`` from ``source_data`` (its
    simulation set; LR only) to ``target_data`` (observed; LR only for training) with ADDA;
    returns ``out_dir/best.safetensors`` (see the module docstring).

    ``cfg`` defaults to ``ADDAConfig()``; ``progress`` (default True) shows a bar.

    >>> best = adda("runs/sim/best.safetensors", source_data="sim.h5",
    ...             target_data="observed.h5", out_dir="runs/adda")
    """
    cfg = cfg or ADDAConfig()
    source_data, target_data, out_dir = Path(source_data), Path(target_data), Path(out_dir)
    source, meta = transfer.load_source(checkpoint)
    src_attrs = transfer.check_data_scale(checkpoint, meta["scale"], source_data)
    tgt_attrs = transfer.check_data_scale(checkpoint, meta["scale"], target_data)
    # Rank 0 only: DDP's other ranks re-run the command and must not contend for the lock.
    with file_lock(out_dir) if is_global_zero() else nullcontext():
        transfer.check_new_out(out_dir, "best.safetensors", "logs")
        out_dir.mkdir(parents=True, exist_ok=True)
        write_text(out_dir / "adda_config.json", cfg.model_dump_json(indent=2))

        seed_run(cfg)
        src_train, _ = _split(source_data, cfg)
        tgt_train, tgt_val = _split(target_data, cfg)
        pairs = UnpairedLR(
            source_data,
            src_train,
            target_data,
            tgt_train,
            patch=cfg.patch,
            seed=cfg.seed,
            n=cfg.steps * cfg.batch_size,
        )
        workers = {"num_workers": cfg.num_workers, "persistent_workers": cfg.num_workers > 0}
        train_loader = DataLoader(pairs, batch_size=cfg.batch_size, shuffle=False, **workers)
        val_set = FullImages(target_data, tgt_val[: cfg.max_val_images]) if cfg.monitor else None
        val_loader = DataLoader(val_set, batch_size=8, **workers) if val_set else None

        monitor_cfg = _monitor_config(cfg, meta)
        source_metrics = None
        if val_loader:
            source_metrics = transfer.validate_model(source, val_loader, monitor_cfg)
        module = ADDAModule(source=source, cfg=cfg, monitor_cfg=monitor_cfg)
        track = Track()
        trainer = _trainer(cfg, out_dir, [track], progress)
        with transfer.quiet_eval_mode_warning(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*but have no `val_dataloader`")
            trainer.fit(module, train_loader, val_loader)
        if val_loader is not None and (not track.history or track.history[-1]["step"] != cfg.steps):
            trainer.validate(module, val_loader, verbose=False)

        info = {
            "transfer": "adda",
            "source_checkpoint": transfer.source_info(checkpoint, meta),
            "source_metrics": source_metrics,
            "normalization": NORMALIZATION,
            "data": _provenance(target_data, tgt_attrs, len(tgt_train), len(val_set or [])),
            "source_data": _provenance(source_data, src_attrs, len(src_train), 0),
            "adda": json.loads(cfg.model_dump_json()),
            "training": json.loads(monitor_cfg.model_dump_json()),
            "target_hr_used_for": _hr_use(cfg),
            "history": track.history,
        }
        return _export(module, track, info, cfg, out_dir)


def _hr_use(cfg: ADDAConfig) -> str:
    if not cfg.monitor:
        return "nothing"
    return "selection" if cfg.select_by_val else "monitoring"


def _export(module: ADDAModule, track: Track, info: dict, cfg: ADDAConfig, out_dir: Path):
    if not is_global_zero():  # rank 0 writes; the other DDP ranks only trained
        return out_dir / "best.safetensors"
    last = track.history[-1] if track.history else {"step": cfg.steps, "metrics": {}}
    model = module.model
    save_checkpoint(
        model, out_dir / "last.safetensors", metadata={**info, "selected_by": "last_step", **last}
    )
    if cfg.select_by_val and track.best is not None:
        model = copy.deepcopy(model)
        model.load_state_dict(track.best_state)
        chosen = {"selected_by": "val_psnr", **track.best}
    else:
        chosen = {"selected_by": "last_step", **last}
    return save_checkpoint(model, out_dir / "best.safetensors", metadata={**info, **chosen})
