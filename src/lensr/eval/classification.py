"""What SR does to substructure classification: accuracy, ROC/AUC, confusion, hallucination.

A classifier trained on HR simulations (:mod:`lensr.train.classifier`) classifies the HR
images of a dataset, its LR images upsampled with the bicubic baseline, and the SR output
of each given model. The gap between HR and LR is what resolution is worth to the science;
SR should close it without inventing structure. :func:`hallucination_audit` tests the
latter: an SR model trained only on ``cdm`` lenses may paint subhalo-like features into
images of other classes (the study found accuracy 0.33 on such SR images, against 0.92 HR).

All inputs go through :func:`normalize_images` (each image divided by its own 99.5th
percentile), the same rule the classifier was trained with.

Example::

    from lensr.eval.classification import evaluate_classifier
    result = evaluate_classifier("runs/clf/best.safetensors", "test.h5",
                                 sr_models={"rcan": "runs/rcan/best.safetensors"}, out_dir="cls")
    result["variants"]["SR: rcan"]["accuracy"], result["variants"]["HR"]["macro_auc"]
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import auc as sk_auc
from sklearn.metrics import confusion_matrix, roc_curve
from torch import nn
from tqdm import tqdm

from lensr.data.normalize import lr_scale_np
from lensr.data.store import LensDataset, open_dataset
from lensr.errors import LensrError
from lensr.eval.evaluate import check_out_dir
from lensr.models import get_model_info, list_models
from lensr.models.checkpoint import resolve_model

PERCENTILE = 99.5
NORMALIZATION = {"name": "image-percentile", "percentile": PERCENTILE}
"""Recorded in classifier sidecars: every input image is divided by its own percentile."""
HR, LR = "HR", "LR (bicubic)"
SR_ALL, SR_CDM = "SR (all classes)", "SR (cdm only)"
SR_CDM_PROJ = "SR (cdm only) + projection"
ROC_POINTS = 200
"""At most this many points per ROC curve in the JSON files."""
CHUNK = 256
"""Images read, upscaled and classified at a time (memory stays bounded for any N)."""
FIGURES = {"roc": "roc.png", "confusion": "confusion.png"}


# Normalisation and prediction --------------------------------------------------------------


def normalize_images(images, *, percentile: float = PERCENTILE) -> np.ndarray:
    """Divide each image (..., H, W) by its own ``percentile`` (default 99.5) -> float32.

    Scale-free and needing nothing but the image, so HR, upsampled LR and SR images are
    treated identically (there is no LR partner to take a scale from at evaluation).

    Example::

        x = normalize_images(ds.hr[:8])       # (8, 64, 64), 99.5th percentile 1 each
    """
    images = np.asarray(images, dtype=np.float32)
    scale = lr_scale_np(images, percentile=percentile).astype(np.float32)
    return images / scale[..., None, None]


def predict(model: nn.Module, images, *, batch_size: int = 128) -> np.ndarray:
    """Class probabilities (N, K), float64, of a stack of images (N, H, W).

    Images are normalised with :func:`normalize_images` and run ``batch_size`` (default
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
    was_training = model.training
    model.eval()
    out = []
    try:
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                x = torch.from_numpy(normalize_images(images[start : start + batch_size]))
                logits = model(x[:, None].to(device, dtype))
                out.append(torch.softmax(logits.double(), dim=1).cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out)


# Metrics -----------------------------------------------------------------------------------


def _check_scores(labels, probs, class_names) -> tuple[np.ndarray, np.ndarray, list[str]]:
    labels, probs = np.asarray(labels), np.asarray(probs, dtype=np.float64)
    names = [str(c) for c in class_names]
    if probs.ndim != 2 or probs.shape[1] != len(names):
        raise LensrError(f"probs must be (N, {len(names)}), got shape {probs.shape}")
    if labels.shape != (len(probs),):
        raise LensrError(f"labels must be ({len(probs)},), got shape {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= len(names)):
        raise LensrError(f"labels must lie in 0..{len(names) - 1}")
    return labels.astype(np.int64), probs, names


def roc_curves(labels, probs, class_names) -> dict:
    """One-vs-rest ROC curves: ``{"auc": {class: AUC}, "macro_auc": float,
    "roc": {class: {"fpr": array, "tpr": array}}}``.

    Class k's curve scores ``probs[:, k]`` against ``labels == k`` (scikit-learn's
    ``roc_curve``); its AUC equals ``roc_auc_score(labels == k, probs[:, k])``, and the
    macro AUC, the unweighted mean over classes, equals ``roc_auc_score(labels, probs,
    multi_class="ovr", average="macro")``. A class without positives or without negatives
    among ``labels`` has AUC NaN and empty arrays, and the macro AUC averages the others
    (NaN if none is defined).

    Example::

        r = roc_curves([0, 1, 2], np.eye(3), ["none", "cdm", "axion"])
        r["macro_auc"]       # 1.0
    """
    labels, probs, names = _check_scores(labels, probs, class_names)
    aucs, curves = {}, {}
    for k, name in enumerate(names):
        truth = labels == k
        if truth.all() or not truth.any():
            aucs[name], curves[name] = math.nan, {"fpr": np.zeros(0), "tpr": np.zeros(0)}
            continue
        fpr, tpr, _ = roc_curve(truth, probs[:, k])
        aucs[name], curves[name] = float(sk_auc(fpr, tpr)), {"fpr": fpr, "tpr": tpr}
    defined = [v for v in aucs.values() if not math.isnan(v)]
    macro = float(np.mean(defined)) if defined else math.nan
    return {"auc": aucs, "macro_auc": macro, "roc": curves}


def classification_metrics(labels, probs, class_names) -> dict:
    """Accuracy, per-class and macro AUC, confusion matrix (counts, rows = true class,
    columns = predicted), fraction of images predicted as each class, ROC curves.

    Example::

        m = classification_metrics(labels, predict(clf, images), ["none", "cdm", "axion"])
        m["accuracy"], m["confusion"][0]        # row 0: how the "none" images were classified
    """
    labels, probs, names = _check_scores(labels, probs, class_names)
    pred = probs.argmax(1)
    confusion = confusion_matrix(labels, pred, labels=np.arange(len(names)))
    counts = np.bincount(pred, minlength=len(names))
    n = max(len(labels), 1)
    return {
        "n": int(len(labels)),
        "accuracy": float((pred == labels).mean()) if len(labels) else math.nan,
        **roc_curves(labels, probs, names),
        "confusion": confusion.astype(int).tolist(),
        "predicted_fraction": {name: float(c / n) for name, c in zip(names, counts, strict=True)},
    }


def prediction_shift(labels, probs, class_names) -> dict:
    """For each true class, the fraction of its images predicted as each class:
    ``{true: {predicted: fraction}}`` (rows of the row-normalised confusion matrix; a
    class without images has all fractions NaN).

    Example::

        prediction_shift([0, 0, 1], probs, ["none", "cdm"])["none"]["cdm"]
    """
    labels, probs, names = _check_scores(labels, probs, class_names)
    pred = probs.argmax(1)
    out = {}
    for k, name in enumerate(names):
        mine = pred[labels == k]
        out[name] = {
            p: float((mine == j).mean()) if len(mine) else math.nan for j, p in enumerate(names)
        }
    return out


def downsample_curve(fpr, tpr, *, points: int = ROC_POINTS) -> tuple[list, list]:
    """At most ``points`` (default 200) points of a ROC curve, evenly spaced in index and
    always keeping the first and last, as lists (for JSON).

    Example::

        fpr, tpr = downsample_curve(fpr, tpr, points=50)
    """
    fpr, tpr = np.asarray(fpr, dtype=float), np.asarray(tpr, dtype=float)
    if len(fpr) > points:
        keep = np.unique(np.linspace(0, len(fpr) - 1, points).round().astype(int))
        fpr, tpr = fpr[keep], tpr[keep]
    return fpr.tolist(), tpr.tolist()


def _finite(value):
    """NaN -> None, recursively: strict JSON has no NaN."""
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _json_variant(metrics: dict) -> dict:
    roc = {
        name: dict(zip(("fpr", "tpr"), downsample_curve(c["fpr"], c["tpr"]), strict=True))
        for name, c in metrics["roc"].items()
    }
    keys = ("n", "accuracy", "auc", "macro_auc", "confusion", "predicted_fraction")
    return _finite({**{k: metrics[k] for k in keys}, "roc": roc})


# Models -----------------------------------------------------------------------------------


def load_classifier(classifier: str | os.PathLike | nn.Module) -> tuple[nn.Module, dict]:
    """A classifier checkpoint path (or a module) -> ``(model, metadata)`` in eval mode.

    The checkpoint must be a classifier's (its architecture in the "classifier" family);
    the metadata is its sidecar (``class_names``, ``input_size``, ...), or the module's
    ``metadata`` attribute ({} if none).

    Example::

        model, meta = load_classifier("runs/clf/best.safetensors")
        meta["class_names"]
    """
    if isinstance(classifier, nn.Module):
        return classifier.eval(), dict(getattr(classifier, "metadata", None) or {})
    spec = str(classifier)
    if not Path(spec).with_suffix(".safetensors").is_file():
        raise LensrError(f"classifier checkpoint {spec} not found")
    model = resolve_model(spec)
    meta = dict(model.metadata)
    family = _family(meta["arch"])
    if family != "classifier":
        raise LensrError(
            f"{spec} is a checkpoint of {meta['arch']!r} ({family} model), not a classifier: "
            "give a checkpoint written by `lensr classify train`"
        )
    return model.eval(), meta


def _family(arch: str) -> str:
    try:
        return get_model_info(arch).family
    except LensrError:  # a discriminator, or an architecture of a newer lensr
        return "unknown"


def _num_classes(model: nn.Module, meta: dict) -> int | None:
    kwargs = meta.get("kwargs") or getattr(model, "config", {}) or {}
    if "num_classes" in kwargs:
        return int(kwargs["num_classes"])
    fc = getattr(model, "fc", None)
    return int(fc.out_features) if isinstance(fc, nn.Linear) else None


def check_classifier(model: nn.Module, meta: dict, ds: LensDataset, *, name: str) -> None:
    """One-line errors when the classifier does not fit the dataset: a different number or
    order of classes, or images of another size than it was trained on."""
    names = ds.class_names
    k = _num_classes(model, meta)
    if k is not None and k != len(names):
        raise LensrError(
            f"classifier {name} predicts {k} classes, but dataset {ds.path} has "
            f"{len(names)} ({', '.join(names)})"
        )
    trained = meta.get("class_names")
    if trained is not None and list(trained) != names:
        raise LensrError(
            f"classifier {name} was trained on classes {list(trained)}, but dataset "
            f"{ds.path} has {names}: the class order must match"
        )
    size = meta.get("input_size")
    if size is not None and tuple(size) != tuple(ds.hr_shape):
        raise LensrError(
            f"classifier {name} was trained on {size[0]}x{size[1]} px images, but the HR "
            f"images of {ds.path} are {ds.hr_shape[0]}x{ds.hr_shape[1]} px: evaluate on "
            "data of the training size"
        )


def load_sr(spec: str | os.PathLike | nn.Module, *, scale: int, name: str) -> nn.Module:
    """An SR model (baseline name, checkpoint path or module) checked to upscale x``scale``.

    Example::

        net = load_sr("runs/rcan/best.safetensors", scale=2, name="rcan")
    """
    baselines = [info.name for info in list_models("baseline")]
    if isinstance(spec, nn.Module):
        model = spec
    elif str(spec) in baselines:
        model = resolve_model(str(spec), scale=scale)
    else:
        model = resolve_model(str(spec))
        if _family(model.metadata["arch"]) == "classifier":
            raise LensrError(f"SR model {name!r} ({spec}) is a classifier, not an SR model")
    if getattr(model, "scale", None) != scale:
        raise LensrError(
            f"SR model {name!r} upscales x{getattr(model, 'scale', None)}, but the dataset is "
            f"x{scale} (HR/LR)"
        )
    return model


def _spec_text(spec) -> str:
    return type(spec).__name__ if isinstance(spec, nn.Module) else str(spec)


# Shared run machinery -----------------------------------------------------------------------


def _count(ds: LensDataset, max_images: int | None) -> int:
    if max_images is not None and max_images < 1:
        raise LensrError(f"max_images must be >= 1, got {max_images}")
    if len(ds) == 0:
        raise LensrError(f"dataset {ds.path} holds no images")
    return len(ds) if max_images is None else min(max_images, len(ds))


def _classify_variants(
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
                made[name] = ds.hr[start:stop] if model is None else _upscale(lr, model)
            for name, (source, fn) in derived.items():
                made[name] = fn(made[source], lr, start, stop)
            for name, images in made.items():
                probs[name].append(predict(classifier, images, batch_size=batch_size))
            bar.update(stop - start)
    return {name: np.concatenate(p) for name, p in probs.items()}


def _projector(ds: LensDataset) -> Callable:
    """``fn(sr, lr, start, stop)``: SR images back-projected onto their LR images with the
    dataset's own LR instrument and noise model (simulated datasets only)."""
    from lensr.infer.degrade import instrument_for
    from lensr.infer.projection import back_project

    def project(sr, lr, start, stop):
        D, variance = instrument_for(ds, np.arange(start, stop))
        return back_project(sr, lr, D, variance=variance)[0]

    return project


def _upscale(lr: np.ndarray, model: nn.Module) -> np.ndarray:
    from lensr.infer.upscale import upscale_array  # heavy (astropy, FITS): only when used

    return upscale_array(lr, model, batch_size=16)


def _write_all(out: Path, writers: dict[str, Callable[[Path], None]]) -> None:
    """Write every file under a temporary name, then rename all (JSON last): a failure
    leaves no new file behind."""
    out.mkdir(parents=True, exist_ok=True)
    tmps: dict[str, Path] = {}
    try:
        for name, write in writers.items():
            p = Path(name)
            tmps[name] = out / f".{p.stem}.partial-{os.getpid()}{p.suffix}"
            write(tmps[name])
        for name in sorted(tmps, key=lambda k: k.endswith(".json")):
            os.replace(tmps[name], out / name)
    except BaseException:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)
        raise


def _json_writer(result: dict) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")

    return write


def _open(data) -> tuple[LensDataset, bool]:
    if isinstance(data, LensDataset):
        return data, False
    return open_dataset(data), True


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
    ds, owned = _open(data)
    try:
        n = _count(ds, max_images)
        model, meta = load_classifier(classifier)
        check_classifier(model, meta, ds, name=_spec_text(classifier))
        sources: dict[str, nn.Module | None] = {
            HR: None,
            LR: resolve_model("bicubic", scale=ds.scale),
        }
        for name, spec in sr_models.items():
            sources[f"SR: {name}"] = load_sr(spec, scale=ds.scale, name=name)
        probs = _classify_variants(
            ds, model, sources, n=n, batch_size=batch_size, progress=progress
        )
        labels, names = ds.labels[:n], ds.class_names
        metrics = {v: classification_metrics(labels, p, names) for v, p in probs.items()}
        result = {
            "dataset": str(ds.path),
            "classifier": _spec_text(classifier),
            "sr_models": {name: _spec_text(spec) for name, spec in sr_models.items()},
            "n": int(n),
            "class_names": names,
            "class_counts": {c: int((labels == k).sum()) for k, c in enumerate(names)},
            "variants": {v: _json_variant(m) for v, m in metrics.items()},
            "figures": dict(FIGURES),
        }
    finally:
        if owned:
            ds.close()
    _write_all(out, _evaluation_writers(result, metrics, names))
    return result


def _evaluation_writers(result: dict, metrics: dict, names: list[str]) -> dict:
    from lensr.eval.classification_figures import confusion_figure, roc_figure

    return {
        FIGURES["roc"]: lambda path: roc_figure(metrics, names, path),
        FIGURES["confusion"]: lambda path: confusion_figure(metrics, names, path),
        "classification.json": _json_writer(result),
    }


# hallucination_audit -------------------------------------------------------------------------


def _trained_on(model: nn.Module) -> list[str] | None:
    data = (getattr(model, "metadata", None) or {}).get("data") or {}
    classes = data.get("classes")
    return list(classes) if classes is not None else None


def _pick_examples(probs: dict[str, np.ndarray], k: int) -> tuple[np.ndarray, np.ndarray]:
    """Images whose class under cdm-only SR differs from their class on HR; returns (all
    of them, the ``k`` to show). Shown first are those the all-classes SR model classifies
    as HR does (the change is then due to the cdm-only training, not to SR as such), each
    group ordered by the total-variation distance between the HR and cdm-only SR class
    probabilities, largest first, ties by position."""
    hr, sr = probs[HR], probs[SR_CDM]
    changed = np.flatnonzero(hr.argmax(1) != sr.argmax(1))
    tv = 0.5 * np.abs(hr[changed] - sr[changed]).sum(1)
    agrees = probs[SR_ALL][changed].argmax(1) == hr[changed].argmax(1)
    order = changed[np.lexsort((-tv, ~agrees))]
    return changed, order[: max(k, 0)]


def hallucination_audit(
    data: str | os.PathLike | LensDataset,
    *,
    sr_all: str | nn.Module,
    sr_cdm_only: str | nn.Module,
    classifier: str | os.PathLike | nn.Module,
    out_dir: str | os.PathLike,
    examples: int = 4,
    max_images: int | None = None,
    batch_size: int = 128,
    progress: bool = True,
    consistent: bool = False,
) -> dict:
    """Does an SR model invent substructure? Compare the classes predicted on HR, on SR
    from a model trained on all classes (``sr_all``) and on SR from one trained only on
    ``cdm`` lenses (``sr_cdm_only``); both are checkpoint paths (or modules).

    Counts the images whose predicted class under cdm-only SR differs from that on HR, and
    draws ``examples`` (default 4) of them: first those the all-classes SR model leaves in
    their HR class, each group by the largest change in class probabilities.
    ``max_images``, ``batch_size``, ``progress`` as in :func:`evaluate_classifier`.

    ``consistent`` adds the variant "SR (cdm only) + projection": the cdm-only SR images
    projected onto their LR data (:func:`lensr.infer.projection.back_project`, with the
    simulated LR instrument), and ``projection: {changed, restored, new}`` in the result:
    how many images still differ from their HR class after projection, how many of the
    changed ones it brings back, and how many it changes that SR alone did not.

    Writes ``hallucination.json`` (the returned dict: ``dataset``, ``classifier``, ``n``,
    ``class_names``, ``models: {variant: {spec, trained_on}}``, ``variants: {variant:
    {accuracy, prediction: {true: {predicted: fraction}}}}`` for "HR", "SR (all classes)"
    and "SR (cdm only)", ``shift: {true: {predicted: cdm-only minus all-classes
    fraction}}``, ``changed: {count, fraction, by_true_class, sr_all_agrees_with_hr}``
    (images whose class under cdm-only SR differs from HR; the last counts those of them
    the all-classes SR model classifies as HR does: the changes due to the training set),
    ``examples: [{position, index, true, predicted: {variant: class}, probability:
    {variant: [..]}, change}]``, ``figures``) and ``hallucination.png``.

    Example::

        r = hallucination_audit("test.h5", sr_all="runs/rcan/best.safetensors",
                                sr_cdm_only="runs/rcan-cdm/best.safetensors",
                                classifier="runs/clf/best.safetensors", out_dir="audit")
        r["shift"]["none"]["cdm"]     # how many more "none" lenses look like CDM after SR
    """
    if examples < 0:
        raise LensrError(f"examples must be >= 0, got {examples}")
    if batch_size < 1:
        raise LensrError(f"batch size must be >= 1, got {batch_size}")
    out = check_out_dir(out_dir)
    ds, owned = _open(data)
    try:
        if consistent and (ds.params is None or not ds.attrs.get("config")):
            raise LensrError(
                f"{ds.path}: --consistent needs a simulated dataset (its LR instrument)"
            )
        n = _count(ds, max_images)
        model, meta = load_classifier(classifier)
        check_classifier(model, meta, ds, name=_spec_text(classifier))
        sources = {
            HR: None,
            SR_ALL: load_sr(sr_all, scale=ds.scale, name="sr_all"),
            SR_CDM: load_sr(sr_cdm_only, scale=ds.scale, name="sr_cdm_only"),
        }
        derived = {SR_CDM_PROJ: (SR_CDM, _projector(ds))} if consistent else None
        probs = _classify_variants(
            ds, model, sources, n=n, batch_size=batch_size, progress=progress, derived=derived
        )
        labels, names = ds.labels[:n], ds.class_names
        changed, picked = _pick_examples(probs, examples)
        rows = _example_rows(ds, picked, probs, labels, names, sr=sources[SR_CDM])
        result = _audit_result(ds, n, names, labels, probs, changed, rows)
        result["classifier"] = _spec_text(classifier)
        result["models"] = {
            SR_ALL: {"spec": _spec_text(sr_all), "trained_on": _trained_on(sources[SR_ALL])},
            SR_CDM: {"spec": _spec_text(sr_cdm_only), "trained_on": _trained_on(sources[SR_CDM])},
        }
    finally:
        if owned:
            ds.close()
    _write_all(out, _audit_writers(result, rows, names))
    return result


def _example_rows(ds, picked, probs, labels, names, *, sr: nn.Module) -> list[dict]:
    """Images, classes and probabilities of the chosen examples (the figure's rows)."""
    rows = []
    for pos in (int(p) for p in picked):
        rows.append(
            {
                "position": pos,
                "index": int(ds.index[pos]),
                "true": names[int(labels[pos])],
                "predicted": {v: names[int(p[pos].argmax())] for v, p in probs.items()},
                "probability": {v: p[pos].tolist() for v, p in probs.items()},
                "change": float(0.5 * np.abs(probs[HR][pos] - probs[SR_CDM][pos]).sum()),
                "hr": ds.hr[pos],
                "clean": ds.hr_clean[pos] if ds.hr_clean is not None else None,
                "sr": _upscale(ds.lr[pos][None], sr)[0],
            }
        )
    return rows


def _audit_result(ds, n, names, labels, probs, changed, rows) -> dict:
    shifts = {v: prediction_shift(labels, p, names) for v, p in probs.items()}
    is_changed = np.zeros(n, dtype=bool)
    is_changed[changed] = True
    all_agrees = probs[SR_ALL].argmax(1) == probs[HR].argmax(1)
    by_class = {
        name: float(is_changed[labels == k].mean()) if (labels == k).any() else math.nan
        for k, name in enumerate(names)
    }
    result = {
        "dataset": str(ds.path),
        "n": int(n),
        "class_names": names,
        "variants": {
            v: {
                "accuracy": float((p.argmax(1) == labels).mean()),
                "prediction": shifts[v],
            }
            for v, p in probs.items()
        },
        "shift": {
            t: {c: shifts[SR_CDM][t][c] - shifts[SR_ALL][t][c] for c in names} for t in names
        },
        "changed": {
            "count": int(len(changed)),
            "fraction": float(len(changed) / n),
            "by_true_class": by_class,
            "sr_all_agrees_with_hr": int((all_agrees & is_changed).sum()),
        },
        "examples": [
            {k: r[k] for k in ("position", "index", "true", "predicted", "probability", "change")}
            for r in rows
        ],
        "figures": {"hallucination": "hallucination.png"},
    }
    if SR_CDM_PROJ in probs:
        moved = probs[SR_CDM_PROJ].argmax(1) != probs[HR].argmax(1)
        result["projection"] = {
            "changed": {"count": int(moved.sum()), "fraction": float(moved.mean())},
            "restored": int((is_changed & ~moved).sum()),
            "new": int((~is_changed & moved).sum()),
        }
    return _finite(result)


def _audit_writers(result: dict, rows: list[dict], names: list[str]) -> dict:
    from lensr.eval.classification_figures import hallucination_figure

    return {
        "hallucination.png": lambda path: hallucination_figure(
            rows, path, variants=(HR, SR_CDM, SR_ALL)
        ),
        "hallucination.json": _json_writer(result),
    }
