"""`lensr classify train`: a substructure classifier (ResNet-18) trained on HR images.

The classifier is the instrument that measures what super-resolution does to the science:
it is trained once, on HR simulations, and then asked to classify HR, LR (bicubic-upsampled)
and SR images (:mod:`lensr.eval.classification`).

Every image, in training and at evaluation, has its border median (the sky) subtracted and
is divided by its own 99.5th percentile (:func:`lensr.eval.classification.normalize_images`).
The classifier sees no LR partner at evaluation, so the SR convention "divide by a scale of
the LR image" does not apply; a scale taken from the image itself is the same rule for every
input kind and removes the source brightness, so the network has to learn morphology, and an
SR or upsampled image whose flux scale is slightly off still lands in the same input range.

Training: cross-entropy, AdamW with a per-step cosine schedule, each HR image under one of
the 8 dihedral symmetries drawn from (seed, epoch, image), so a run is a pure function of
its config. The validation split is stratified by class; validation accuracy and macro
one-vs-rest AUC are logged every epoch.

Outputs in ``out_dir``: ``best.safetensors``/``.json`` (highest validation accuracy, ties
to the higher macro AUC, then the lower loss), ``last.safetensors``/``.json``,
``logs/version_N/metrics.csv`` and ``train_config.json``. The sidecars carry
``task: "classification"``, ``class_names``, ``input_size``, ``normalization``, ``data``
(provenance), ``training`` (the config), ``epoch``, ``step`` and ``metrics``.

The data (labelled images, the stratified split) is in :mod:`lensr.train.classifier_data`,
the network, its Lightning module and the export callback in
:mod:`lensr.train.classifier_module`; this file is the entry point.

Example::

    from lensr.train.classifier import ClassifierConfig, train_classifier
    result = train_classifier(ClassifierConfig(max_epochs=5), data="classify.h5",
                              out_dir="runs/classifier")
    result.best, result.metrics["val_acc"]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from lightning.pytorch.callbacks import Callback

from lensr.errors import LensrError
from lensr.eval.classification import NORMALIZATION
from lensr.train.classifier_data import classifier_loaders, dataset_facts
from lensr.train.classifier_module import (
    ClassifierModule,
    ExportClassifier,
    RecalibrateBatchNorm,
    build_classifier,
)
from lensr.train.config import ClassifierConfig
from lensr.train.trainer import (
    claim_run_folder,
    make_trainer,
    seed_run,
    start_run,
    total_steps,
)

TASK = "classification"
"""The ``task`` recorded in a classifier's sidecar (SR checkpoints have none)."""


@dataclass
class ClassifierResult:
    """Where a run's checkpoints and log are, and the best checkpoint's validation metrics."""

    best: Path
    metrics: dict
    history: Path
    last: Path | None = None


def train_classifier(
    cfg: ClassifierConfig,
    *,
    data: str | Path,
    out_dir: str | Path,
    progress: bool = True,
    resume: bool = False,
    callbacks: list[Callback] | None = None,
) -> ClassifierResult:
    """Train ``cfg.model`` to classify the HR images of ``data``; write into ``out_dir``.

    ``out_dir`` must not hold a run already, unless ``resume`` (default False) continues an
    interrupted one with the same config from its last validation; on CPU the result is
    then identical to an uninterrupted run, as it is for the same config and seed.
    ``progress`` (default True) shows a bar; ``callbacks`` are extra Lightning callbacks.

    Example::

        result = train_classifier(ClassifierConfig(max_epochs=10), data="classify.h5",
                                  out_dir="runs/classifier", progress=False)
        result.metrics["val_acc"], result.metrics["val_auc"]
    """
    data, out_dir = Path(data), Path(out_dir)
    facts = dataset_facts(data)
    seed_run(cfg)
    train_loader, val_loader, calibration, provenance = classifier_loaders(cfg, data, facts)
    steps_per_epoch = len(train_loader)
    total = total_steps(cfg, steps_per_epoch)
    model = build_classifier(cfg, num_classes=len(facts["names"]))
    module = ClassifierModule(model=model, cfg=cfg, total_steps=total, names=facts["names"])
    ckpt = start_run(cfg, out_dir, resume, write=False)  # claim_run_folder writes, below
    metadata = {
        "task": TASK,
        "class_names": facts["names"],
        "input_size": facts["size"],
        "normalization": NORMALIZATION,
        "data": provenance,
        "training": json.loads(cfg.model_dump_json()),
    }
    export = ExportClassifier(out_dir, metadata)
    trainer = make_trainer(
        cfg,
        out_dir,
        callbacks=([RecalibrateBatchNorm(calibration)] if calibration else [])
        + [export, *(callbacks or [])],
        progress=progress,
        steps_per_epoch=steps_per_epoch,
        tensorboard=False,
        max_epochs=cfg.max_epochs,
        max_steps=cfg.max_steps,
    )
    # The run folder, locked against a second run for the whole write, with its config.
    # Rank 0 only: DDP's other ranks re-run this function and must not contend for the lock.
    lock = claim_run_folder(cfg, out_dir, resume) if trainer.is_global_zero else None
    try:
        trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt if resume else None)
        # Only rank 0 exports; every DDP rank must take the same branch below.
        if trainer.strategy.broadcast(export.last_metrics.get("step")) != trainer.global_step:
            # A step budget ended mid-epoch: validate (and export) the final weights too.
            trainer.validate(module, val_loader, verbose=False)
    finally:
        if lock is not None:
            lock.release()
    best_metrics = trainer.strategy.broadcast(export.best_metrics)
    if not best_metrics:
        raise LensrError(f"no validation metrics were produced for {data}")
    return ClassifierResult(
        best=out_dir / "best.safetensors",
        metrics=best_metrics,
        history=Path(trainer.logger.log_dir) / "metrics.csv",
        last=out_dir / "last.safetensors",
    )
