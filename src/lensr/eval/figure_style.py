"""The shared style of lensr's figures: page width, font floor, units, scale bars, saving.

A figure is printed in the report at its physical size (1 inch = 96 CSS px, the report
reads the PNG's dpi; :func:`lensr.report.components.figure`), never wider than the page's
content column (:data:`PAGE_WIDTH_IN`). A figure at most that wide with text of at least
:data:`MIN_FONT_PT` therefore shows that text at >= 9 pt on the page.
:func:`small_texts` lists the texts that break the floor (the tests call it on every
figure). :func:`image_meta` reads the units and the pixel scale from a dataset's attrs;
:func:`scale_bar` draws an arcsec bar; :func:`save_figure` writes a PNG atomically.

Example::

    from lensr.eval.figure_style import image_meta, new_figure, save_figure
    meta = image_meta(ds.attrs)    # {"pixel_scale": 0.05, "units": "surface brightness ..."}
"""

from __future__ import annotations

import io
import os
import textwrap
from pathlib import Path

import numpy as np

from lensr.io import atomic_path

PAGE_WIDTH_IN = 10.8
"""Widest figure (inches): the report's content column is 1044 CSS px = 10.875 in."""
MIN_FONT_PT = 9.0
"""Smallest font size (points) of any text in a figure."""
FONT_PT = 9.5
"""Default size of panel titles, tick labels and annotations."""
DPI = 100
"""PNG resolution: at 1 in = 96 CSS px the page shows it at about one pixel per pixel."""
MAX_COLUMNS = 5
"""Most image panels side by side; wider comparisons wrap onto more rows."""
CMAP_LEVELS = 64
"""Colours per colour map: steps of 1/64 of the range are below what the eye separates,
and three maps plus text fit one 256-colour palette (the page embeds palette PNGs)."""
ZOOM_COLOR = "#ff3b30"


def colormap(name: str):
    """The matplotlib colour map ``name`` with :data:`CMAP_LEVELS` levels (its name kept)."""
    from matplotlib import colormaps

    return colormaps[name].resampled(CMAP_LEVELS)


IMAGE_CMAP = "magma"
RESIDUAL_CMAP = "RdBu_r"


def image_meta(attrs: dict | None) -> dict:
    """``{"pixel_scale": arcsec per HR pixel or None, "units": str or None}`` from a
    dataset's attrs (``hr_pixel_scale``, ``units``).

    Example::

        image_meta({"hr_pixel_scale": 0.05, "units": "surface brightness; 1 = 25 mag"})
    """
    attrs = attrs or {}
    scale = attrs.get("hr_pixel_scale")
    try:
        scale = float(scale) if scale is not None else None
    except (TypeError, ValueError):
        scale = None
    if scale is not None and not (np.isfinite(scale) and scale > 0):
        scale = None
    units = attrs.get("units")
    return {"pixel_scale": scale, "units": str(units) if units else None}


def brightness_label(meta: dict | None) -> str:
    """The colour-bar label of an image in the dataset's units (``"surface brightness
    (1 = 25.0 mag/arcsec²)"``), or "pixel value (dataset units)" when none are given."""
    units = (meta or {}).get("units")
    if not units:
        return "pixel value (dataset units)"
    name, _, detail = str(units).partition(";")
    detail = detail.strip().replace("^2", "²")
    return f"{name.strip()}\n({detail})" if detail else name.strip()


def wrap_title(text: str, width: int = 18) -> str:
    """``text`` on lines of at most ``width`` characters (panel titles stay in their panel)."""
    return "\n".join(textwrap.wrap(str(text), width, break_long_words=False)) or str(text)


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


def scale_bar(ax, pixel_scale: float | None, width_px: float, *, origin=(0.0, 0.0)) -> None:
    """An arcsec scale bar in the lower left of an image panel ``width_px`` HR pixels wide
    whose lower-left data corner is ``origin`` (x, y); nothing when ``pixel_scale`` is None.

    The bar is the largest of 2, 1, 0.5, 0.2, 0.1 arcsec that fits in a third of the panel.
    """
    if not pixel_scale:
        return
    span = width_px * pixel_scale
    length = next((v for v in (2.0, 1.0, 0.5, 0.2, 0.1) if v <= span / 3), None)
    if length is None:
        return
    x0, y0 = origin
    pad = 0.06 * width_px
    bar_px = length / pixel_scale
    from matplotlib import patheffects

    outline = [patheffects.withStroke(linewidth=2.5, foreground="black")]
    ax.plot(
        [x0 + pad, x0 + pad + bar_px],
        [y0 - pad, y0 - pad],
        color="white",
        lw=2.5,
        path_effects=[patheffects.withStroke(linewidth=4, foreground="black")],
    )
    label = f"{length:g}″"
    ax.text(
        x0 + pad + bar_px / 2,
        y0 - pad - 0.03 * width_px,
        label,
        color="white",
        ha="center",
        va="bottom",
        fontsize=FONT_PT,
        fontweight="bold",
        path_effects=outline,
    )


def new_figure(rows: int, cols: int, *, height: float, width: float = PAGE_WIDTH_IN):
    """A constrained-layout Figure ``width`` x ``height`` inches (width capped at
    :data:`PAGE_WIDTH_IN`) with ``rows`` x ``cols`` axes (always a 2-D array)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(min(width, PAGE_WIDTH_IN), height), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    return fig, axes


def colorbar(fig, image, axes, label: str):
    """A colour bar for ``image`` beside ``axes`` with ``label`` and legible ticks."""
    bar = fig.colorbar(image, ax=axes, shrink=0.9, pad=0.02, aspect=25)
    bar.ax.tick_params(labelsize=FONT_PT)
    bar.set_label(label, fontsize=FONT_PT)
    return bar


def small_texts(fig, floor: float = MIN_FONT_PT) -> list[str]:
    """The visible, non-empty texts of ``fig`` (tick labels included) smaller than
    ``floor`` points; [] for a legible figure. Draws the figure once."""
    from matplotlib.text import Text

    fig.canvas.draw()  # tick labels exist only after a draw
    return [
        f"{t.get_text()!r} at {t.get_fontsize():.1f} pt"
        for t in fig.findobj(Text)
        if t.get_visible() and t.get_text().strip() and t.get_fontsize() < floor - 1e-6
    ]


def save_figure(fig, path: str | os.PathLike, *, dpi: int = DPI) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix, default PNG) at ``dpi`` (default
    :data:`DPI`) through a temporary file in the same folder; returns ``path``. PNGs are
    written opaque (RGB on white): an alpha channel adds bytes and nothing else."""
    path = Path(path)
    fmt = path.suffix.lstrip(".").lower() or "png"
    with atomic_path(path) as tmp:
        if fmt == "png":
            from PIL import Image

            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=dpi, facecolor="white")
            rgb = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
            rgb.save(tmp, format="PNG", dpi=(dpi, dpi), optimize=True)
        else:
            fig.savefig(tmp, format=fmt, dpi=dpi)
    return path
