"""Summaries of a dataset (`lensr inspect`); its preview figure: :mod:`lensr.eval.data_preview`."""

from __future__ import annotations

import numpy as np

from lensr.data.store import LensDataset


def _sample_positions(n: int, limit: int) -> np.ndarray:
    return np.unique(np.linspace(0, n - 1, min(n, limit)).astype(int))


MAD_TO_SIGMA = 1.4826
"""Median absolute deviation -> standard deviation for Gaussian noise."""


def estimate_noise_sigma(images: np.ndarray) -> np.ndarray:
    """Noise standard deviation per image, (N,) for (N, H, W) or a scalar for (H, W), from
    the median absolute deviation (MAD) of horizontal neighbour differences / sqrt(2).

    Differences of neighbouring pixels remove the smooth lens light and arcs, leaving
    sqrt(2) x the noise; the MAD ignores the few large differences at sharp edges. The
    one noise estimate for data without a noise model (`lensr inspect`, the LR chi-square
    and projection of imported data, physics training with ``noise="uniform"``); computed
    in the images' own precision.

    Example::

        sigma = estimate_noise_sigma(ds.lr[:8])    # (8,)
    """
    diff = np.diff(images, axis=-1)
    mad = np.median(np.abs(diff - np.median(diff, axis=(-2, -1), keepdims=True)), axis=(-2, -1))
    return MAD_TO_SIGMA * mad / np.sqrt(2.0)


def estimate_peak_snr(images: np.ndarray) -> np.ndarray:
    """Peak S/N per image with the noise from :func:`estimate_noise_sigma`.

    Used for imported data, which carries no noise model.
    """
    sigma = estimate_noise_sigma(images)
    background = np.median(images, axis=(-2, -1))
    return (images.max(axis=(-2, -1)) - background) / np.maximum(sigma, 1e-30)


def summarize(ds: LensDataset, *, max_images: int = 2000) -> dict:
    """Counts, shapes, value ranges, S/N and class balance, reading at most ``max_images``."""
    labels = ds.labels
    names = ds.class_names or [str(i) for i in range(labels.max() + 1)]
    pos = _sample_positions(len(ds), max_images)
    out = {
        "path": str(ds.path),
        "n": len(ds),
        "hr_shape": ds.hr_shape,
        "lr_shape": ds.lr_shape,
        "scale": ds.scale,
        "classes": {name: int((labels == k).sum()) for k, name in enumerate(names)},
        "preset": ds.attrs.get("preset", ds.attrs.get("producer", "")),
        "units": ds.attrs.get("units", "unknown"),
    }
    for key in ("hr", "lr", "hr_clean"):
        data = ds.file[key][pos] if key in ds.file else None
        if data is not None:
            out[key] = {
                "min": float(data.min()),
                "p50": float(np.percentile(data, 50)),
                "p99": float(np.percentile(data, 99)),
                "max": float(data.max()),
            }
    params = ds.params
    if params is not None and "peak_snr_hr" in params.dtype.names:
        snr_hr, snr_lr, how = params["peak_snr_hr"], params["peak_snr_lr"], "simulated"
    else:
        snr_hr, snr_lr = estimate_peak_snr(ds.hr[pos]), estimate_peak_snr(ds.lr[pos])
        how = "estimated"
    if how == "simulated" and np.isinf(snr_hr).all():  # noise switched off: no S/N to give
        out["snr"] = {"how": "noise-free", "hr": None, "lr": None}
        return out
    out["snr"] = {"how": how}
    for key, snr in (("hr", snr_hr), ("lr", snr_lr)):
        out["snr"][key] = {
            q: float(np.percentile(snr, p)) for q, p in (("p5", 5), ("p50", 50), ("p95", 95))
        }
    return out
