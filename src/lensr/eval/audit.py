"""The hallucination audit: does an SR model invent substructure?

An SR model trained only on ``cdm`` lenses may paint subhalo-like features into images of
other classes (the study found accuracy 0.33 on such SR images, against 0.92 HR).
:func:`hallucination_audit` classifies the HR images, the SR output of a model trained on
all classes and that of one trained on cdm only, counts the images whose class changes,
and draws the most telling of them; with ``consistent`` also the cdm-only SR images after
the consistency projection onto their LR data.

Example::

    from lensr.eval.audit import hallucination_audit
    r = hallucination_audit("test.h5", sr_all="runs/rcan/best.safetensors",
                            sr_cdm_only="runs/rcan-cdm/best.safetensors",
                            classifier="runs/clf/best.safetensors", out_dir="audit")
    r["shift"]["none"]["cdm"]
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable

import numpy as np
from torch import nn

from lensr.data.store import LensDataset
from lensr.errors import LensrError
from lensr.eval.classification import (
    HR,
    classify_variants,
    nan_to_none,
    upscale_lr,
)
from lensr.eval.classification_metrics import prediction_shift
from lensr.eval.classify_inputs import classifier_for, count_images, load_sr, open_data, spec_text
from lensr.eval.figure_style import image_meta
from lensr.eval.output_dir import check_out_dir, json_writer, write_all
from lensr.instrument.from_dataset import has_simulated_instrument
from lensr.io import file_lock

SR_ALL, SR_CDM = "SR (all classes)", "SR (cdm only)"
SR_CDM_PROJ = "SR (cdm only) + projection"


def _projector(ds: LensDataset) -> Callable:
    """``fn(sr, lr, start, stop)``: SR images back-projected onto their LR images with the
    dataset's own LR instrument and noise model (simulated datasets only)."""
    from lensr.infer.projection import back_project
    from lensr.instrument.from_dataset import instrument_for

    def project(sr, lr, start, stop):
        D, variance = instrument_for(ds, np.arange(start, stop))
        return back_project(sr, lr, D, variance=variance)[0]

    return project


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
    ``max_images``, ``batch_size``, ``progress`` as in
    :func:`~lensr.eval.classification.evaluate_classifier`.

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
    ``attribution: {any_sr, any_sr_same_class, cdm_training, sr_all_changed}`` (of the
    changed images: how many also change class under the all-classes SR model, so are
    caused by SR as such, and of those how many land in the same class; how many change
    only under cdm-only SR, so are caused by the class-specific training; and how many
    images the all-classes SR model changes in all),
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
    with file_lock(out):  # a second run into `out` is refused, for the whole write
        ds, owned = open_data(data)
        try:
            if consistent and not has_simulated_instrument(ds):
                raise LensrError(
                    f"{ds.path}: --consistent needs a simulated dataset (its LR instrument)"
                )
            n = count_images(ds, max_images)
            model = classifier_for(classifier, ds)
            sources = {
                HR: None,
                SR_ALL: load_sr(sr_all, scale=ds.scale, name="sr_all"),
                SR_CDM: load_sr(sr_cdm_only, scale=ds.scale, name="sr_cdm_only"),
            }
            derived = {SR_CDM_PROJ: (SR_CDM, _projector(ds))} if consistent else None
            probs = classify_variants(
                ds, model, sources, n=n, batch_size=batch_size, progress=progress, derived=derived
            )
            labels, names = ds.labels[:n], ds.class_names
            changed, picked = _pick_examples(probs, examples)
            rows = _example_rows(ds, picked, probs, labels, names, sr=sources[SR_CDM])
            result = _audit_result(ds, n, names, labels, probs, changed, rows)
            result["classifier"] = spec_text(classifier)
            result["models"] = {
                SR_ALL: {"spec": spec_text(sr_all), "trained_on": _trained_on(sources[SR_ALL])},
                SR_CDM: {
                    "spec": spec_text(sr_cdm_only),
                    "trained_on": _trained_on(sources[SR_CDM]),
                },
            }
        finally:
            if owned:
                ds.close()
        write_all(out, _audit_writers(result, rows, names))
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
                "sr": upscale_lr(ds.lr[pos][None], sr)[0],
                "meta": image_meta(ds.attrs),
            }
        )
    return rows


def _audit_result(ds, n, names, labels, probs, changed, rows) -> dict:
    shifts = {v: prediction_shift(labels, p, names) for v, p in probs.items()}
    is_changed = np.zeros(n, dtype=bool)
    is_changed[changed] = True
    all_agrees = probs[SR_ALL].argmax(1) == probs[HR].argmax(1)
    same_flip = probs[SR_ALL].argmax(1) == probs[SR_CDM].argmax(1)
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
        "attribution": {
            "any_sr": int((~all_agrees & is_changed).sum()),
            "any_sr_same_class": int((~all_agrees & same_flip & is_changed).sum()),
            "cdm_training": int((all_agrees & is_changed).sum()),
            "sr_all_changed": int((~all_agrees).sum()),
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
    return nan_to_none(result)


def _audit_writers(result: dict, rows: list[dict], names: list[str]) -> dict:
    from lensr.eval.classification_figures import hallucination_figure

    return {
        "hallucination.png": lambda path: hallucination_figure(
            rows, path, variants=(HR, SR_CDM, SR_ALL)
        ),
        "hallucination.json": json_writer(result),
    }
