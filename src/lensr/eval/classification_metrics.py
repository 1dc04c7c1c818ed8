"""Scores of a classifier's class probabilities: accuracy, one-vs-rest ROC/AUC, confusion,
bootstrap intervals (via per-image AUC pseudo-values) and the prediction shift per class.

Every function takes ``labels`` (N,), ``probs`` (N, K) and the K ``class_names``.

Example::

    from lensr.eval.classification_metrics import score_intervals
    score_intervals([0, 1, 2], np.eye(3), ["none", "cdm", "axion"])["accuracy"]["mean"]
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import auc as sk_auc
from sklearn.metrics import confusion_matrix, roc_curve

from lensr.errors import LensrError

ROC_POINTS = 200
"""At most this many points per ROC curve in the JSON files."""


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


def auc_pseudo_values(labels, probs, class_names) -> np.ndarray:
    """Per-image jackknife pseudo-values of the macro AUC (N,): their mean is exactly the
    macro AUC of :func:`roc_curves`, and :func:`lensr.eval.stats.bootstrap_summary` of them
    gives its interval (the jackknife variance of an AUC equals DeLong's, asymptotically).

    Class k's one-vs-rest AUC is the mean placement of its positives among its negatives
    (ties count half); leaving out one image changes it in closed form, so the N
    leave-one-out AUCs cost two sorts. Classes with fewer than two positives or negatives
    are left out (their leave-one-out AUC is undefined); NaN if no class remains.

    Example::

        bootstrap_summary(auc_pseudo_values(labels, probs, names))["ci_low"]
    """
    labels, probs, names = _check_scores(labels, probs, class_names)
    n, per_class = len(labels), []
    for k in range(len(names)):
        truth = labels == k
        pos, neg = probs[truth, k], probs[~truth, k]
        m, q = len(pos), len(neg)
        if m < 2 or q < 2:
            continue
        neg_sorted, pos_sorted = np.sort(neg), np.sort(pos)
        lo, hi = np.searchsorted(neg_sorted, pos), np.searchsorted(neg_sorted, pos, "right")
        place_pos = (lo + 0.5 * (hi - lo)) / q  # of each positive among the negatives
        lo, hi = np.searchsorted(pos_sorted, neg), np.searchsorted(pos_sorted, neg, "right")
        place_neg = (m - hi + 0.5 * (hi - lo)) / m  # of each negative below the positives
        auc_k = place_pos.mean()
        loo = np.empty(n)
        loo[truth] = (m * auc_k - place_pos) / (m - 1)
        loo[~truth] = (q * auc_k - place_neg) / (q - 1)
        per_class.append(n * auc_k - (n - 1) * loo)
    return np.mean(per_class, axis=0) if per_class else np.full(n, math.nan)


def score_intervals(labels, probs, class_names, *, n_boot: int = 2000, seed: int = 0) -> dict:
    """Accuracy and macro AUC, each as :func:`~lensr.eval.stats.bootstrap_summary` (mean,
    std, 95 % ``ci_low``/``ci_high``, n) over images: of the per-image correctness and of
    the :func:`auc_pseudo_values` (macro AUC None if undefined; its interval clipped to
    [0, 1]).

    Example::

        s = score_intervals(labels, probs, ["none", "cdm", "axion"])
        s["accuracy"]["mean"], s["macro_auc"]["ci_low"]
    """
    from lensr.eval.stats import bootstrap_summary

    labels, probs, names = _check_scores(labels, probs, class_names)
    if not len(labels):
        raise LensrError("cannot score an empty set of images")
    boot = {"n_boot": n_boot, "seed": seed}
    pseudo = auc_pseudo_values(labels, probs, names)
    correct = (probs.argmax(1) == labels).astype(np.float64)
    auc = None if np.isnan(pseudo).any() else bootstrap_summary(pseudo, **boot)
    if auc is not None:  # pseudo-values may stray outside [0, 1]; an AUC may not
        auc["ci_low"], auc["ci_high"] = max(auc["ci_low"], 0.0), min(auc["ci_high"], 1.0)
    return {"accuracy": bootstrap_summary(correct, **boot), "macro_auc": auc}


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
