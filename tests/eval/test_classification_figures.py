"""The classification figures and the dataset preview are legible at the page width: text
>= 9 pt, wide comparisons wrapped, colour bars with units, arcsec scale bars on images."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from lensr.data.store import open_dataset
from lensr.errors import LensrError
from lensr.eval.classification import classification_metrics
from lensr.eval.classification_figures import (
    PANELS_PER_ROW,
    confusion_layout,
    hallucination_layout,
    ladder_layout,
    roc_layout,
)
from lensr.eval.data_preview import preview_grid, preview_layout
from lensr.eval.figure_style import PAGE_WIDTH_IN, image_meta, small_texts

NAMES = ["none", "cdm", "axion"]
VARIANTS = ["HR", "LR (bicubic)", "SR: rcan-tiny", "SR: srresnet-tiny", "SR: fsrcnn-tiny"]


def _legible(fig) -> None:
    assert fig.get_size_inches()[0] <= PAGE_WIDTH_IN + 1e-9
    assert small_texts(fig) == []


def _metrics() -> dict:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 120)
    out = {}
    for v in VARIANTS:
        p = rng.dirichlet([1, 1, 1], labels.size)
        p[np.arange(labels.size), labels] += 0.4
        out[v] = classification_metrics(labels, p / p.sum(1, keepdims=True), NAMES)
    return out


def _panels_per_row(fig) -> int:
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    return max(Counter(round(ax.get_position().y0, 3) for ax in axes).values())


@pytest.mark.parametrize("layout", [roc_layout, confusion_layout])
def test_roc_and_confusion_wrap_five_variants_legibly(layout):
    fig = layout(_metrics(), NAMES)
    _legible(fig)
    assert _panels_per_row(fig) <= PANELS_PER_ROW
    assert sum(ax.get_visible() and bool(ax.get_title()) for ax in fig.axes) == len(VARIANTS)


def test_ladder_is_legible():
    def acc(m):
        return {"accuracy": {"mean": m, "ci_low": m - 0.05, "ci_high": m + 0.05}}

    rungs = [
        {
            "label": label,
            "chance": 1 / 3,
            "variants": {
                "HR": {"label": "HR-trained on HR", **acc(0.8)},
                "LR (bicubic)": {"label": "HR-trained on LR (bicubic)", **acc(0.7)},
                "SR": {"label": "HR-trained on SR", **acc(0.75)},
            },
        }
        for label in ("DeepLense-faithful (Model III)", "realistic (all free, noise)", "ring")
    ]
    _legible(ladder_layout({"rungs": rungs}))


def test_hallucination_rows_have_units_scale_bars_and_legible_text(sim):
    with open_dataset(sim) as ds:
        meta = image_meta(ds.attrs)
        rows = [
            {
                "index": i,
                "true": "cdm",
                "predicted": {"HR": "cdm", "SR (cdm only)": "axion", "SR (all classes)": "cdm"},
                "probability": {"HR": [0.2, 0.5, 0.3], "SR (cdm only)": [0.1, 0.3, 0.6]},
                "hr": ds.hr[i],
                "clean": ds.hr_clean[i],
                "sr": ds.hr_clean[i] * 1.1,
                "meta": meta,
            }
            for i in range(2)
        ]
    fig = hallucination_layout(rows)
    _legible(fig)
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels.count("surface brightness\n(1 = 25.0 mag/arcsec²)") == 2
    assert sum(t.get_text().endswith("″") for ax in fig.axes for t in ax.texts) == 2
    _legible(hallucination_layout([]))


def test_preview_rows_share_one_stretch_with_units_and_scale_bars(sim, tmp_path):
    with open_dataset(sim) as ds:
        fig = preview_layout(ds, per_class=2)
        png = preview_grid(ds, tmp_path / "p.png", per_class=1)
        with pytest.raises(LensrError, match="at least 1"):
            preview_layout(ds, per_class=0)
    assert png.read_bytes()[:4] == b"\x89PNG"
    _legible(fig)
    panels = [ax for ax in fig.axes if ax.images and ax.get_visible()]
    assert len(panels) == 6 * 3  # 2 per class x 3 classes, HR | LR | noise-free HR
    rows = Counter(round(ax.get_position().y0, 3) for ax in panels)
    assert sorted(rows.values()) == [3] * 6
    by_row = {}
    for ax in panels:
        by_row.setdefault(round(ax.get_position().y0, 3), set()).add(ax.images[0].get_clim())
    assert all(len(c) == 1 for c in by_row.values())  # one stretch per row
    assert sum(ax.get_ylabel().startswith("surface brightness") for ax in fig.axes) == 6
    assert sum(t.get_text().endswith("″") for ax in fig.axes for t in ax.texts) == 6
