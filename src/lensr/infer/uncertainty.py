"""Per-pixel uncertainty of SR images: dihedral test-time augmentation and ensembles.

A lens image has no preferred orientation, so a model's answer should not depend on how
the LR image is rotated or mirrored. Each of the 8 dihedral transforms (4 rotations x
optional mirror) is applied to the LR image, the image upscaled, the transform undone, and
the per-pixel mean and standard deviation (population, ddof=0) taken over the 8 outputs.
With several models (an ensemble) the statistics run over every model x transform.
Where the outputs disagree the model is guessing: a large ``sigma`` marks pixels not to
trust. A model that is exactly equivariant (interpolation baselines) gets sigma = 0, so
sigma is a lower bound on the error, never a full error bar; :func:`calibration` says
how far from one it is on simulated data.

Cost: 8 upscales per model (7 more than a plain run when the plain output is passed in).

Example::

    from lensr.infer.uncertainty import predict_with_uncertainty, calibration
    mean, sigma = predict_with_uncertainty(lr, [model])        # (N, sH, sW) each
    calibration(mean, sigma, hr_clean)   # {"within_1sigma": 0.41, "within_2sigma": 0.62}
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch import nn

from lensr.errors import LensrError
from lensr.infer.arrays import upscale_array

DIHEDRAL: tuple[tuple[int, bool], ...] = tuple((k, f) for f in (False, True) for k in range(4))
"""The 8 dihedral transforms as (quarter turns, mirror); (0, False) is the identity."""

GAUSSIAN_COVERAGE = {"within_1sigma": 0.6827, "within_2sigma": 0.9545}
"""The fractions a calibrated Gaussian error bar would give."""


def dihedral_transform(images: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """Rotate (N, H, W) images by ``k`` quarter turns, then mirror left-right if ``flip``.

    Example::

        dihedral_transform(x, 1, True).shape == x.shape[:1] + x.shape[:0:-1]   # H and W swap
    """
    out = np.rot90(images, k, axes=(-2, -1))
    return out[..., ::-1] if flip else out


def dihedral_inverse(images: np.ndarray, k: int, flip: bool) -> np.ndarray:
    """The inverse of :func:`dihedral_transform` ``(k, flip)``.

    Example::

        np.array_equal(dihedral_inverse(dihedral_transform(x, 3, True), 3, True), x)   # True
    """
    out = images[..., ::-1] if flip else images
    return np.rot90(out, -k, axes=(-2, -1))


def tta_outputs(
    lr: np.ndarray, model: nn.Module, *, identity: np.ndarray | None = None, **options
) -> Iterator[np.ndarray]:
    """The 8 dihedral predictions of ``model`` for ``lr`` (N, h, w), each back in place.

    ``identity`` (default None) is the model's plain output, if already computed: it is
    yielded instead of being recomputed. ``options`` go to
    :func:`lensr.infer.arrays.upscale_array` (batch_size, tile, overlap, device).

    Example::

        outputs = list(tta_outputs(lr, model))      # 8 arrays (N, sh, sw)
    """
    for k, flip in DIHEDRAL:
        if (k, flip) == (0, False) and identity is not None:
            yield np.asarray(identity, dtype=np.float32)
            continue
        sr = upscale_array(np.ascontiguousarray(dihedral_transform(lr, k, flip)), model, **options)
        yield np.ascontiguousarray(dihedral_inverse(sr, k, flip))


class _Welford:
    """Running mean and population variance (numerically stable), float64."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, None, None

    def add(self, x: np.ndarray) -> None:
        x = np.asarray(x, dtype=np.float64)
        self.n += 1
        if self.mean is None:
            self.mean, self.m2 = x.copy(), np.zeros_like(x)
            return
        delta = x - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (x - self.mean)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        return self.mean.astype(np.float32), np.sqrt(self.m2 / self.n).astype(np.float32)


