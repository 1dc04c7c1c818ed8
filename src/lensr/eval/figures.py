"""Evaluation figures: side-by-side comparisons with a zoom, and residual maps.

Both take a few fixed example images (the rows) and write one PNG atomically (a
temporary file renamed into place), with matplotlib's object API on the Agg canvas: no
pyplot state, no window. The helpers the other evaluation figures share live here too:
:func:`new_figure`, :func:`blank_axis`, :func:`robust_limits`, :func:`save_figure`.

Example::

    from lensr.eval.figures import comparison_figure, residual_figure
    comparison_figure(lr, {"bicubic": sr_bic, "rcan": sr_rcan}, hr, "comparison.png")
    residual_figure({"bicubic": sr_bic, "rcan": sr_rcan}, hr, "residuals.png")
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.ndimage import uniform_filter

from lensr.errors import LensrError

PANEL_IN = 1.9
"""Width (inches) of one image panel."""
DPI = 110
IMAGE_CMAP = "magma"
RESIDUAL_CMAP = "RdBu_r"
ZOOM_COLOR = "#ff3b30"
FIRST_COLUMNS = ("bilinear",)
"""Model columns shown first, in this order, when present."""


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


def robust_limits(image: np.ndarray) -> tuple[float, float]:
    """A robust linear stretch: 0.5th to 99.8th percentile (never an empty range)."""
    lo, hi = np.percentile(image, [0.5, 99.8])
    if not hi > lo:
        hi = lo + 1.0
    return float(lo), float(hi)


def blank_axis(ax) -> None:
    """No ticks on ``ax`` (an image panel)."""
    ax.set_xticks([])
    ax.set_yticks([])


def save_figure(fig, path: str | os.PathLike, *, dpi: int = DPI) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix, default PNG) at ``dpi`` (default
    110) through a temporary file in the same folder; returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = path.suffix.lstrip(".").lower() or "png"
    # Not mkstemp: its 0600 mode would survive the rename.
    tmp = path.with_name(f".{path.stem}.partial-{os.getpid()}{path.suffix}")
    try:
        fig.savefig(tmp, format=fmt, dpi=dpi)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def new_figure(rows: int, cols: int, *, height: float, extra_width: float = 0.0):
    """A constrained-layout Figure of ``rows`` x ``cols`` axes (always a 2-D array),
    :data:`PANEL_IN` wide per column plus ``extra_width``, ``height`` inches high."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(PANEL_IN * cols + extra_width, height), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


# Comparison --------------------------------------------------------------------------


def comparison_figure(
    lr,
    preds: dict[str, np.ndarray],
    hr,
    path: str | os.PathLike,
    *,
    zoom: tuple[int, int, int] | None = None,
    hr_clean=None,
    row_labels: Sequence[str] | None = None,
) -> Path:
    """LR | each model | HR for every example, each with a magnified zoom row below it.

    ``lr`` is (N, h, w), every ``preds`` value and ``hr`` (N, H, W) with H = s*h. The LR
    panel is drawn over the same sky as the HR panels (so the zoom square lines up).
    Each example shares one linear colour scale (from its HR image) across its
    columns; its zoom row is re-stretched on the HR zoom region. ``zoom=(y, x, size)``
    in HR pixels (default None: :func:`auto_zoom` per example, the brightest and most
    structured HR window) is marked by a red square on every full panel.
    ``hr_clean`` (default None) adds a "HR noise-free" column; ``row_labels``
    (default None: "image k") names the examples. Bilinear comes first among the
    models when present. Returns ``path``.

    Example::

        comparison_figure(lr[:3], {"bicubic": sr[:3]}, hr[:3], "cmp.png", zoom=(20, 24, 16))
    """
    hr = _stack(hr, "hr")
    lr = _stack(lr, "lr")
    preds = _check_preds(preds, hr)
    if len(lr) != len(hr):
        raise LensrError(f"lr has {len(lr)} images but hr has {len(hr)}")
    panels = [("LR", lr)] + [(name, preds[name]) for name in _ordered(preds)] + [("HR", hr)]
    if hr_clean is not None:
        clean = _stack(hr_clean, "hr_clean")
        if clean.shape != hr.shape:
            raise LensrError(f"hr_clean has shape {clean.shape}, hr has {hr.shape}")
        panels.append(("HR noise-free", clean))
    n, h, w = hr.shape
    labels = list(row_labels) if row_labels is not None else [f"image {i}" for i in range(n)]
    cols = len(panels)
    fig, axes = new_figure(2 * n, cols, height=PANEL_IN * 2 * n + 0.3)
    extent = (-0.5, w - 0.5, h - 0.5, -0.5)  # HR pixel coordinates for every panel
    for i in range(n):
        y, x, size = _check_zoom(zoom, (h, w)) if zoom else auto_zoom(hr[i])
        full_lim = robust_limits(hr[i])
        zoom_lim = robust_limits(hr[i, y : y + size, x : x + size])
        for j, (title, images) in enumerate(panels):
            top, bottom = axes[2 * i, j], axes[2 * i + 1, j]
            for ax, (vmin, vmax) in ((top, full_lim), (bottom, zoom_lim)):
                ax.imshow(
                    images[i],
                    cmap=IMAGE_CMAP,
                    vmin=vmin,
                    vmax=vmax,
                    extent=extent,
                    interpolation="nearest",
                )
                blank_axis(ax)
            _mark_zoom(top, y, x, size)
            bottom.set_xlim(x - 0.5, x + size - 0.5)
            bottom.set_ylim(y + size - 0.5, y - 0.5)
            for spine in bottom.spines.values():
                spine.set_edgecolor(ZOOM_COLOR)
                spine.set_linewidth(1.5)
            if i == 0:
                top.set_title(title, fontsize=10)
        axes[2 * i, 0].set_ylabel(labels[i], fontsize=9)
        axes[2 * i + 1, 0].set_ylabel(f"zoom x{w // size}", fontsize=8, color=ZOOM_COLOR)
    return save_figure(fig, path)


