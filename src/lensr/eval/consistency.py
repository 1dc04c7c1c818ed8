"""LR-consistency: does an SR image, seen through the LR instrument, give back the LR image?

A super-resolved image is a claim about the sky at HR. Degrading it with the LR instrument
``D`` (:class:`lensr.instrument.operators.Degradation`: LR PSF on the HR grid, then an
s x s block mean) must reproduce the observed LR image up to its noise. The chi-square per
LR pixel

    chi2 = mean((D(SR) - LR)^2 / var)

is ~1 for a truthful model (the noise-free HR scores ~1), more for a model that erases
or invents structure the LR data rule out, and below 1 for one that copies the LR noise.

The variance is the noise model evaluated on ``D(SR)``, the model's own prediction of
the LR image (Pearson's chi-square), not on the observed LR: weights taken from the
noisy data correlate with its noise (low pixels get small variances) and bias chi2 high.

The instrument of any dataset comes from :mod:`lensr.instrument.from_dataset`: stored for
simulated datasets (:func:`~lensr.instrument.from_dataset.instrument_for`); for imported
data, :func:`~lensr.instrument.from_dataset.lr_instrument` builds a Gaussian ``D`` from a
user-given LR PSF FWHM and a constant per-image noise variance estimated from the LR image
itself; with no FWHM the LR-consistency check is skipped with a note (a
:class:`LensrError` saying why).

Example::

    from lensr.eval.consistency import lr_chi2
    from lensr.instrument.from_dataset import lr_instrument
    inst = lr_instrument(ds, range(8), lr=ds.lr[:8])
    chi2, maps = lr_chi2(sr, ds.lr[:8], inst.D, inst.variance)   # (8,), (8, h, w)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lensr.errors import LensrError
from lensr.instrument.from_dataset import VarianceFn
from lensr.instrument.operators import Degradation


def lr_chi2(
    sr: np.ndarray, lr: np.ndarray, D: Degradation, variance_fn: VarianceFn
) -> tuple[np.ndarray, np.ndarray]:
    """Chi-square per LR pixel of ``D(sr)`` against the observed ``lr``: ``((N,), (N, h, w))``.

    ``sr`` (N, H, W) with H = s*h, ``lr`` (N, h, w), ``D`` the images' LR instrument and
    ``variance_fn`` their noise model, evaluated on ``D(sr)`` (see the module docstring).
    Returns the per-image mean chi-square per pixel and the per-pixel chi-square maps.

    Example::

        D, variance = instrument_for(ds, np.arange(8))
        chi2, maps = lr_chi2(ds.hr_clean[:8], ds.lr[:8], D, variance)   # chi2 ~ 1
    """
    sr, lr = np.asarray(sr), np.asarray(lr, dtype=np.float64)
    if sr.ndim != 3 or lr.ndim != 3 or len(sr) != len(lr):
        raise LensrError(f"lr_chi2 needs (N,H,W) and (N,h,w) stacks, got {sr.shape}, {lr.shape}")
    model = D.apply_numpy(sr)
    if model.shape != lr.shape:
        raise LensrError(f"D(sr) has shape {model.shape} but the LR images have {lr.shape}")
    var = np.broadcast_to(variance_fn(model), model.shape)
    maps = (model - lr) ** 2 / np.maximum(var, np.finfo(np.float64).tiny)
    return maps.mean(axis=(1, 2)), maps


def _trust_groups(rows: Sequence[dict]) -> dict[str, list[dict]]:
    """Rows grouped by the image they flag (``"image"``, else ``"label"``), in order."""
    groups: dict[str, list[dict]] = {}
    for i, row in enumerate(rows):
        key = str(row.get("image") or row.get("label") or f"image {i}")
        groups.setdefault(key, []).append(row)
    return groups


def trust_layout(
    rows: Sequence[dict], *, error_label: str = "|SR - noise-free HR|", meta: dict | None = None
):
    """The Figure of :func:`trust_figure` (not saved; the tests inspect it)."""
    from matplotlib.colors import LogNorm

    from lensr.eval.figure_style import (
        FONT_PT,
        IMAGE_CMAP,
        blank_axis,
        brightness_label,
        colormap,
        new_figure,
        robust_limits,
        scale_bar,
    )

    if not rows:
        raise LensrError("no flagged images to plot")
    meta = meta or {}
    columns = [
        (key, title)
        for key, title in (
            ("chi2", "LR χ² per pixel"),
            ("sigma", "raw σ (dihedral TTA)"),
            ("error", error_label),
        )
        if any(r.get(key) is not None for r in rows)
    ]
    cols = max(len(columns), 1)
    groups = _trust_groups(rows)
    n_rows = sum(1 + len(g) for g in groups.values())
    fig, axes = new_figure(n_rows, cols, height=1.95 * n_rows + 1.0, width=2.1 * cols + 1.6)
    # One colour scale per compared quantity over the whole figure; sigma and |error| share
    # theirs (same units), so a calibrated sigma looks like the error.
    chi2_all = [np.asarray(r["chi2"]).ravel() for r in rows if r.get("chi2") is not None]
    chi2_top = max(5.0, float(np.percentile(np.concatenate(chi2_all), 99))) if chi2_all else 5.0
    spread = [
        np.asarray(r[k]).ravel() for r in rows for k in ("sigma", "error") if r.get(k) is not None
    ]
    top = float(np.percentile(np.concatenate(spread), 99.5)) if spread else 1.0
    # chi2 spans decades between models (1 for the truth, 100s for a bad one): log scale.
    limits = {"chi2": (0.1, chi2_top, "viridis"), "sigma": (0.0, top or 1e-12, "cividis")}
    limits["error"] = limits["sigma"]
    shown: dict[str, tuple] = {}
    r = 0
    for image_key, group in groups.items():
        head = axes[r]
        reference = group[0].get("reference")
        picture = np.asarray(reference if reference is not None else group[0]["sr"])
        h, w = picture.shape
        vmin, vmax = robust_limits(picture)
        im = head[0].imshow(
            picture, cmap=colormap(IMAGE_CMAP), vmin=vmin, vmax=vmax, interpolation="nearest"
        )
        blank_axis(head[0])
        scale_bar(head[0], meta.get("pixel_scale"), w, origin=(-0.5, h - 0.5))
        truth = "noise-free HR" if "noise-free" in error_label else "HR"
        what = truth if reference is not None else f"output of {group[0].get('model', '')}"
        head[0].set_title(f"{image_key}: {what}", fontsize=FONT_PT, loc="left")
        # An inset colour bar: it must not widen the first column (the maps align below).
        host = head[1] if cols > 1 else head[0]
        box = [0.0, 0.0, 0.07, 1.0] if cols > 1 else [1.04, 0.0, 0.06, 1.0]
        bar = fig.colorbar(im, cax=host.inset_axes(box))
        bar.ax.tick_params(labelsize=FONT_PT)
        bar.set_label(brightness_label(meta), fontsize=FONT_PT)
        models = ", ".join(str(g.get("model") or g.get("label")) for g in group)
        for ax in head[1:]:
            ax.set_axis_off()
        if cols > 1:
            head[-1].text(
                0.1 if cols > 2 else 0.55,
                0.5,
                "flagged by:\n" + "\n".join(models.split(", ")),
                fontsize=FONT_PT,
                va="center",
                transform=head[-1].transAxes,
            )
        r += 1
        for first, row in zip([True] + [False] * len(group), group, strict=False):
            for j, (key, title) in enumerate(columns):
                ax = axes[r, j]
                blank_axis(ax)
                image = row.get(key)
                if image is None:
                    ax.set_facecolor("#eeeeee")
                    continue
                image = np.asarray(image)
                lo, hi, cmap = limits[key]
                scale = {"norm": LogNorm(lo, hi, clip=True)} if key == "chi2" else {}
                scale = scale or {"vmin": lo, "vmax": hi}
                shown[key] = ax.imshow(
                    image,
                    cmap=colormap(cmap),
                    **scale,
                    extent=(-0.5, w - 0.5, h - 0.5, -0.5),
                    interpolation="nearest",
                )
                if key == "chi2":
                    ax.text(
                        0.03,
                        0.03,
                        f"mean {image.mean():.3g}",
                        transform=ax.transAxes,
                        fontsize=FONT_PT,
                        bbox={"facecolor": "white", "alpha": 1.0, "edgecolor": "none", "pad": 1.5},
                    )
                if first:
                    ax.set_title(title, fontsize=FONT_PT)
            axes[r, 0].set_ylabel(
                str(row.get("model") or row.get("label", "")), fontsize=FONT_PT, fontweight="bold"
            )
            r += 1
    units = brightness_label(meta).replace("\n", " ")
    labels = {"chi2": "χ² per LR pixel (log scale)", "sigma": f"σ, |error|: {units}"}
    labels["error"] = "" if "sigma" in shown else f"|error|: {units}"
    for j, (key, _) in enumerate(columns):
        if key in shown:
            body = [ax for ax in axes[:, j] if ax.images and ax.images[0] is not None]
            body = [ax for ax in body if ax.images[0].get_cmap().name == limits[key][2]]
            bar = fig.colorbar(shown[key], ax=body, location="bottom", shrink=0.9, aspect=30)
            bar.ax.tick_params(labelsize=FONT_PT)
            if labels[key]:
                bar.set_label(labels[key], fontsize=FONT_PT)
    return fig


def trust_figure(
    rows: Sequence[dict],
    path,
    *,
    error_label: str = "|SR - noise-free HR|",
    meta: dict | None = None,
) -> Path:
    """Each flagged image once: its truth (or output), then per model that flags it the LR
    chi2 map, the sigma map and the |error| (those present).

    Each row is a dict with "model" (str), "image" (the test image's label; rows with the
    same one are drawn as one block), "sr" (H, W), optional "reference" (H, W: the truth,
    drawn once per image) and optional "chi2" (h, w), "sigma" (H, W) and "error" (H, W)
    arrays (None when not measured); a legacy "label" stands in for both names. Every
    compared quantity has one colour scale over the whole figure: chi2 on a log scale
    from 0.1 to max(5, its 99th percentile); sigma and |error| one scale together, so a calibrated
    sigma looks like the error. ``meta`` (:func:`lensr.eval.figure_style.image_meta`)
    adds units and scale bars. Written atomically; returns ``path``.

    Example::

        trust_figure([{"model": "rcan", "image": "#12", "sr": sr, "chi2": m}], "trust.png")
    """
    from lensr.eval.figure_style import save_figure

    return save_figure(trust_layout(rows, error_label=error_label, meta=meta), path)
