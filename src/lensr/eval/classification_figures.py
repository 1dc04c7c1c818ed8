"""Figures of the classification study: ROC curves, confusion matrices, the ladder, hallucinations.

Drawn with the shared style of :mod:`lensr.eval.figure_style`: at most the page width,
text at least :data:`~lensr.eval.figure_style.MIN_FONT_PT` (wide comparisons wrap onto
more rows), colour bars with units, arcsec scale bars on images, PNGs written atomically.
Each ``*_layout`` function returns the Figure (the tests inspect it); each ``*_figure``
function saves it.

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

from lensr.eval.figure_style import (
    FONT_PT,
    IMAGE_CMAP,
    PAGE_WIDTH_IN,
    RESIDUAL_CMAP,
    blank_axis,
    brightness_label,
    colorbar,
    colormap,
    new_figure,
    robust_limits,
    save_figure,
    scale_bar,
    wrap_title,
)

PANELS_PER_ROW = 3
"""ROC and confusion panels side by side; more variants wrap onto more rows."""
PANEL_IN = 3.4
"""Width (inches) of one ROC or confusion panel."""
IMAGE_IN = 1.75
"""Width (inches) of one image panel of the hallucination figure."""
CONFUSION_CMAP = "Blues"
FIGURES = {"roc": "roc.png", "confusion": "confusion.png"}
"""The figures of a classification evaluation (:func:`figure_writers`)."""
CLASS_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b")


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _color(k: int) -> str:
    return CLASS_COLORS[k % len(CLASS_COLORS)]


def _panel_grid(n: int, *, extra_height: float, extra_width: float = 0.3):
    """Figure and the first ``n`` axes of a grid of at most :data:`PANELS_PER_ROW` columns
    (unused axes hidden)."""
    cols = min(PANELS_PER_ROW, n)
    rows = math.ceil(n / cols)
    side = min(PANEL_IN, (PAGE_WIDTH_IN - extra_width) / cols)
    fig, axes = new_figure(
        rows, cols, height=rows * (side + extra_height), width=cols * side + extra_width
    )
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


# ROC ------------------------------------------------------------------------------------------


def roc_layout(metrics: Mapping[str, dict], class_names: Sequence[str]):
    """The Figure of :func:`roc_figure` (not saved)."""
    fig, axes = _panel_grid(len(metrics), extra_height=0.75)
    for i, (ax, (variant, m)) in enumerate(zip(axes, metrics.items(), strict=True)):
        ax.plot([0, 1], [0, 1], ls="--", lw=0.8, color="0.6")
        for k, name in enumerate(class_names):
            curve = m["roc"][name]
            if len(curve["fpr"]):
                label = f"{name}  AUC {_fmt(m['auc'][name])}"
                ax.plot(curve["fpr"], curve["tpr"], lw=1.6, color=_color(k), label=label)
        ax.set_title(
            f"{variant}\naccuracy {_fmt(m['accuracy'])} · macro AUC {_fmt(m['macro_auc'])}",
            fontsize=FONT_PT,
        )
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_aspect("equal")
        ax.set_xlabel("false positive rate", fontsize=FONT_PT)
        if i % PANELS_PER_ROW == 0:
            ax.set_ylabel("true positive rate", fontsize=FONT_PT)
        ax.tick_params(labelsize=FONT_PT)
        ax.legend(loc="lower right", fontsize=FONT_PT, frameon=True, handlelength=1.2)
    return fig


def roc_figure(metrics: Mapping[str, dict], class_names: Sequence[str], path) -> Path:
    """One panel per variant (HR, LR, SR ..., three a row), one one-vs-rest ROC curve per
    class with its AUC in the legend; titles give accuracy and macro AUC.

    ``metrics`` maps variant names to results of
    :func:`lensr.eval.classification_metrics.classification_metrics` (``roc``, ``auc``,
    ``macro_auc``, ``accuracy``).

    Example::

        roc_figure({"HR": m_hr, "SR: rcan": m_sr}, ["none", "cdm", "axion"], "roc.png")
    """
    return save_figure(roc_layout(metrics, class_names), path)


# Ladder ---------------------------------------------------------------------------------------

LADDER_STYLE = {
    "HR": ("o", "#1f77b4", True),
    "LR (bicubic)": ("s", "#d62728", True),
    "SR": ("D", "#2ca02c", True),
    "LR-trained on LR": ("s", "#d62728", False),
    "SR-trained on SR": ("D", "#2ca02c", False),
}
"""Marker, colour and filled (HR-trained classifier) or hollow (fair baseline) per variant."""


def ladder_layout(result: dict):
    """The Figure of :func:`ladder_figure` (not saved)."""
    rungs = result["rungs"]
    fig, axes = new_figure(1, 1, height=4.6, width=min(PAGE_WIDTH_IN, 1.7 * len(rungs) + 4.0))
    ax = axes[0, 0]
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
            xs, mean, yerr=err, fmt=marker, color=color, capsize=3, lw=1.2, ms=6, label=label,
            mfc=color if filled else "white",
        )  # fmt: skip
    ax.axhline(rungs[0]["chance"], ls="--", lw=0.9, color="0.5", label="chance")
    ax.set_xticks(x, [wrap_title(r["label"], 16) for r in rungs], fontsize=FONT_PT)
    ax.set_xlim(-0.5, len(rungs) - 0.5)
    ax.set_ylabel("accuracy (95 % interval)", fontsize=FONT_PT)
    ax.set_ylim(0, 1.02)
    ax.tick_params(labelsize=FONT_PT)
    ax.grid(axis="y", lw=0.4, color="0.85")
    fig.legend(loc="outside right center", fontsize=FONT_PT, frameon=False)
    ax.set_title("Classification ladder: DeepLense-faithful → realistic", fontsize=FONT_PT + 1)
    return fig


def ladder_figure(result: dict, path) -> Path:
    """Accuracy per rung (x: rungs in ladder order) with 95 % intervals, one series per
    variant of :data:`LADDER_STYLE` (filled: the HR-trained classifier on HR, LR, SR;
    hollow: the classifiers trained on LR and on SR), and the chance level.

    ``result`` is :func:`lensr.eval.ladder.write_ladder`'s dict (``rungs`` with
    ``label``, ``chance`` and ``variants: {variant: {label, accuracy: {mean, ci_low,
    ci_high}}}``).
    """
    return save_figure(ladder_layout(result), path)


# Confusion ------------------------------------------------------------------------------------


def confusion_layout(metrics: Mapping[str, dict], class_names: Sequence[str]):
    """The Figure of :func:`confusion_figure` (not saved)."""
    k = len(class_names)
    fig, axes = _panel_grid(len(metrics), extra_height=0.6, extra_width=1.0)
    image = None
    for i, (ax, (variant, m)) in enumerate(zip(axes, metrics.items(), strict=True)):
        counts = np.asarray(m["confusion"], dtype=float)
        rows = counts.sum(1, keepdims=True)
        frac = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
        image = ax.imshow(frac, cmap=CONFUSION_CMAP, vmin=0, vmax=1)
        for (r, c), n in np.ndenumerate(counts):
            color = "white" if frac[r, c] > 0.6 else "black"
            text = f"{int(n)}\n{100 * frac[r, c]:.0f}%"
            ax.text(c, r, text, ha="center", va="center", fontsize=FONT_PT, color=color)
        ax.set_xticks(range(k), class_names, fontsize=FONT_PT)
        ax.set_yticks(range(k), class_names, fontsize=FONT_PT)
        ax.set_xlabel("predicted class", fontsize=FONT_PT)
        if i % PANELS_PER_ROW == 0:
            ax.set_ylabel("true class", fontsize=FONT_PT)
        ax.set_title(f"{variant}\naccuracy {_fmt(m['accuracy'])}", fontsize=FONT_PT)
    colorbar(fig, image, axes, "fraction of the true class")
    return fig


def confusion_figure(metrics: Mapping[str, dict], class_names: Sequence[str], path) -> Path:
    """One confusion matrix per variant (three a row): colour = fraction of the true class
    (row), text = count and percentage.

    Example::

        confusion_figure({"HR": m_hr, "LR (bicubic)": m_lr}, ["none", "cdm", "axion"],
                         "confusion.png")
    """
    return save_figure(confusion_layout(metrics, class_names), path)


def figure_writers(metrics: Mapping[str, dict], class_names: Sequence[str]) -> dict:
    """``{file name: writer(path)}`` of the :data:`FIGURES` of a classification evaluation
    (ROC curves and confusion matrices of ``metrics``), for
    :func:`lensr.eval.output_dir.write_all`."""
    return {
        FIGURES["roc"]: lambda path: roc_figure(metrics, class_names, path),
        FIGURES["confusion"]: lambda path: confusion_figure(metrics, class_names, path),
    }


# Hallucination --------------------------------------------------------------------------------


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


def hallucination_layout(
    rows: Sequence[dict],
    *,
    variants: tuple[str, str, str] = ("HR", "SR (cdm only)", "SR (all classes)"),
    meta: dict | None = None,
):
    """The Figure of :func:`hallucination_figure` (not saved)."""
    if not rows:
        fig, axes = new_figure(1, 1, height=1.0, width=7.0)
        axes[0, 0].axis("off")
        message = "No image changed its predicted class under the cdm-only SR model."
        axes[0, 0].text(0.5, 0.5, message, ha="center", va="center", fontsize=FONT_PT + 1)
        return fig
    meta = meta or rows[0].get("meta") or {}
    hr_name, sr_name, all_name = variants
    ncols = len(_columns(rows[0]))
    fig, axes = new_figure(
        len(rows), ncols, height=(IMAGE_IN + 0.45) * len(rows) + 0.4, width=IMAGE_IN * ncols + 2.6
    )
    for r, row in enumerate(rows):
        cols = _columns(row)
        ref = row["clean"] if row.get("clean") is not None else row["hr"]
        lo, hi = robust_limits(ref)
        diffs = np.concatenate([c[1].ravel() for c in cols if c[2] == "diff"])
        lim = float(np.percentile(np.abs(diffs), 99.5)) or 1.0
        shown = {}
        for c, (title, image, kind) in enumerate(cols):
            ax = axes[r, c]
            cmap, vmin, vmax = (
                (IMAGE_CMAP, lo, hi) if kind == "image" else (RESIDUAL_CMAP, -lim, lim)
            )
            shown[kind] = ax.imshow(
                image, cmap=colormap(cmap), vmin=vmin, vmax=vmax, interpolation="nearest"
            )
            if title == "HR":
                title = f"HR: {_prediction(row, hr_name)}"
            elif title.startswith("SR ("):
                title = f"SR cdm-only: {_prediction(row, sr_name)}"
            ax.set_title(wrap_title(title, 20), fontsize=FONT_PT)
            blank_axis(ax)
        h, w = np.shape(row["hr"])
        scale_bar(axes[r, 0], meta.get("pixel_scale"), w, origin=(-0.5, h - 0.5))
        label = f"#{row['index']}  true: {row['true']}"
        if all_name in row["predicted"]:
            label += f"\nSR all classes: {row['predicted'][all_name]}"
        axes[r, 0].set_ylabel(label, fontsize=FONT_PT, fontweight="bold")
        images = [ax for ax, col in zip(axes[r], cols, strict=False) if col[2] == "image"]
        colorbar(fig, shown["image"], images, brightness_label(meta))
        colorbar(fig, shown["diff"], [axes[r, -1]], "difference\n(same units)")
    fig.suptitle(
        "Where the SR model trained only on cdm lenses changed the predicted class",
        fontsize=FONT_PT + 1,
    )
    return fig


def hallucination_figure(
    rows: Sequence[dict],
    path,
    *,
    variants: tuple[str, str, str] = ("HR", "SR (cdm only)", "SR (all classes)"),
    meta: dict | None = None,
) -> Path:
    """Examples where cdm-only SR changed the predicted class, one row each: HR | noise-free
    HR | SR (cdm only) | SR − noise-free HR | SR − HR (the noise-free columns only when the
    data has them). Image panels of a row share one stretch (that of the noise-free HR, else
    the HR) and a colour bar in the dataset's units (``meta``, see
    :func:`~lensr.eval.figure_style.image_meta`; its ``pixel_scale`` adds an arcsec scale
    bar), difference panels one symmetric scale; titles give the classes predicted on HR
    and on cdm-only SR, the row label the true class and the class under all-classes SR
    (``variants`` names the HR, cdm-only and all-classes entries of each row's
    ``predicted``/``probability``). No rows: a figure that says so.

    Each row is a dict with ``index``, ``true``, ``predicted``, ``probability``, ``hr``,
    ``sr``, ``clean`` (None without noise-free images) and optionally ``meta`` (used when
    ``meta`` is not given).

    Example::

        hallucination_figure(rows, "hallucination.png", meta=image_meta(ds.attrs))
    """
    return save_figure(hallucination_layout(rows, variants=variants, meta=meta), path)