def predict_with_uncertainty(
    lr: np.ndarray,
    models: nn.Module | Sequence[nn.Module],
    *,
    tta: bool = True,
    identity: np.ndarray | None = None,
    calibrate: bool = True,
    **options,
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and per-pixel std over ``models`` x 8 dihedral transforms: float32 (N, sH, sW) x 2.

    ``lr`` is an (N, h, w) stack. ``models`` is one model or several of the same scale
    (an ensemble). ``tta`` (default True) uses the 8 transforms; False uses the plain
    outputs only (then at least two models are needed). ``identity`` (default None) is
    the first model's plain output, reused when given. ``options`` go to
    :func:`lensr.infer.arrays.upscale_array`.

    Example::

        mean, sigma = predict_with_uncertainty(lr, [model_a, model_b])   # 16 upscales
    """
    models = [models] if isinstance(models, nn.Module) else list(models)
    if not models:
        raise LensrError("predict_with_uncertainty needs at least one model")
    if not tta and len(models) < 2:
        raise LensrError("without test-time augmentation the uncertainty needs >= 2 models")
    scales = {getattr(m, "scale", None) for m in models}
    if len(scales) != 1:
        raise LensrError(f"the models of an ensemble must share one scale, got {sorted(scales)}")
    stats = _Welford()
    for i, model in enumerate(models):
        plain = identity if i == 0 else None
        if tta:
            for out in tta_outputs(lr, model, identity=plain, **options):
                stats.add(out)
        else:
            stats.add(plain if plain is not None else upscale_array(lr, model, **options))
    mean, sigma = stats.result()
    calib = calibration_of(models[0]) if calibrate and len(models) == 1 else None
    if calib is not None:
        sigma = apply_calibration(sigma, calib, image_scale(lr))
    return mean, sigma


# Calibration ---------------------------------------------------------------------------

SCALE_PERCENTILE = 99.5
"""Per-image brightness scale: this percentile of the LR image (known at inference time)."""


def image_scale(lr: np.ndarray) -> np.ndarray:
    """(N,) brightness scale of each LR image: its 99.5th percentile (>= 1e-12)."""
    lr = np.asarray(lr, dtype=np.float64)
    flat = lr.reshape(lr.shape[0], -1) if lr.ndim == 3 else lr.reshape(1, -1)
    return np.maximum(np.percentile(flat, SCALE_PERCENTILE, axis=1), 1e-12)


def coverage(err: np.ndarray, sigma: np.ndarray) -> dict[str, float]:
    """Pooled fractions of ``err`` within 1 and 2 ``sigma`` (same-shape arrays)."""
    err, sigma = np.abs(np.asarray(err)), np.asarray(sigma)
    return {
        "within_1sigma": float((err <= sigma).mean()),
        "within_2sigma": float((err <= 2 * sigma).mean()),
    }


def apply_calibration(sigma: np.ndarray, calib: dict, scale) -> np.ndarray:
    """Calibrated sigma ``a * sigma + b * scale`` (``scale``: per image, broadcast over pixels).

    Example::

        apply_calibration(sigma, {"a": 2.1, "b": 0.004}, image_scale(lr))
    """
    scale = np.asarray(scale, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    scale = scale.reshape(scale.shape + (1,) * (sigma.ndim - scale.ndim))
    return (calib["a"] * sigma + calib["b"] * scale).astype(np.float32)


def fit_calibration(err, sigma, scale, *, n_b: int = 40) -> dict[str, float]:
    """Fit ``a, b`` so that ``a * sigma + b * scale`` covers ``|err|`` in 68.27 % of the
    samples within 1 sigma and as close as possible to 95.45 % within 2 sigma.

    ``err``, ``sigma`` and ``scale`` are 1-D samples (pixels pooled over calibration
    images; ``scale`` the image's :func:`image_scale`). For each candidate floor ``b``
    (quantiles of ``|err| / scale``), ``a`` is found by bisection to give 68.27 % exactly;
    the ``b`` whose 2-sigma coverage is nearest 95.45 % wins. Raises ``LensrError`` on
    empty input.

    Example::

        calib = fit_calibration(err, sigma, scale)   # {"a": ..., "b": ...}
    """
    err, sigma, scale = (
        np.abs(np.asarray(v, dtype=np.float64)).ravel() for v in (err, sigma, scale)
    )
    if err.size == 0 or not err.size == sigma.size == scale.size:
        raise LensrError("calibration needs matching, non-empty error and sigma samples")
    t1, t2 = GAUSSIAN_COVERAGE["within_1sigma"], GAUSSIAN_COVERAGE["within_2sigma"]
    rel = err / scale
    best = None
    for b in np.concatenate([[0.0], np.quantile(rel, np.linspace(0.01, t1, n_b))]):
        lo, hi = 0.0, 1.0
        while hi < 1e8 and (err <= hi * sigma + b * scale).mean() < t1:
            hi *= 4
        for _ in range(50):
            mid = 0.5 * (lo + hi)
            if (err <= mid * sigma + b * scale).mean() < t1:
                lo = mid
            else:
                hi = mid
        c2 = (err <= 2 * (hi * sigma + b * scale)).mean()
        if best is None or abs(c2 - t2) < best[0]:
            best = (abs(c2 - t2), float(hi), float(b))
    return {"a": best[1], "b": best[2]}


def calibration_of(model: nn.Module) -> dict | None:
    """The sigma calibration stored in a checkpoint's sidecar (``sigma_calibration``), the
    one fitted on the model's own training preset when there are several, else None."""
    meta = getattr(model, "metadata", None) or {}
    fits = meta.get("sigma_calibration") or []
    if not fits:
        return None
    preset = (meta.get("data") or {}).get("preset")
    own = [f for f in fits if f.get("preset") == preset]
    return (own or fits)[-1]


def calibration_per_image(
    mean: np.ndarray, sigma: np.ndarray, truth: np.ndarray
) -> dict[str, np.ndarray]:
    """Per image (N,): the fraction of pixels with |mean - truth| <= 1 and 2 sigma.

    Example::

        calibration_per_image(mean, sigma, hr_clean)["within_1sigma"]   # (N,)
    """
    mean, sigma, truth = (np.asarray(a, dtype=np.float64) for a in (mean, sigma, truth))
    if not mean.shape == sigma.shape == truth.shape:
        raise LensrError(
            f"mean, sigma and truth must share a shape, got {mean.shape}, {sigma.shape}, "
            f"{truth.shape}"
        )
    if mean.ndim == 2:
        mean, sigma, truth = mean[None], sigma[None], truth[None]
    err = np.abs(mean - truth)
    axes = tuple(range(1, err.ndim))
    return {
        "within_1sigma": (err <= sigma).mean(axis=axes),
        "within_2sigma": (err <= 2 * sigma).mean(axis=axes),
    }


def calibration(mean: np.ndarray, sigma: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """The fraction of pixels whose error lies within 1 and 2 sigma (ideal 0.683 / 0.954).

    ``mean`` and ``sigma`` come from :func:`predict_with_uncertainty`; ``truth`` is the
    noise-free HR image (same shape). Lower fractions mean sigma is too small
    (overconfident), higher ones too large.

    Example::

        calibration(mean, sigma, ds.hr_clean[:8])   # {"within_1sigma": ..., "within_2sigma": ...}
    """
    per_image = calibration_per_image(mean, sigma, truth)
    return {key: float(values.mean()) for key, values in per_image.items()}
