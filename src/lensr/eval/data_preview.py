"""The preview figure of a dataset (`lensr inspect`, the study's data stage): examples per class.

One row per example (``per_class`` of each class, in class order): HR | LR | noise-free HR
(the last only for simulations), drawn over the same sky so the arcsec scale bar of the HR
panel reads for the row. Each row has one linear stretch (from its HR image) and one colour
bar in the dataset's units; text is at least :data:`~lensr.eval.figure_style.MIN_FONT_PT`.
Drawn with the shared style of :mod:`lensr.eval.figure_style`.

Example::

    from lensr.data.store import open_dataset
    from lensr.eval.data_preview import preview_grid
    with open_dataset("test.h5") as ds:
        preview_grid(ds, "test.png", per_class=2)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lensr.data.store import LensDataset
from lensr.errors import LensrError
from lensr.eval.figure_style import (
    FONT_PT,
    IMAGE_CMAP,
    blank_axis,
    brightness_label,
    colorbar,
    colormap,
    image_meta,
    new_figure,
    robust_limits,
    save_figure,
    scale_bar,
)

PANEL_IN = 2.0
"""Side (inches) of one image panel."""
MARGIN_IN = 1.9
"""Width (inches) left for the row label and the colour bar with its label."""


def _rows(ds: LensDataset, per_class: int) -> tuple[list[str], list[tuple[int, int]]]:
    """Class names and the (class, position) of each example shown."""
    if per_class < 1:
        raise LensrError(f"the preview needs at least 1 example per class, got {per_class}")
    labels = np.asarray(ds.labels)
    names = list(ds.class_names or [str(k) for k in range(int(labels.max()) + 1)])
    rows = [(k, int(i)) for k in range(len(names)) for i in np.flatnonzero(labels == k)[:per_class]]
    if not rows:
        raise LensrError(f"{ds.path}: no labelled images to preview")
    return names, rows


def preview_layout(ds: LensDataset, *, per_class: int = 3):
    """The Figure of :func:`preview_grid` (not saved; the tests inspect it)."""
    names, rows = _rows(ds, per_class)
    kinds = [("HR", ds.hr), ("LR", ds.lr)]
    if ds.hr_clean is not None:
        kinds.append(("noise-free HR", ds.hr_clean))
    meta = image_meta(ds.attrs)
    h, w = ds.hr_shape
    width = PANEL_IN * len(kinds) + MARGIN_IN
    fig, axes = new_figure(len(rows), len(kinds), height=PANEL_IN * len(rows) + 0.3, width=width)
    extent = (-0.5, w - 0.5, h - 0.5, -0.5)  # HR pixel coordinates for every panel
    for r, (k, i) in enumerate(rows):
        hr = np.asarray(ds.hr[i], dtype=np.float32)
        vmin, vmax = robust_limits(hr)
        image = None
        for c, (title, images) in enumerate(kinds):
            ax = axes[r, c]
            image = ax.imshow(
                np.asarray(images[i], dtype=np.float32),
                cmap=colormap(IMAGE_CMAP),
                vmin=vmin,
                vmax=vmax,
                extent=extent,
                interpolation="nearest",
            )
            blank_axis(ax)
            if r == 0:
                ax.set_title(title, fontsize=FONT_PT + 0.5)
        scale_bar(axes[r, 0], meta.get("pixel_scale"), w, origin=(-0.5, h - 0.5))
        axes[r, 0].set_ylabel(f"{names[k]}  #{i}", fontsize=FONT_PT + 0.5, fontweight="bold")
        colorbar(fig, image, list(axes[r]), brightness_label(meta))
    return fig


def preview_grid(ds: LensDataset, path: str | Path, *, per_class: int = 3) -> Path:
    """Write the preview PNG of ``ds`` to ``path``: ``per_class`` (default 3) examples of
    each class, one row each, as HR | LR | noise-free HR with one stretch and colour bar
    (dataset units) per row and an arcsec scale bar when the pixel scale is known.
    Returns ``path``; raises ``LensrError`` for ``per_class`` < 1.

    Example::

        preview_grid(ds, "runs/demo/data/test.png", per_class=2)
    """
    return save_figure(preview_layout(ds, per_class=per_class), path)
