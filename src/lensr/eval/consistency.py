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


def trust_figure(rows: Sequence[dict], path, *, error_label: str = "|SR - noise-free HR|") -> Path:
    """One row per flagged image: SR | LR chi2 map | sigma map | |error| (those present).

    Each row is a dict with "label" (str), "sr" (H, W) and optional "chi2" (h, w),
    "sigma" (H, W) and "error" (H, W) arrays (None when not measured). The chi2 map is
    drawn on the HR extent with a colour scale from 0 to max(5, its 99th percentile);
    sigma and |error| share one scale per row, so a calibrated sigma looks like the
    error. Written atomically; returns ``path``.

    Example::

        trust_figure([{"label": "rcan #12", "sr": sr, "chi2": m, "sigma": s}], "trust.png")
    """
    from lensr.eval.figures import blank_axis as _blank
    from lensr.eval.figures import new_figure as _new_figure
    from lensr.eval.figures import robust_limits as _limits
    from lensr.eval.figures import save_figure as _save

    if not rows:
        raise LensrError("no flagged images to plot")
    columns = [("sr", "SR")] + [
        (key, title)
        for key, title in (
            ("chi2", "LR χ² per pixel"),
            ("sigma", "σ (TTA)"),
            ("error", error_label),
        )
        if any(r.get(key) is not None for r in rows)
    ]
    fig, axes = _new_figure(len(rows), len(columns), height=1.9 * len(rows) + 0.4, extra_width=1.2)
    for i, row in enumerate(rows):
        sr = np.asarray(row["sr"])
        h, w = sr.shape
        extent = (-0.5, w - 0.5, h - 0.5, -0.5)
        spread = [np.asarray(row[k]) for k in ("sigma", "error") if row.get(k) is not None]
        top = (
            float(np.percentile(np.concatenate([a.ravel() for a in spread]), 99.5))
            if spread
            else 1.0
        )
        for j, (key, title) in enumerate(columns):
            ax = axes[i, j]
            _blank(ax)
            image = row.get(key)
            if image is None:
                ax.set_facecolor("#eeeeee")
                continue
            image = np.asarray(image)
            if key == "sr":
                vmin, vmax, cmap = *_limits(image), "magma"
            elif key == "chi2":
                vmin, vmax, cmap = 0.0, max(5.0, float(np.percentile(image, 99))), "viridis"
            else:
                vmin, vmax, cmap = 0.0, top or 1e-12, "cividis"
            im = ax.imshow(
                image, cmap=cmap, vmin=vmin, vmax=vmax, extent=extent, interpolation="nearest"
            )
            if key != "sr":
                fig.colorbar(im, ax=ax, shrink=0.8, pad=0.02).ax.tick_params(labelsize=6)
            if key == "chi2":
                ax.text(
                    0.03,
                    0.03,
                    f"mean {image.mean():.3g}",
                    transform=ax.transAxes,
                    fontsize=7,
                    bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1.5},
                )
            if i == 0:
                ax.set_title(title, fontsize=9)
        axes[i, 0].set_ylabel(str(row.get("label", f"image {i}")), fontsize=8)
    return _save(fig, path)
