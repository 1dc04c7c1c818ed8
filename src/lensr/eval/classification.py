"""What SR does to substructure classification: accuracy, ROC/AUC, confusion, hallucination.

A classifier trained on HR simulations (:mod:`lensr.train.classifier`) classifies the HR
images of a dataset, its LR images upsampled with the bicubic baseline, and the SR output
of each given model. The gap between HR and LR is what resolution is worth to the science;
SR should close it without inventing structure (:mod:`lensr.eval.audit` tests the latter).
The classifier and SR models are loaded and checked by :mod:`lensr.eval.classify_inputs`.

All inputs go through :func:`normalize_images` (each image's border median subtracted, then
divided by its own 99.5th percentile), the rule the classifier was trained with.

Example::

    from lensr.eval.classification import evaluate_classifier
    result = evaluate_classifier("runs/clf/best.safetensors", "test.h5",
                                 sr_models={"rcan": "runs/rcan/best.safetensors"}, out_dir="cls")
    result["variants"]["SR: rcan"]["accuracy"], result["variants"]["HR"]["macro_auc"]
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from lensr.data.normalize import lr_scale_np
from lensr.data.store import LensDataset
from lensr.errors import LensrError
from lensr.eval.classification_figures import FIGURES, figure_writers
from lensr.eval.classification_metrics import classification_metrics, downsample_curve
from lensr.eval.classify_inputs import (
    classifier_for,
    classifier_label,
    count_images,
    load_sr,
    open_data,
    spec_text,
)
from lensr.eval.output_dir import check_out_dir, json_writer, write_all
from lensr.io import file_lock
from lensr.models.checkpoint import resolve_model

PERCENTILE = 99.5
BORDER = 0.1
NORMALIZATION = {"name": "sky-percentile", "percentile": PERCENTILE, "border": BORDER}
"""Recorded in classifier sidecars: from every input image the median of its border
(``border`` of the side on each edge: the sky) is subtracted, then it is divided by its
own percentile. Classifiers saved before (``"image-percentile"``) get no subtraction."""
LEGACY = "image-percentile"
HR, LR = "HR", "LR (bicubic)"
CHUNK = 256
"""Images read, upscaled and classified at a time (memory stays bounded for any N)."""


# Normalisation and prediction --------------------------------------------------------------


def normalize_images(images, *, spec: dict | None = None) -> np.ndarray:
    """Images (..., H, W) as a classifier sees them -> float32: the median of the border
    (the sky level) subtracted, then each divided by its own 99.5th percentile
    (``spec``: a classifier's recorded ``normalization``, default :data:`NORMALIZATION`;
    ``"image-percentile"`` divides only).

    Scale- and pedestal-free and needing nothing but the image, so HR, upsampled LR and SR
    images, counts, surface brightness and DeepLense's per-image min-max [0, 1] (a sky
    pedestal of ~0.1-0.2) are treated alike.

    Example::

        x = normalize_images(ds.hr[:8])       # (8, 64, 64), 99.5th percentile 1 each
    """
    spec = spec or NORMALIZATION
    x = np.asarray(images, dtype=np.float32)
    if spec.get("name") != LEGACY:
        h, w = x.shape[-2:]
        b = max(1, round(float(spec.get("border", BORDER)) * min(h, w)))
        edges = [x[..., :b, :], x[..., -b:, :], x[..., b:-b, :b], x[..., b:-b, -b:]]
        flat = np.concatenate([e.reshape(*x.shape[:-2], -1) for e in edges], axis=-1)
        x = x - np.median(flat, axis=-1).astype(np.float32)[..., None, None]
    scale = lr_scale_np(x, percentile=float(spec.get("percentile", PERCENTILE)))
    return x / scale.astype(np.float32)[..., None, None]


def predict(model: nn.Module, images, *, batch_size: int = 128) -> np.ndarray:
    """Class probabilities (N, K), float64, of a stack of images (N, H, W).

    Images are normalised with :func:`normalize_images` (by the rule recorded in the
    model's ``metadata["normalization"]``) and run ``batch_size`` (default
    128) at a time under ``torch.inference_mode`` on the model's device, in eval mode
    (its previous mode is restored).

    Example::

        probs = predict(classifier, ds.hr[:100])      # probs.argmax(1): predicted classes
    """
    images = np.asarray(images)
    if images.ndim != 3 or 0 in images.shape:
        raise LensrError(f"predict needs an (N, H, W) stack of images, got shape {images.shape}")
    if not np.isfinite(images).all():
        raise LensrError("the images contain NaN or infinite pixels")
    if batch_size < 1:
        raise LensrError(f"batch size must be >= 1, got {batch_size}")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.float32
    recorded = (getattr(model, "metadata", None) or {}).get("normalization")
    spec = recorded if isinstance(recorded, dict) else None
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                chunk = images[start : start + batch_size]
                x = torch.from_numpy(normalize_images(chunk, spec=spec))
                logits = model(x[:, None].to(device, dtype))
                out.append(torch.softmax(logits.double(), dim=1).cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out)


def nan_to_none(value):
    """NaN -> None, recursively: strict JSON has no NaN."""
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {k: nan_to_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [nan_to_none(v) for v in value]
    return value


def _json_variant(metrics: dict) -> dict:
    roc = {
        name: dict(zip(("fpr", "tpr"), downsample_curve(c["fpr"], c["tpr"]), strict=True))
        for name, c in metrics["roc"].items()
    }
    keys = ("n", "accuracy", "auc", "macro_auc", "confusion", "predicted_fraction")
    return nan_to_none({**{k: metrics[k] for k in keys}, "roc": roc})


# Classifying the variants ------------------------------------------------------------------


def classify_variants(
    ds: LensDataset,
    classifier: nn.Module,
    sources: dict[str, nn.Module | None],
    *,
    n: int,
    batch_size: int,
    progress: bool,
    derived: dict[str, tuple[str, Callable]] | None = None,
) -> dict[str, np.ndarray]:
    """Probabilities (n, K) per variant; a source None means the HR images themselves,
    a module means that model's upscaling of the LR images. ``derived`` adds variants made
    from another's images: ``{name: (source name, fn(images, lr, start, stop) -> images)}``."""
    derived = derived or {}
    probs: dict[str, list[np.ndarray]] = {name: [] for name in [*sources, *derived]}
    with tqdm(total=n, unit="img", disable=not progress, desc="classify") as bar:
        for start in range(0, n, CHUNK):
            stop = min(start + CHUNK, n)
            lr, made = ds.lr[start:stop], {}
            for name, model in sources.items():
                made[name] = ds.hr[start:stop] if model is None else upscale_lr(lr, model)
            for name, (source, fn) in derived.items():
                made[name] = fn(made[source], lr, start, stop)
            for name, images in made.items():
                probs[name].append(predict(classifier, images, batch_size=batch_size))
            bar.update(stop - start)
    return {name: np.concatenate(p) for name, p in probs.items()}


