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
        sigma = apply_calibration(sigma, calib, lr, mean)
    return mean, sigma


# Calibration ---------------------------------------------------------------------------

SCALE_PERCENTILE = 99.5
"""Per-image brightness scale of the legacy calibration form: this LR percentile."""
RELIABILITY_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.683, 0.8, 0.9, 0.954, 0.99)
"""Nominal levels of the reliability curve (0.683 and 0.954: within 1 and 2 sigma)."""
LEVEL_TOLERANCE = {0.683: 0.05, 0.954: 0.03}
"""The coverage a calibrated sigma must reach within 1 and 2 sigma, +- these."""
OTHER_TOLERANCE = 0.1
"""The tolerance the fit assumes at the other levels of the curve."""
CALIBRATION_TERMS = ("sigma", "lr_noise", "abs_mean")
"""The calibrated sigma: ``a * sigma + b * lr_noise + c * |mean|``."""
PARSIMONY = 1e-4
"""A term of the calibration is kept only if it lowers the fit's loss by more than this."""
FIT_SAMPLES = 60_000
"""Most samples the calibration fit uses (a fixed random subset of larger inputs)."""


def image_scale(lr: np.ndarray) -> np.ndarray:
    """(N,) brightness scale of each LR image: its 99.5th percentile (>= 1e-12)."""
    lr = np.asarray(lr, dtype=np.float64)
    flat = lr.reshape(lr.shape[0], -1) if lr.ndim == 3 else lr.reshape(1, -1)
    return np.maximum(np.percentile(flat, SCALE_PERCENTILE, axis=1), 1e-12)


def image_noise(lr: np.ndarray) -> np.ndarray:
    """(N,) noise standard deviation of each LR image (N, h, w) or (h, w), from the image
    itself (:func:`lensr.data.inspect.estimate_noise_sigma`); known at inference time."""
    from lensr.data.inspect import estimate_noise_sigma

    lr = np.asarray(lr, dtype=np.float64)
    return np.atleast_1d(estimate_noise_sigma(lr[None] if lr.ndim == 2 else lr))


def coverage(err: np.ndarray, sigma: np.ndarray) -> dict[str, float]:
    """Pooled fractions of ``err`` within 1 and 2 ``sigma`` (same-shape arrays)."""
    err, sigma = np.abs(np.asarray(err)), np.asarray(sigma)
    return {
        "within_1sigma": float((err <= sigma).mean()),
        "within_2sigma": float((err <= 2 * sigma).mean()),
    }


def calibrated_sigma(calib: dict, sigma, noise, mean) -> np.ndarray:
    """``a * sigma + b * noise + c * |mean|`` (float32; arrays broadcast): the calibrated
    sigma of :func:`fit_calibration` from samples of the raw sigma, the LR noise of their
    image (:func:`image_noise`) and the SR mean."""
    sigma, noise, mean = (np.asarray(v, dtype=np.float64) for v in (sigma, noise, mean))
    out = calib["a"] * sigma + calib["b"] * noise + calib["c"] * np.abs(mean)
    return out.astype(np.float32)


def apply_calibration(sigma: np.ndarray, calib: dict, lr, mean=None) -> np.ndarray:
    """The calibrated sigma of ``sigma`` (N, sH, sW) for the LR images ``lr`` (N, h, w)
    and the SR ``mean`` (N, sH, sW): ``a * sigma + b * LR noise + c * |mean|`` (a fit of
    :func:`fit_calibration`, ``terms`` = :data:`CALIBRATION_TERMS`), or for a legacy fit
    (no ``terms``) ``a * sigma + b * LR p99.5``, per image.

    Example::

        apply_calibration(sigma, {"a": 1.2, "b": 0.1, "c": 0.05, "terms": [...]}, lr, mean)
    """
    sigma = np.asarray(sigma, dtype=np.float64)

    def per_image(values: np.ndarray) -> np.ndarray:
        return values.reshape(values.shape + (1,) * (sigma.ndim - values.ndim))

    if calib.get("terms") is None:
        return (calib["a"] * sigma + calib["b"] * per_image(image_scale(lr))).astype(np.float32)
    if list(calib["terms"]) != list(CALIBRATION_TERMS):
        raise LensrError(f"unknown sigma calibration terms {calib['terms']}")
    if mean is None:
        raise LensrError("this sigma calibration needs the SR mean image")
    noise = image_noise(lr)
    return calibrated_sigma(calib, sigma, per_image(noise if sigma.ndim > 2 else noise[0]), mean)


