"""Pixel-fidelity metrics under the one project convention (docs/design.md).

Convention: each target (HR) image is min-max normalised to [0, 1] and the SAME
affine map is applied to its prediction; then MSE, PSNR (``data_range = 1``)
and SSIM (Wang et al. 2004) are computed per image. Summaries average the
per-image values (mean of per-image PSNR, never PSNR of the mean MSE).

Example::

    from lensr.eval.metrics import score_images, summarize_scores
    scores = score_images(sr, hr)          # (N,H,W) arrays -> per-image values
    summarize_scores(scores)["psnr"]["mean"]

SSIM matches ``skimage.metrics.structural_similarity(a, b, data_range=1.0,
gaussian_weights=True, sigma=1.5, use_sample_covariance=False)`` to 1e-6 in
float64 (``ssim``) and ``ssim_torch`` matches it too (float32: ~1e-5).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.ndimage import correlate1d

from lensr.errors import LensrError
from lensr.eval.stats import bootstrap_summary

if TYPE_CHECKING:
    import torch

# Wang et al. 2004 constants, shared by the numpy and torch implementations.
SSIM_SIGMA = 1.5
SSIM_RADIUS = 5  # int(3.5 * sigma + 0.5): skimage's truncate=3.5 gives an 11-tap window
SSIM_WIN_SIZE = 2 * SSIM_RADIUS + 1
SSIM_K1 = 0.01
SSIM_K2 = 0.03

#: Summaries replace +inf PSNR (prediction exactly equal to target) by this value.
PSNR_CAP_DB = 100.0

_CHUNK = 64  # images per SSIM chunk: bounds memory on large evaluation sets


def gaussian_window() -> np.ndarray:
    """The normalised 1-D Gaussian taps (11, sigma 1.5), exactly as scipy.ndimage builds them."""
    x = np.arange(-SSIM_RADIUS, SSIM_RADIUS + 1, dtype=np.float64)
    g = np.exp(-0.5 / SSIM_SIGMA**2 * x**2)
    return g / g.sum()


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def normalize_to_target(pred: Any, target: Any) -> tuple[Any, Any]:
    """Min-max normalise each target image to [0, 1]; apply the same affine map to ``pred``.

    Works on numpy arrays (H,W) or (N,H,W) and torch tensors (N,H,W) or (N,C,H,W)
    (each leading index is one image). The prediction is not clipped. A constant
    target image uses scale 1 (it maps to zeros, no division by zero).
    Torch inputs stay on their device and keep their gradient.

    Example::

        p, t = normalize_to_target(np.array([[2.0, 4.0]]), np.array([[2.0, 6.0]]))
        # t == [[0, 1]], p == [[0, 0.5]]
    """
    if _is_torch(target):
        dims = tuple(range(1, target.ndim)) if target.ndim >= 3 else tuple(range(target.ndim))
        lo = target.amin(dim=dims, keepdim=True)
        span = target.amax(dim=dims, keepdim=True) - lo
        span = span.masked_fill(span == 0, 1.0)
        return (pred - lo) / span, (target - lo) / span
    t = np.asarray(target, dtype=np.float64)
    p = np.asarray(pred, dtype=np.float64)
    axes = tuple(range(1, t.ndim)) if t.ndim >= 3 else None
    lo = t.min(axis=axes, keepdims=True)
    span = t.max(axis=axes, keepdims=True) - lo
    span[span == 0] = 1.0
    return (p - lo) / span, (t - lo) / span


def _as_stack(x: Any, name: str) -> tuple[np.ndarray, bool]:
    """(H,W) / (N,H,W) / (N,1,H,W), numpy or torch -> float64 (N,H,W) and 'was single'."""
    if _is_torch(x):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if a.ndim == 4 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim == 2:
        return a[None], True
    if a.ndim != 3:
        raise LensrError(
            f"{name} has shape {_fmt_shape(a.shape)}; expected (H,W), (N,H,W) or (N,1,H,W)"
        )
    return a, False


def _fmt_shape(shape: tuple[int, ...]) -> str:
    return "(" + ",".join(str(s) for s in shape) + ")"


def _pair(pred: Any, target: Any) -> tuple[np.ndarray, np.ndarray, bool]:
    p, single = _as_stack(pred, "prediction")
    t, _ = _as_stack(target, "target")
    if p.shape != t.shape:
        raise LensrError(
            f"prediction has shape {_fmt_shape(p.shape)} but target has {_fmt_shape(t.shape)}"
        )
    return p, t, single


def _out(values: np.ndarray, single: bool) -> np.ndarray | float:
    return float(values[0]) if single else values


def mse(pred: Any, target: Any) -> np.ndarray | float:
    """Per-image mean squared error: a float for (H,W) inputs, an (N,) array for stacks.

    Example::

        mse(np.zeros((2, 8, 8)), np.full((2, 8, 8), 0.1))   # array([0.01, 0.01])
    """
    p, t, single = _pair(pred, target)
    return _out(((p - t) ** 2).mean(axis=(1, 2)), single)


def psnr(pred: Any, target: Any, *, data_range: float = 1.0) -> np.ndarray | float:
    """Per-image PSNR in dB, ``10 log10(data_range**2 / MSE)`` (default ``data_range=1``).

    An exactly equal pair has MSE 0 and gives +inf; ``summarize_scores`` caps it
    at ``PSNR_CAP_DB`` (100 dB) before averaging.

    Example::

        psnr(np.zeros((8, 8)), np.full((8, 8), 0.1))   # 20.0
    """
    p, t, single = _pair(pred, target)
    m = ((p - t) ** 2).mean(axis=(1, 2))
    with np.errstate(divide="ignore"):
        values = 10.0 * np.log10(data_range**2 / m)
    return _out(values, single)


def _ssim_stack(p: np.ndarray, t: np.ndarray, data_range: float) -> np.ndarray:
    g = gaussian_window()

    def filt(a: np.ndarray) -> np.ndarray:
        # 'reflect' matches skimage; the border it touches is cropped away below.
        a = correlate1d(a, g, axis=1, mode="reflect")
        return correlate1d(a, g, axis=2, mode="reflect")

    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    ux, uy = filt(p), filt(t)
    vx = filt(p * p) - ux * ux
    vy = filt(t * t) - uy * uy
    vxy = filt(p * t) - ux * uy
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    r = SSIM_RADIUS
    return s[:, r:-r, r:-r].mean(axis=(1, 2))


def _check_ssim_size(shape: tuple[int, ...]) -> None:
    if min(shape[-2:]) < SSIM_WIN_SIZE:
        raise LensrError(
            f"images of shape {_fmt_shape(shape[-2:])} are smaller than the "
            f"{SSIM_WIN_SIZE}x{SSIM_WIN_SIZE} SSIM window"
        )


def ssim(pred: Any, target: Any, *, data_range: float = 1.0) -> np.ndarray | float:
    """Per-image SSIM (Wang et al. 2004) in float64, mean over the valid region.

    Gaussian window 11 taps, sigma 1.5, K1 0.01, K2 0.03, population covariance;
    the SSIM map is cropped by the window radius (5 px) on each side before
    averaging, exactly like skimage with ``gaussian_weights=True``.

    Example::

        ssim(sr, hr)   # (N,) for (N,H,W) inputs, a float for (H,W)
    """
    p, t, single = _pair(pred, target)
    _check_ssim_size(p.shape)
    values = np.concatenate(
        [
            _ssim_stack(p[i : i + _CHUNK], t[i : i + _CHUNK], data_range)
            for i in range(0, len(p), _CHUNK)
        ]
    )
    return _out(values, single)


def ssim_torch(pred: torch.Tensor, target: torch.Tensor, *, data_range: float = 1.0):
    """Batched, differentiable SSIM in torch, on any device: (N,C,H,W) or (N,H,W) -> (N,).

    Same definition and constants as ``ssim`` (valid-region mean; channels are
    averaged). Used for validation during training.

    Example::

        val_ssim = ssim_torch(model(lr), hr).mean()
    """
    import torch
    import torch.nn.functional as F

    if pred.shape != target.shape:
        raise LensrError(
            f"prediction has shape {_fmt_shape(tuple(pred.shape))} "
            f"but target has {_fmt_shape(tuple(target.shape))}"
        )
    if pred.ndim == 3:
        pred, target = pred[:, None], target[:, None]
    if pred.ndim != 4:
        raise LensrError(
            f"ssim_torch needs (N,C,H,W) or (N,H,W) tensors, got {_fmt_shape(tuple(pred.shape))}"
        )
    _check_ssim_size(tuple(pred.shape))
    n, c, h, w = pred.shape
    g = torch.as_tensor(gaussian_window(), dtype=pred.dtype, device=pred.device)
    gy, gx = g.view(1, 1, -1, 1), g.view(1, 1, 1, -1)

    def filt(a: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(a, gy), gx)  # 'valid': the cropped region directly

    x = pred.reshape(n * c, 1, h, w)
    y = target.reshape(n * c, 1, h, w)
    # Variances are shift invariant: removing each image's mean first keeps float32
    # from losing them to cancellation in E[x^2] - E[x]^2.
    xc = x - x.mean(dim=(2, 3), keepdim=True)
    yc = y - y.mean(dim=(2, 3), keepdim=True)
    ux, uy = filt(x), filt(y)
    uxc, uyc = filt(xc), filt(yc)
    vx = filt(xc * xc) - uxc * uxc
    vy = filt(yc * yc) - uyc * uyc
    vxy = filt(xc * yc) - uxc * uyc
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return s.mean(dim=(1, 2, 3)).view(n, c).mean(dim=1)


def _check_finite(a: np.ndarray, name: str) -> None:
    for test, what in ((np.isnan, "NaN"), (np.isinf, "infinite")):
        bad = test(a)
        if bad.any():
            per_image = bad.sum(axis=(1, 2))
            images = np.flatnonzero(per_image)
            where = ", ".join(str(i) for i in images[:5]) + (", ..." if len(images) > 5 else "")
            label = "image" if len(images) == 1 else "images"
            raise LensrError(
                f"{name} contains {int(per_image.sum())} {what} pixels ({label} {where})"
            )


def score_images(pred: Any, target: Any, *, normalize: bool = True) -> dict[str, np.ndarray]:
    """Per-image ``mse``, ``psnr`` and ``ssim`` after ``normalize_to_target`` (default on).

    Inputs: (H,W), (N,H,W) or (N,1,H,W), numpy or torch, same shape, finite.
    Returns a dict of (N,) float64 arrays. With ``normalize=False`` the images are
    scored as they are (they should already lie in [0, 1]).

    Example::

        s = score_images(sr, hr)
        s["psnr"].mean(), s["ssim"].mean()
    """
    p, t, _ = _pair(pred, target)
    _check_finite(p, "prediction")
    _check_finite(t, "target")
    if normalize:
        p, t = normalize_to_target(p, t)
    return {"mse": mse(p, t), "psnr": psnr(p, t), "ssim": ssim(p, t)}


def summarize_scores(scores: dict[str, np.ndarray], **kwargs: Any) -> dict[str, dict]:
    """``stats.bootstrap_summary`` for each metric; +inf PSNR is capped at ``PSNR_CAP_DB`` first.

    Keyword arguments (``n_boot``, ``seed``, ``ci``) go to ``bootstrap_summary``.

    Example::

        summarize_scores(score_images(sr, hr))["ssim"]   # {'mean': ..., 'ci_low': ...}
    """
    out = {}
    for name, values in scores.items():
        v = np.asarray(values, dtype=np.float64)
        if name == "psnr":
            v = np.minimum(v, PSNR_CAP_DB)
        out[name] = bootstrap_summary(v, **kwargs)
    return out
