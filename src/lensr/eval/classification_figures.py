"""Figures of the classification study: ROC curves, confusion matrices, hallucination examples.

matplotlib's object API on the Agg canvas (no pyplot state, no window); every PNG is
written through a temporary file renamed into place.

Example::

    from lensr.eval.classification_figures import roc_figure
    roc_figure({"HR": metrics_hr, "LR (bicubic)": metrics_lr}, ["none", "cdm", "axion"],
               "roc.png")
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from lensr.eval.figures import save_figure

DPI = 120
PANEL_IN = 3.2
"""Width (inches) of one ROC or confusion panel."""
IMAGE_IN = 1.9
"""Width (inches) of one image panel of the hallucination figure."""
IMAGE_CMAP = "magma"
DIFF_CMAP = "RdBu_r"
CONFUSION_CMAP = "Blues"
CLASS_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _color(k: int) -> str:
    return CLASS_COLORS[k % len(CLASS_COLORS)]


# ROC ------------------------------------------------------------------------------------------


def roc_figure(metrics: Mapping[str, dict], class_names: Sequence[str], path) -> Path:
    """One panel per variant (HR, LR, SR ... side by side), one one-vs-rest ROC curve per
    class with its AUC in the legend; titles give accuracy and macro AUC.

    ``metrics`` maps variant names to :func:`lensr.eval.classification.classification_metrics`
    results (``roc``, ``auc``, ``macro_auc``, ``accuracy``).

    Example::

        roc_figure({"HR": m_hr, "SR: rcan": m_sr}, ["none", "cdm", "axion"], "roc.png")
    """
    fig = _figure(PANEL_IN * len(metrics), PANEL_IN + 0.5)
    axes = fig.subplots(1, len(metrics), squeeze=False, sharey=True)[0]
    for ax, (variant, m) in zip(axes, metrics.items(), strict=True):
        ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="0.6")
        for k, name in enumerate(class_names):
            curve = m["roc"][name]
            if len(curve["fpr"]):
                label = f"{name}  AUC {_fmt(m['auc'][name])}"
                ax.plot(curve["fpr"], curve["tpr"], lw=1.6, color=_color(k), label=label)
        ax.set_title(
            f"{variant}\naccuracy {_fmt(m['accuracy'])} · macro AUC {_fmt(m['macro_auc'])}",
            fontsize=9,
        )
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_aspect("equal")
        ax.set_xlabel("false positive rate", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(loc="lower right", fontsize=7, frameon=True)
    axes[0].set_ylabel("true positive rate", fontsize=8)
    return save_figure(fig, path, dpi=DPI)


# Ladder ---------------------------------------------------------------------------------------

LADDER_STYLE = {
    "HR": ("o", "#1f77b4", True),
    "LR (bicubic)": ("s", "#d62728", True),
    "SR": ("D", "#2ca02c", True),
    "LR-trained on LR": ("s", "#d62728", False),
    "SR-trained on SR": ("D", "#2ca02c", False),
}
"""Marker, colour and filled (HR-trained classifier) or hollow (fair baseline) per variant."""


def ladder_figure(result: dict, path) -> Path:
    """Accuracy per rung (x: rungs in ladder order) with 95 % intervals, one series per
    variant of :data:`LADDER_STYLE` (filled: the HR-trained classifier on HR, LR, SR;
    hollow: the classifiers trained on LR and on SR), and the chance level.

    ``result`` is :func:`lensr.eval.ladder.write_ladder`'s dict (``rungs`` with
    ``label``, ``chance`` and ``variants: {variant: {label, accuracy: {mean, ci_low,
    ci_high}}}``).
    """
    rungs = result["rungs"]
    fig = _figure(max(4.5, 1.3 * len(rungs) + 2.5), 3.6)
    ax = fig.subplots()
    x = np.arange(len(rungs))
    present = [v for v in LADDER_STYLE if any(v in r["variants"] for r in rungs)]
    width = 0.12
    for j, variant in enumerate(present):
        marker, color, filled = LADDER_STYLE[variant]
        xs, mean, err = [], [], [[], []]
        for i, r in enumerate(rungs):
            acc = (r["variants"].get(variant) or {}).get("accuracy")
            if acc:
                xs.append(i + (j - (len(present) - 1) / 2) * width)
                mean.append(acc["mean"])
                err[0].append(acc["mean"] - acc["ci_low"])
                err[1].append(acc["ci_high"] - acc["mean"])
        label = next(r["variants"][variant]["label"] for r in rungs if variant in r["variants"])
        ax.errorbar(
            xs, mean, yerr=err, fmt=marker, color=color, capsize=2, lw=1, ms=5, label=label,
            mfc=color if filled else "white",
        )  # fmt: skip
    ax.axhline(rungs[0]["chance"], ls="--", lw=0.8, color="0.5", label="chance")
    ax.set_xticks(x, [r["label"] for r in rungs], rotation=20, ha="right", fontsize=7)
    ax.set_ylabel("accuracy (95 % interval)", fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, loc="lower left", frameon=True)
    ax.set_title("Classification ladder: DeepLense-faithful -> realistic", fontsize=9)
    return save_figure(fig, path, dpi=DPI)


# Confusion ------------------------------------------------------------------------------------


def confusion_figure(metrics: Mapping[str, dict], class_names: Sequence[str], path) -> Path:
    """One confusion matrix per variant: colour = fraction of the true class (row), text =
    count and percentage.

    Example::

        confusion_figure({"HR": m_hr, "LR (bicubic)": m_lr}, ["none", "cdm", "axion"],
                         "confusion.png")
    """
    k = len(class_names)
    side = max(PANEL_IN, 0.55 * k + 1.2)
    fig = _figure(side * len(metrics) + 0.8, side + 0.3)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    image = None
    for ax, (variant, m) in zip(axes, metrics.items(), strict=True):
        counts = np.asarray(m["confusion"], dtype=float)
        rows = counts.sum(1, keepdims=True)
        frac = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
        image = ax.imshow(frac, cmap=CONFUSION_CMAP, vmin=0, vmax=1)
        for (i, j), c in np.ndenumerate(counts):
            color = "white" if frac[i, j] > 0.6 else "black"
            text = f"{int(c)}\n{100 * frac[i, j]:.0f}%"
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color=color)
        ax.set_xticks(range(k), class_names, fontsize=8)
        ax.set_yticks(range(k), class_names, fontsize=8)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
        ax.set_title(f"{variant}\naccuracy {_fmt(m['accuracy'])}", fontsize=9)
    fig.colorbar(image, ax=list(axes), shrink=0.8, label="fraction of true class")
    return save_figure(fig, path, dpi=DPI)


# Hallucination --------------------------------------------------------------------------------


def _limits(image: np.ndarray) -> tuple[float, float]:
    """A robust linear stretch: 0.5th to 99.8th percentile (never an empty range)."""
    lo, hi = np.percentile(image, [0.5, 99.8])
    return float(lo), float(hi if hi > lo else lo + 1.0)


def _blank(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def _empty_figure(path, message: str) -> Path:
    fig = _figure(6.0, 1.2)
    ax = fig.add_subplot()
    ax.axis("off")
    ax.text(0.5, 0.5, message, ha="center", va="center", fontsize=10, wrap=True)
    return save_figure(fig, path, dpi=DPI)


def _columns(row: dict) -> list[tuple[str, np.ndarray, str]]:
    """(title, image, kind) per column; kind "image" or "diff"."""
    hr, sr, clean = row["hr"], row["sr"], row.get("clean")
    cols = [("HR", hr, "image")]
    if clean is not None:
        cols.append(("noise-free HR", clean, "image"))
    cols.append(("SR (cdm only)", sr, "image"))
    if clean is not None:
        cols.append(("SR − noise-free HR", sr - clean, "diff"))
    cols.append(("SR − HR", sr - hr, "diff"))
    return cols


def _prediction(row: dict, variant: str) -> str:
    p = max(row["probability"][variant])
    return f"pred {row['predicted'][variant]} ({p:.2f})"


def hallucination_figure(
    rows: Sequence[dict],
    path,
    *,
    variants: tuple[str, str, str] = ("HR", "SR (cdm only)", "SR (all classes)"),
) -> Path:
    """Examples where cdm-only SR changed the predicted class, one row each: HR | noise-free
    HR | SR (cdm only) | SR − noise-free HR | SR − HR (the noise-free columns only when the
    data has them). Image panels of a row share one stretch (that of the noise-free HR, else
    the HR), difference panels one symmetric scale; titles give the true class and the
    classes predicted on HR and on cdm-only SR, the row label the class under all-classes SR
    (``variants`` names the HR, cdm-only and all-classes entries of each row's
    ``predicted``/``probability``). No rows: a figure that says so.

    Each row is a dict with ``index``, ``true``, ``predicted``, ``probability``, ``hr``,
    ``sr`` and ``clean`` (None without noise-free images).

    Example::

        hallucination_figure(rows, "hallucination.png")
    """
    if not rows:
        return _empty_figure(
            path, "No image changed its predicted class under the cdm-only SR model."
        )
    hr_name, sr_name, all_name = variants
    ncols = len(_columns(rows[0]))
    fig = _figure(IMAGE_IN * ncols + 0.9, IMAGE_IN * len(rows) + 0.55)
    axes = fig.subplots(len(rows), ncols, squeeze=False)
    for r, row in enumerate(rows):
        cols = _columns(row)
        ref = row["clean"] if row.get("clean") is not None else row["hr"]
        lo, hi = _limits(ref)
        diffs = np.concatenate([c[1].ravel() for c in cols if c[2] == "diff"])
        lim = float(np.percentile(np.abs(diffs), 99.5)) or 1.0
        diff_image = None
        for c, (title, image, kind) in enumerate(cols):
            ax = axes[r, c]
            if kind == "image":
                ax.imshow(image, cmap=IMAGE_CMAP, vmin=lo, vmax=hi, origin="lower")
            else:
                diff_image = ax.imshow(image, cmap=DIFF_CMAP, vmin=-lim, vmax=lim, origin="lower")
            if title == "HR":
                title = f"HR: {_prediction(row, hr_name)}"
            elif title.startswith("SR ("):
                title = f"SR cdm-only: {_prediction(row, sr_name)}"
            ax.set_title(title, fontsize=8)
            _blank(ax)
        label = f"#{row['index']}  true: {row['true']}"
        if all_name in row["predicted"]:
            label += f"\nSR all classes: pred {row['predicted'][all_name]}"
        axes[r, 0].set_ylabel(label, fontsize=9)
        cbar = fig.colorbar(diff_image, ax=axes[r, -1], shrink=0.9, pad=0.02)
        cbar.ax.tick_params(labelsize=6)
        cbar.set_label("difference (image units)", fontsize=6)
    fig.suptitle(
        "Where the SR model trained only on cdm lenses changed the predicted class",
        fontsize=10,
    )
    return save_figure(fig, path, dpi=DPI)
