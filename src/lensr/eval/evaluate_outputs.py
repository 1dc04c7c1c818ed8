"""The per-image CSV and the figures of an ``evaluate`` run, as writers for
:func:`lensr.eval.output_dir.write_all`.

``metrics.csv`` holds one row per (model, target, image) with the raw per-image values;
the figure glue picks the example images (:func:`example_positions`) and hands the
models' outputs to :mod:`lensr.eval.figures` (``comparison.png``, ``residuals.png``) and
:func:`lensr.eval.consistency.trust_figure` (``trust.png``).

Example::

    example_positions(12, 3)   # [2, 6, 10]
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from lensr.eval.consistency import trust_figure
from lensr.eval.figures import comparison_figure, image_meta, residual_figure
from lensr.eval.model_runs import METRICS
from lensr.eval.output_dir import Writer
from lensr.eval.trust_measures import CALIBRATION_KEYS

FIGURES = {"comparison": "comparison.png", "residuals": "residuals.png"}
TRUST_FIGURE = {"trust": "trust.png"}
CSV_TRUST_COLUMNS = ("chi2_lr", *CALIBRATION_KEYS)
"""Per-image trust columns of metrics.csv: empty where not measured; calibration (always
against the noise-free HR) is on the "clean" rows only."""


def example_positions(n: int, k: int) -> list[int]:
    """``k`` evenly spaced image positions out of ``n`` (centres of k equal bins).

    Example::

        example_positions(12, 3)   # [2, 6, 10]
    """
    k = max(0, min(k, n))
    return [int((i + 0.5) * n / k) for i in range(k)]


def csv_writer(entries, targets, index, labels, classes) -> Writer:
    """The writer of ``metrics.csv`` (values as ``repr`` of the float: exact)."""

    def write(path: Path) -> None:
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["model", "target", "index", "label", "class", *METRICS, *CSV_TRUST_COLUMNS])
            for entry in entries:
                chi2 = entry.chi2_per_image()
                calib = entry.calibration_per_image()
                for target in targets:
                    s = entry.per_image(target)
                    for i in range(len(index)):
                        trust = [repr(float(chi2[i])) if chi2 is not None else ""]
                        trust += [
                            repr(float(calib[k][i])) if calib and target == "clean" else ""
                            for k in CALIBRATION_KEYS
                        ]
                        w.writerow(
                            [entry.name, target, int(index[i]), int(labels[i]), classes[i]]
                            + [repr(float(s[m][i])) for m in METRICS]
                            + trust
                        )

    return write


def trust_figure_writer(ds, entries, index, classes) -> dict[str, Writer]:
    """``{"trust.png": writer}`` of the images the models' trust measures flag ({} if none)."""
    flagged = [(e.name, e.flagged) for e in entries if e.flagged is not None]
    if not flagged:
        return {}
    rows = [
        {
            "label": f"{name} · #{int(index[f.position])} · {classes[f.position]}",
            "model": name,
            "image": f"#{int(index[f.position])} · {classes[f.position]}",
            "reference": f.truth,
            "sr": f.sr,
            "chi2": f.chi2_map,
            "sigma": f.sigma,
            "error": None if f.truth is None else np.abs(f.sr - f.truth),
        }
        for name, f in flagged
    ]
    error_label = "|SR - noise-free HR|" if ds.hr_clean is not None else "|SR - HR|"

    def write(path: Path) -> None:
        trust_figure(rows, path, error_label=error_label, meta=image_meta(ds.attrs))

    return {TRUST_FIGURE["trust"]: write}


def figure_writers(ds, entries, positions, labels_of_examples, has_clean) -> dict[str, Writer]:
    """Writers of ``comparison.png`` and ``residuals.png`` for the example ``positions``."""
    if not positions:
        return {}
    idx = np.asarray(positions)
    # h5py fancy indexing needs increasing indices; positions are increasing.
    lr, hr = ds.lr[idx], ds.hr[idx]
    clean = ds.hr_clean[idx] if has_clean else None
    preds = {e.name: np.stack(e.examples) for e in entries}
    meta = image_meta(ds.attrs)

    def comparison(path: Path) -> None:
        comparison_figure(
            lr, preds, hr, path, hr_clean=clean, row_labels=labels_of_examples, meta=meta
        )

    def residuals(path: Path) -> None:
        target, label = (clean, "noise-free HR") if has_clean else (hr, "HR")
        residual_figure(preds, target, path, row_labels=labels_of_examples, target_label=label)

    return {FIGURES["comparison"]: comparison, FIGURES["residuals"]: residuals}