def _mark_zoom(ax, y: int, x: int, size: int) -> None:
    from matplotlib.patches import Rectangle

    ax.add_patch(
        Rectangle((x - 0.5, y - 0.5), size, size, fill=False, edgecolor=ZOOM_COLOR, linewidth=1.2)
    )


# Residuals ---------------------------------------------------------------------------


def residual_figure(
    preds: dict[str, np.ndarray],
    hr,
    path: str | os.PathLike,
    *,
    row_labels: Sequence[str] | None = None,
    target_label: str = "HR",
) -> Path:
    """Per example (rows) and model (columns): ``(model - HR) / HR range`` maps.

    Residuals are divided by each HR image's max - min, the unit the metrics use, so
    the maps read directly as errors in the normalised [0, 1] scale. Each row shares
    a symmetric diverging colour scale (+-99.5th percentile of |residual| over its
    models) with a colour bar; each panel states its RMS. ``target_label`` (default
    "HR") names what was subtracted, e.g. "noise-free HR". Returns ``path``.

    Example::

        residual_figure({"bicubic": sr[:3], "rcan": sr2[:3]}, hr_clean[:3], "res.png")
    """
    hr = _stack(hr, "hr")
    preds = _check_preds(preds, hr)
    names = _ordered(preds)
    n = len(hr)
    labels = list(row_labels) if row_labels is not None else [f"image {i}" for i in range(n)]
    span = hr.max(axis=(1, 2)) - hr.min(axis=(1, 2))
    span[span == 0] = 1.0
    fig, axes = new_figure(n, len(names), height=PANEL_IN * n + 0.5, extra_width=0.9)
    for i in range(n):
        res = {name: (preds[name][i] - hr[i]) / span[i] for name in names}
        vmax = float(np.percentile(np.abs(np.stack(list(res.values()))), 99.5)) or 1e-12
        for j, name in enumerate(names):
            ax = axes[i, j]
            im = ax.imshow(
                res[name], cmap=RESIDUAL_CMAP, vmin=-vmax, vmax=vmax, interpolation="nearest"
            )
            blank_axis(ax)
            rms = float(np.sqrt(np.mean(res[name] ** 2)))
            ax.text(
                0.03,
                0.03,
                f"rms {rms:.3g}",
                transform=ax.transAxes,
                fontsize=7,
                color="black",
                bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1.5},
            )
            if i == 0:
                ax.set_title(f"{name} - {target_label}", fontsize=9)
        axes[i, 0].set_ylabel(labels[i], fontsize=9)
        bar = fig.colorbar(im, ax=axes[i, :].tolist(), shrink=0.9, pad=0.02)
        bar.ax.tick_params(labelsize=7)
        if i == n // 2:
            bar.set_label(f"residual / {target_label} range", fontsize=8)
    return save_figure(fig, path)
