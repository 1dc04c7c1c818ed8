"""Figures a paper would print: page-wide at most, text >= 9 pt, <= 5 panels a row, shared
colour scales with units, scale bars, each flagged image once, compact PNGs in the page."""

from __future__ import annotations

import io
import re
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from lensr.eval.consistency import trust_layout
from lensr.eval.figure_style import (
    MAX_COLUMNS,
    PAGE_WIDTH_IN,
    image_meta,
    save_figure,
    small_texts,
)
from lensr.eval.figures import comparison_layout, residual_layout
from lensr.report import plots
from lensr.report.components import MAX_PALETTE_ERROR, compact_png, figure

META = image_meta({"hr_pixel_scale": 0.05, "units": "surface brightness; 1 = 25.0 mag/arcsec^2"})
NAMES = [
    "bilinear",
    "bicubic",
    "rcan-tiny (sim only)",
    "rcan-tiny (ground only)",
    "rcan-tiny fine-tuned",
    "rcan-tiny ADDA",
    "srresnet-tiny (sim only)",
    "srresnet-tiny (ground only)",
    "srresnet-tiny fine-tuned",
    "srresnet-tiny ADDA",
]


def _images(n=2, size=64, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:size, :size] - size / 2
    ring = np.exp(-((np.hypot(y, x) - size / 4) ** 2) / 8.0)
    clean = np.stack([ring * (1 + k) for k in range(n)])
    hr = clean + rng.normal(0, 0.02, clean.shape)
    lr = hr.reshape(n, size // 2, 2, size // 2, 2).mean(axis=(2, 4))
    preds = {m: clean + rng.normal(0, 0.01 * (k + 1), clean.shape) for k, m in enumerate(NAMES)}
    return lr, hr, clean, preds


def _image_axes(fig):
    return [ax for ax in fig.axes if ax.get_visible() and ax.images]


def _per_row(axes) -> int:
    """The most image panels that share one row (same vertical position)."""
    return max(Counter(round(ax.get_position().y0, 3) for ax in axes).values())


def test_comparison_is_legible_wrapped_and_shares_one_scale_per_example():
    lr, hr, clean, preds = _images()
    fig = comparison_layout(lr, preds, hr, hr_clean=clean, meta=META, row_labels=["#1", "#2"])
    assert fig.get_size_inches()[0] <= PAGE_WIDTH_IN
    assert small_texts(fig) == []
    panels = [ax for ax in _image_axes(fig) if ax.images[0].get_cmap().name == "magma"]
    # 2 full frames + LR zoom + 10 models + HR + noise-free HR, per example
    assert len(panels) == 2 * 15 and _per_row(panels) <= MAX_COLUMNS
    limits = Counter(ax.images[0].get_clim() for ax in panels)
    assert sorted(limits.values()) == [15, 15]  # one stretch per example, HR and SR alike
    bars = [ax for ax in fig.axes if ax.get_ylabel().startswith("surface brightness")]
    assert len(bars) == 2 and "25.0 mag/arcsec²" in bars[0].get_ylabel()
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    # 64 px x 0.05″ = 3.2″ frames: a 1″ bar; 16 px zooms (0.8″): a 0.2″ bar
    assert texts.count("1″") == 2 and texts.count("0.2″") == 2
    plain = comparison_layout(lr, {"bicubic": preds["bicubic"]}, hr)
    assert not any("″" in t.get_text() for ax in plain.axes for t in ax.texts)
    assert any(ax.get_ylabel() == "pixel value (dataset units)" for ax in plain.axes)


def test_residuals_share_one_symmetric_scale_per_example():
    _, _, clean, preds = _images()
    fig = residual_layout(preds, clean, target_label="noise-free HR")
    assert fig.get_size_inches()[0] <= PAGE_WIDTH_IN and small_texts(fig) == []
    panels = _image_axes(fig)
    panels = [ax for ax in panels if ax.images[0].get_cmap().name == "RdBu_r"]
    assert len(panels) == 20 and _per_row(panels) <= MAX_COLUMNS
    limits = Counter(ax.images[0].get_clim() for ax in panels)
    assert sorted(limits.values()) == [10, 10]
    assert all(lo == -hi and hi > 0 for lo, hi in limits)


def test_trust_figure_shows_each_flagged_image_once_with_one_scale_per_quantity():
    rng = np.random.default_rng(1)
    _, _, clean, preds = _images()

    def row(name, i):
        sr = preds[name][i]
        return {
            "model": name,
            "image": f"#{i}",
            "reference": clean[i],
            "sr": sr,
            "chi2": rng.gamma(2.0, 1.0 + 50 * (name == "bicubic"), (32, 32)),
            "sigma": np.abs(rng.normal(0, 0.01, sr.shape)),
            "error": np.abs(sr - clean[i]),
        }

    rows = [row(n, 0) for n in NAMES] + [row("bicubic", 1)]
    fig = trust_layout(rows, meta=META)
    assert fig.get_size_inches()[0] <= PAGE_WIDTH_IN and small_texts(fig) == []
    by_cmap = Counter(ax.images[0].get_cmap().name for ax in _image_axes(fig))
    assert by_cmap["magma"] == 2  # image #0 (flagged by 10 models) and #1, once each
    assert by_cmap["viridis"] == 11 and by_cmap["cividis"] == 22
    chi2 = {
        (ax.images[0].norm.vmin, ax.images[0].norm.vmax)
        for ax in _image_axes(fig)
        if ax.images[0].get_cmap().name == "viridis"
    }
    spread = {
        ax.images[0].get_clim()
        for ax in _image_axes(fig)
        if ax.images[0].get_cmap().name == "cividis"
    }
    assert len(chi2) == 1 and len(spread) == 1  # one scale per quantity; sigma and |error|
    assert fig.axes[0].get_title(loc="left") == "#0: noise-free HR"


def test_report_figures_are_legible(tmp_path, monkeypatch):
    seen = []

    def keep(fig, path, **kwargs):
        seen.append(fig)
        return save_figure(fig, path, **kwargs)

    monkeypatch.setattr(plots, "save_figure", keep)
    curves = {
        f"model {k}": {
            "levels": [0.1, 0.5, 0.9],
            "raw": [0.05, 0.3, 0.6],
            "calibrated": [0.1, 0.5, 0.9],
        }
        for k in range(5)
    }
    plots.reliability_figure(curves, tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    fig = seen[-1]
    assert fig.get_size_inches()[0] <= PAGE_WIDTH_IN and small_texts(fig) == []
    assert sum(ax.get_visible() for ax in fig.axes) == 5
    with pytest.raises(ValueError):
        plots.reliability_figure({}, tmp_path / "none.png")


def test_the_page_embeds_compact_pngs_at_their_printed_size(tmp_path):
    lr, hr, clean, preds = _images()
    fig = comparison_layout(lr, preds, hr, hr_clean=clean, meta=META)
    path = save_figure(fig, tmp_path / "c.png", dpi=100)
    data = path.read_bytes()
    small, width = compact_png(data)
    assert len(small) < 0.6 * len(data)
    before = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=int)
    after = np.asarray(Image.open(io.BytesIO(small)).convert("RGB"), dtype=int)
    assert np.abs(before - after).max() <= MAX_PALETTE_ERROR
    inches = fig.get_size_inches()[0]
    assert width == pytest.approx(inches * 96, abs=1.5)
    html = figure(path, caption="c")
    assert re.search(r'style="width:(\d+)px"', html).group(1) == f"{inches * 96:.0f}"
    # a photo-like PNG (many colours) is embedded unchanged
    noise = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG")
    assert compact_png(buffer.getvalue())[0] == buffer.getvalue()


def test_reliability_of_a_calibrated_sigma_follows_the_diagonal():
    from lensr.eval.trust_measures import RELIABILITY_LEVELS, reliability

    err = np.random.default_rng(2).normal(0.0, 2.0, 200_000)
    out = reliability(err, np.ones_like(err), np.full_like(err, 2.0))
    assert out["levels"] == list(RELIABILITY_LEVELS)
    np.testing.assert_allclose(out["calibrated"], RELIABILITY_LEVELS, atol=0.005)
    assert all(r < c for r, c in zip(out["raw"], out["calibrated"], strict=True))  # sigma too small