def _loss_and_scale(err: np.ndarray, shape: np.ndarray, z, weights, levels, ks):
    """The best multiplier k of ``shape`` (from ``ks``) and its weighted squared deviation of
    the coverage of ``k * shape`` from the nominal ``levels``."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(shape > 0, err / shape, np.where(err > 0, np.inf, 0.0))
    ratio.sort()
    cover = np.searchsorted(ratio, z[None, :] * ks[:, None], side="right") / ratio.size
    loss = ((cover - levels) ** 2 * weights).sum(axis=1)
    j = int(loss.argmin())
    return float(loss[j]), float(ks[j])


def fit_calibration(err, sigma, noise, mean, *, seed: int = 0) -> dict:
    """Fit ``sigma_cal = a * sigma + b * noise + c * |mean|`` to the samples so that its
    coverage of ``|err|`` follows the Gaussian one over the whole reliability curve.

    ``err``, ``sigma``, ``noise`` and ``mean`` are 1-D samples (pixels pooled over
    calibration images): the error against the truth, the raw dihedral sigma, the LR noise
    of the sample's image (:func:`image_noise`) and the SR mean. The three terms are an
    error model: the models' disagreement, a floor set by the data's noise (the error of
    a flat sky), and a relative error of bright pixels (arcs). ``a, b, c >= 0``, so the
    calibrated sigma grows with the raw one.

    The loss is the squared deviation of the coverage at each level of
    :data:`RELIABILITY_LEVELS` from the level, weighted by ``(0.1 / tolerance)^2``
    (:data:`LEVEL_TOLERANCE` at 1 and 2 sigma, :data:`OTHER_TOLERANCE` elsewhere). For
    each ``(b, c)`` on a log grid (with 0) around the samples' typical ratios, then refined
    twice, the best overall scale is found on a fine grid; a form with fewer terms wins
    when its loss is within :data:`PARSIMONY` of the best. At most
    :data:`FIT_SAMPLES` samples are used (a fixed random subset, ``seed``). Gaussian errors
    of the raw sigma give ``a ~ 1, b ~ c ~ 0``. Raises ``LensrError`` on empty, mismatched
    or non-finite input.

    Example::

        calib = fit_calibration(err, sigma, noise, mean)   # {"a", "b", "c", "terms", ...}
    """
    from scipy.special import ndtri

    arrays = [np.abs(np.asarray(v, dtype=np.float64)).ravel() for v in (err, sigma, noise, mean)]
    err, sigma, noise, mean = arrays
    if err.size == 0 or len({a.size for a in arrays}) != 1:
        raise LensrError("calibration needs matching, non-empty error and sigma samples")
    if not all(np.isfinite(a).all() for a in arrays):
        raise LensrError("calibration samples must be finite")
    if err.size > FIT_SAMPLES:
        keep = np.random.default_rng(seed).choice(err.size, FIT_SAMPLES, replace=False)
        err, sigma, noise, mean = (a[keep] for a in (err, sigma, noise, mean))
    levels = np.asarray(RELIABILITY_LEVELS)
    z = ndtri((1.0 + levels) / 2.0)
    tol = np.array([LEVEL_TOLERANCE.get(v, OTHER_TOLERANCE) for v in RELIABILITY_LEVELS])
    weights = (OTHER_TOLERANCE / tol) ** 2
    typical = np.median(sigma) or np.median(err) or 1.0
    ks = np.geomspace(1e-3, 1e3, 2401)
    grid = np.concatenate([[0.0], np.geomspace(1e-2, 1e2, 11)])
    bases = [typical / m if m > 0 else 0.0 for m in (np.median(noise), np.median(mean))]

    def score(b: float, c: float) -> tuple[float, float, float, float]:
        return (*_loss_and_scale(err, sigma + b * noise + c * mean, z, weights, levels, ks), b, c)

    scores = [score(b, c) for b in grid * bases[0] for c in grid * bases[1]]
    best = min(scores, key=lambda t: t[0])
    for _ in range(2):
        steps = np.geomspace(0.6, 1.6, 5)
        around = [sorted({best[2] * f for f in steps}), sorted({best[3] * f for f in steps})]
        best = min([best] + [score(b, c) for b in around[0] for c in around[1]], key=lambda t: t[0])
    # The simplest form (fewest terms) that is as good: Gaussian errors keep b = c = 0.
    for terms in (0, 1):
        simpler = [t for t in scores if (t[2] > 0) + (t[3] > 0) == terms]
        if simpler and min(t[0] for t in simpler) <= best[0] + PARSIMONY:
            best = min(simpler, key=lambda t: t[0])
            break
    loss, k, b, c = best
    return {"a": k, "b": k * b, "c": k * c, "terms": list(CALIBRATION_TERMS), "loss": loss}


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
