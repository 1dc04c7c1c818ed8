"""Evaluation figures: comparisons with a zoom on the arcs, and residual maps.

Both take a few fixed example images and write one PNG atomically with matplotlib's
object API on the Agg canvas (no pyplot state, no window). Every figure follows
:mod:`lensr.eval.figure_style`: at most the page's width, text >= 9 pt, at most
:data:`~lensr.eval.figure_style.MAX_COLUMNS` panels side by side (wider comparisons wrap
onto more rows), colour bars with units, arcsec scale bars when the pixel scale is known,
and one colour scale shared by every image of one example.

Example::

    from lensr.eval.figures import comparison_figure, residual_figure
    meta = image_meta(ds.attrs)
    comparison_figure(lr, {"bicubic": sr_bic, "rcan": sr_rcan}, hr, "comparison.png", meta=meta)
    residual_figure({"bicubic": sr_bic, "rcan": sr_rcan}, hr, "residuals.png")
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter

from lensr.errors import LensrError
from lensr.eval.figure_style import (  # noqa: F401 - re-exported for the other figures
    DPI,
    FONT_PT,
    IMAGE_CMAP,
    MAX_COLUMNS,
    PAGE_WIDTH_IN,
    RESIDUAL_CMAP,
    ZOOM_COLOR,
    blank_axis,
    brightness_label,
    colorbar,
    colormap,
    image_meta,
    new_figure,
    robust_limits,
    save_figure,
    scale_bar,
    wrap_title,
)

FIRST_COLUMNS = ("bilinear",)
"""Model columns shown first, in this order, when present."""
PANEL_HEIGHT_IN = 2.25
"""Height of one row of panels, title included."""


# Zoom region -------------------------------------------------------------------------


def auto_zoom(image: np.ndarray, *, size: int | None = None) -> tuple[int, int, int]:
    """The ``size`` x ``size`` window of most signal in ``image``: ``(y, x, size)``.

    ``size`` defaults to a quarter of the shorter side (at least 8 px, at most the
    image). "Most signal" is the largest mean squared deviation from the image median
    (the sky): on a lens image the brightest, most structured part of the arcs, which
    is where SR models differ. Ties go to the first window (row-major).

    Example::

        y, x, s = auto_zoom(hr[0])      # hr[0][y:y+s, x:x+s] is the zoom region
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise LensrError(f"auto_zoom needs one (H, W) image, got shape {img.shape}")
    h, w = img.shape
    if size is None:
        size = max(8, min(h, w) // 4)
    size = int(min(size, h, w))
    # Second moment about the image median (the sky level): large where the window is
    # both bright and structured. Plain variance favours windows half on an arc edge.
    dev = img - np.median(img)
    power = uniform_filter(dev * dev, size, mode="constant")
    # uniform_filter centres an even window at index i - size//2 .. i + (size-1)//2;
    # keep only windows that lie fully inside the image.
    lo = size // 2
    valid = power[lo : lo + h - size + 1, lo : lo + w - size + 1]
    y, x = np.unravel_index(int(np.argmax(valid)), valid.shape)
    return int(y), int(x), size


def _check_zoom(zoom: tuple[int, int, int], shape: tuple[int, int]) -> tuple[int, int, int]:
    y, x, size = (int(v) for v in zoom)
    if size < 1 or y < 0 or x < 0 or y + size > shape[0] or x + size > shape[1]:
        raise LensrError(f"zoom {zoom} (y, x, size) does not fit inside {shape[0]}x{shape[1]} px")
    return y, x, size


# Helpers -----------------------------------------------------------------------------


def _stack(a, name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise LensrError(f"{name} must be (N, H, W) or (H, W), got shape {arr.shape}")
    return arr


def _ordered(preds: dict) -> list[str]:
    first = [name for name in FIRST_COLUMNS if name in preds]
    return first + [name for name in preds if name not in first]


def _check_preds(preds: dict, hr: np.ndarray) -> dict[str, np.ndarray]:
    if not preds:
        raise LensrError("no model predictions to plot")
    out = {}
    for name, p in preds.items():
        arr = _stack(p, f"prediction {name!r}")
        if arr.shape != hr.shape:
            raise LensrError(f"prediction {name!r} has shape {arr.shape}, HR has {hr.shape}")
        out[name] = arr
    return out


def _blocks(n: int, panels: int, cols: int):
    """A figure of ``n`` blocks of ``panels`` panels wrapped at ``cols`` columns: the
    Figure, and per block the list of its axes (unused grid cells are hidden)."""
    rows_per = math.ceil(panels / cols)
    fig, axes = new_figure(n * rows_per, cols, height=PANEL_HEIGHT_IN * n * rows_per + 0.2)
    blocks = []
    for i in range(n):
        grid = axes[i * rows_per : (i + 1) * rows_per].ravel()
        for ax in grid[panels:]:
            ax.set_visible(False)
        blocks.append(list(grid[:panels]))
    return fig, blocks


def _mark_zoom(ax, y: int, x: int, size: int) -> None:
    from matplotlib.patches import Rectangle

    ax.add_patch(
        Rectangle((x - 0.5, y - 0.5), size, size, fill=False, edgecolor=ZOOM_COLOR, linewidth=1.5)
    )


# Comparison --------------------------------------------------------------------------


def comparison_layout(
    lr,
    preds: dict[str, np.ndarray],
    hr,
    *,
    zoom: tuple[int, int, int] | None = None,
    hr_clean=None,
    row_labels: Sequence[str] | None = None,
    meta: dict | None = None,
):
    """The Figure of :func:`comparison_figure` (not saved; the tests inspect it)."""
    hr = _stack(hr, "hr")
    lr = _stack(lr, "lr")
    preds = _check_preds(preds, hr)
    if len(lr) != len(hr):
        raise LensrError(f"lr has {len(lr)} images but hr has {len(hr)}")
    refs = [("HR", hr)]
    if hr_clean is not None:
        clean = _stack(hr_clean, "hr_clean")
        if clean.shape != hr.shape:
            raise LensrError(f"hr_clean has shape {clean.shape}, hr has {hr.shape}")
        refs.append(("noise-free HR", clean))
    zooms = [("LR", lr)] + [(name, preds[name]) for name in _ordered(preds)] + refs
    frames = [("LR", lr), refs[-1]]
    n, h, w = hr.shape
    meta = meta or {}
    labels = list(row_labels) if row_labels is not None else [f"image {i}" for i in range(n)]
    cols = min(MAX_COLUMNS, len(frames) + len(zooms))
    fig, blocks = _blocks(n, len(frames) + len(zooms), cols)
    extent = (-0.5, w - 0.5, h - 0.5, -0.5)  # HR pixel coordinates for every panel
    for i, block in enumerate(blocks):
        y, x, size = _check_zoom(zoom, (h, w)) if zoom else auto_zoom(hr[i])
        # One linear stretch per example, from its HR image: every panel compares directly.
        vmin, vmax = robust_limits(hr[i])
        panels = [(f"{t} (full frame)", a, False) for t, a in frames]
        panels += [(f"{t} (zoom)" if t == "LR" else t, a, True) for t, a in zooms]
        for k, (ax, (title, images, zoomed)) in enumerate(zip(block, panels, strict=True)):
            im = ax.imshow(
                images[i],
                cmap=colormap(IMAGE_CMAP),
                vmin=vmin,
                vmax=vmax,
                extent=extent,
                interpolation="nearest",
            )
            blank_axis(ax)
            ax.set_title(wrap_title(title), fontsize=FONT_PT)
            if zoomed:
                ax.set_xlim(x - 0.5, x + size - 0.5)
                ax.set_ylim(y + size - 0.5, y - 0.5)
                for spine in ax.spines.values():
                    spine.set_edgecolor(ZOOM_COLOR)
                    spine.set_linewidth(1.5)
            else:
                _mark_zoom(ax, y, x, size)
            if k == 0:
                scale_bar(ax, meta.get("pixel_scale"), w, origin=(-0.5, h - 0.5))
            if k == len(frames):
                scale_bar(ax, meta.get("pixel_scale"), size, origin=(x - 0.5, y + size - 0.5))
        block[0].set_ylabel(labels[i], fontsize=10, fontweight="bold")
        colorbar(fig, im, block, brightness_label(meta))
    return fig


def comparison_figure(
    lr,
    preds: dict[str, np.ndarray],
    hr,
    path: str | os.PathLike,
    *,
    zoom: tuple[int, int, int] | None = None,
    hr_clean=None,
    row_labels: Sequence[str] | None = None,
    meta: dict | None = None,
) -> Path:
    """Per example: the LR and HR full frames (the zoom region marked in red), then the
    zoom region of the LR, of each model and of the HR, wrapped at 5 panels a row.

    ``lr`` is (N, h, w), every ``preds`` value and ``hr`` (N, H, W) with H = s*h. The LR
    is drawn over the same sky as the HR (so the zoom square lines up). All panels of one
    example share one linear colour scale (from its HR image) and one colour bar in the
    dataset's units (``meta["units"]``, see :func:`~lensr.eval.figure_style.image_meta`);
    ``meta["pixel_scale"]`` (arcsec per HR pixel) adds scale bars. ``zoom=(y, x, size)``
    in HR pixels (default None: :func:`auto_zoom` per example). ``hr_clean`` (default
    None) adds the noise-free HR (then the full frame shown); ``row_labels`` (default
    "image k") names the examples. Bilinear comes first among the models. Returns ``path``.

    Example::

        comparison_figure(lr[:3], {"bicubic": sr[:3]}, hr[:3], "cmp.png", zoom=(20, 24, 16))
    """
    fig = comparison_layout(
        lr, preds, hr, zoom=zoom, hr_clean=hr_clean, row_labels=row_labels, meta=meta
    )
    return save_figure(fig, path)


# Residuals ---------------------------------------------------------------------------


def residual_layout(
    preds: dict[str, np.ndarray],
    hr,
    *,
    row_labels: Sequence[str] | None = None,
    target_label: str = "HR",
):
    """The Figure of :func:`residual_figure` (not saved; the tests inspect it)."""
    hr = _stack(hr, "hr")
    preds = _check_preds(preds, hr)
    names = _ordered(preds)
    n = len(hr)
    labels = list(row_labels) if row_labels is not None else [f"image {i}" for i in range(n)]
    span = hr.max(axis=(1, 2)) - hr.min(axis=(1, 2))
    span[span == 0] = 1.0
    fig, blocks = _blocks(n, len(names), min(MAX_COLUMNS, len(names)))
    for i, block in enumerate(blocks):
        res = {name: (preds[name][i] - hr[i]) / span[i] for name in names}
        vmax = float(np.percentile(np.abs(np.stack(list(res.values()))), 99.5)) or 1e-12
        for ax, name in zip(block, names, strict=True):
            im = ax.imshow(
                res[name],
                cmap=colormap(RESIDUAL_CMAP),
                vmin=-vmax,
                vmax=vmax,
                interpolation="nearest",
            )
            blank_axis(ax)
            rms = float(np.sqrt(np.mean(res[name] ** 2)))
            ax.text(
                0.03,
                0.03,
                f"rms {rms:.2g}",
                transform=ax.transAxes,
                fontsize=FONT_PT,
                color="black",
                bbox={"facecolor": "white", "alpha": 1.0, "edgecolor": "none", "pad": 1.5},
            )
            ax.set_title(wrap_title(name), fontsize=FONT_PT)
        block[0].set_ylabel(labels[i], fontsize=10, fontweight="bold")
        colorbar(fig, im, block, "residual / range\n(normalised)")
    fig.suptitle(
        f"residual = (model − {target_label}) / ({target_label} max − min)", fontsize=FONT_PT + 1
    )
    return fig


def residual_figure(
    preds: dict[str, np.ndarray],
    hr,
    path: str | os.PathLike,
    *,
    row_labels: Sequence[str] | None = None,
    target_label: str = "HR",
) -> Path:
    """Per example (a block of rows) and model (panels, 5 a row): ``(model - HR) / HR
    range`` maps.

    Residuals are divided by each HR image's max - min, the unit the metrics use, so
    the maps read directly as errors in the normalised [0, 1] scale. Each example shares
    one symmetric diverging colour scale (+-99.5th percentile of |residual| over its
    models) with a colour bar; each panel states its RMS. ``target_label`` (default
    "HR") names what was subtracted, e.g. "noise-free HR". Returns ``path``.

    Example::

        residual_figure({"bicubic": sr[:3], "rcan": sr2[:3]}, hr_clean[:3], "res.png")
    """
    fig = residual_layout(preds, hr, row_labels=row_labels, target_label=target_label)
    return save_figure(fig, path)