def upscale_lr(lr: np.ndarray, model: nn.Module) -> np.ndarray:
    """``model``'s upscaling of the LR images ``lr`` (16 at a time)."""
    from lensr.infer.arrays import upscale_array

    return upscale_array(lr, model, batch_size=16)


# evaluate_classifier -------------------------------------------------------------------------


def evaluate_classifier(
    classifier: str | os.PathLike | nn.Module,
    data: str | os.PathLike | LensDataset,
    *,
    sr_models: Mapping[str, str | nn.Module] | None = None,
    out_dir: str | os.PathLike,
    max_images: int | None = None,
    batch_size: int = 128,
    progress: bool = True,
) -> dict:
    """Classify the HR, bicubic-upsampled LR and SR images of ``data``; write the results.

    ``classifier`` is a checkpoint of `lensr classify train` (or a module); ``sr_models``
    (default none) maps display names to SR specs (baseline names or checkpoint paths,
    as :func:`~lensr.models.checkpoint.resolve_model` takes them, or modules), each giving
    a variant ``"SR: <name>"`` beside ``"HR"`` and ``"LR (bicubic)"``. The first
    ``max_images`` images (default None: all) are classified ``batch_size`` (default 128)
    at a time; ``progress`` (default True) shows a bar. Every check runs before any image
    is classified, and a failure leaves no new file in ``out_dir``.

    Writes ``classification.json`` (the returned dict: ``dataset``, ``classifier``, ``n``,
    ``class_names``, ``class_counts``, ``variants: {name: {n, accuracy, auc: {class: AUC},
    macro_auc, confusion (rows true, columns predicted), predicted_fraction: {class: f},
    roc: {class: {fpr, tpr}}}}`` (ROC curves at most 200 points; undefined AUCs null),
    ``figures``), ``roc.png`` and ``confusion.png``.

    Example::

        r = evaluate_classifier("runs/clf/best.safetensors", "test.h5",
                                sr_models={"rcan": "runs/rcan/best.safetensors"}, out_dir="cls")
        r["variants"]["LR (bicubic)"]["accuracy"], r["variants"]["SR: rcan"]["accuracy"]
    """
    sr_models = dict(sr_models or {})
    if any(not str(name).strip() for name in sr_models):
        raise LensrError("SR model names must not be empty")
    if batch_size < 1:
        raise LensrError(f"batch size must be >= 1, got {batch_size}")
    out = check_out_dir(out_dir)
    with file_lock(out):  # a second run into `out` is refused, for the whole write
        ds, owned = open_data(data)
        try:
            n = count_images(ds, max_images)
            model = classifier_for(classifier, ds)
            sources: dict[str, nn.Module | None] = {
                HR: None,
                LR: resolve_model("bicubic", scale=ds.scale),
            }
            for name, spec in sr_models.items():
                sources[f"SR: {name}"] = load_sr(spec, scale=ds.scale, name=name)
            probs = classify_variants(
                ds, model, sources, n=n, batch_size=batch_size, progress=progress
            )
            labels, names = ds.labels[:n], ds.class_names
            metrics = {v: classification_metrics(labels, p, names) for v, p in probs.items()}
            result = {
                "dataset": str(ds.path),
                "classifier": spec_text(classifier),
                "classifier_label": classifier_label(model),
                "sr_models": {name: spec_text(spec) for name, spec in sr_models.items()},
                "n": int(n),
                "class_names": names,
                "class_counts": {c: int((labels == k).sum()) for k, c in enumerate(names)},
                "variants": {v: _json_variant(m) for v, m in metrics.items()},
                "figures": dict(FIGURES),
            }
        finally:
            if owned:
                ds.close()
        writers = {**figure_writers(metrics, names), "classification.json": json_writer(result)}
        write_all(out, writers)
        return result
