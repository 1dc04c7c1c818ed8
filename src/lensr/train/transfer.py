"""What fine-tuning and ADDA share: loading the source model, checking the data and the run
folder, the SR training config of a checkpoint, validating a model as it is, and the
provenance a transferred checkpoint records about its source."""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path

import lightning as L
from torch import nn

from lensr.data.store import open_dataset
from lensr.errors import LensrError
from lensr.models.checkpoint import resolve_model
from lensr.models.common import SRNet
from lensr.train.config import Runtime, TrainConfig
from lensr.train.sr_module import SRModule
from lensr.train.trainer import is_global_zero

SHARED_FIELDS = (
    "val_fraction",
    "max_val_images",
    "patch",
    "batch_size",
    "seed",
    "accelerator",
    "devices",
    "precision",
)
"""The fields of a transfer config that its SR training config takes over as they are."""


def load_source(checkpoint: str | Path) -> tuple[SRNet, dict]:
    """The trained SR model to transfer and its sidecar, with one-line errors for a missing
    file, a baseline (nothing to train) or a non-SR checkpoint.

    >>> model, meta = load_source("runs/sim/best.safetensors")
    """
    model = resolve_model(str(checkpoint))
    meta = getattr(model, "metadata", {})
    if not any(True for _ in model.parameters()):
        raise LensrError(
            f"{checkpoint} has no parameters to transfer: give a trained checkpoint (lensr train)"
        )
    if not isinstance(model, SRNet):
        raise LensrError(f"{checkpoint} is a {meta.get('arch')!r} model, not an SR model")
    return model, meta


def check_data_scale(checkpoint: str | Path, scale: int, data: str | Path) -> dict:
    """The dataset's attributes, after checking that its HR/LR ratio is ``scale``."""
    with open_dataset(data) as ds:
        if ds.scale != scale:
            raise LensrError(
                f"checkpoint {checkpoint} is for scale {scale}, but {data} has scale {ds.scale}"
            )
        return dict(ds.attrs)


def check_new_out(out_dir: Path, *names: str) -> None:
    """Refuse to mix a new run into a folder that already holds one. Checked by the reporting
    process only: the other DDP ranks start after it and find its fresh folders."""
    if not is_global_zero():
        return
    taken = [n for n in names if (out_dir / n).exists()]
    if taken:
        raise LensrError(f"{out_dir} already holds a run ({taken[0]}): use a new --out")


def source_train_config(
    meta: dict, cfg: Runtime, *, copy: tuple[str, ...] = (), **fields
) -> TrainConfig:
    """The SR :class:`TrainConfig` of the model in the checkpoint sidecar ``meta`` (its
    architecture, kwargs and scale), with ``cfg``'s :data:`SHARED_FIELDS`, the fields of
    ``cfg`` named in ``copy``, and ``fields`` as given."""
    return TrainConfig(
        model=meta["arch"],
        model_kwargs=meta["kwargs"],
        scale=meta["scale"],
        **{name: getattr(cfg, name) for name in SHARED_FIELDS + tuple(copy)},
        **fields,
    )


def validate_model(model: nn.Module, val_loader, cfg: TrainConfig) -> dict[str, float]:
    """The validation metrics of ``model`` as-is (the SRModule's, e.g. ``val_psnr``)."""
    trainer = L.Trainer(
        accelerator=cfg.accelerator,
        devices=1,
        precision=cfg.precision,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    module = SRModule(model=model, cfg=cfg, total_steps=1)
    (metrics,) = trainer.validate(module, val_loader, verbose=False)
    return {k: float(v) for k, v in metrics.items()}


def source_info(checkpoint: str | Path, meta: dict) -> dict:
    """What a transferred checkpoint records about the model it started from."""
    return {
        "path": str(checkpoint),
        "arch": meta.get("arch"),
        "data": meta.get("data"),
        "metrics": meta.get("metrics"),
    }


@contextmanager
def quiet_eval_mode_warning():
    """Silence Lightning's warning about modules in eval mode: ours are on purpose."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*module\(s\) in eval mode")
        yield
