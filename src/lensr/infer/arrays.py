"""The array core of super-resolution: a stack of LR images in, a stack of SR images out.

Every image is divided by the project's per-image scale (:mod:`lensr.data.normalize`,
computed from the LR image alone), run through the model and multiplied back, so the
output keeps the input's units. Large images are tiled (:mod:`lensr.infer.tiling`).
The checks shared with the file-level entry point (:mod:`lensr.infer.upscale`) live
here too: finite pixels, batch and tile options, the model's scale and normalisation,
the torch device.

Example::

    from lensr.infer.arrays import upscale_array
    sr = upscale_array(lr, resolve_model("bicubic", scale=2))   # (N, 2H, 2W) float32
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from lensr.data.normalize import PERCENTILE, SPEC, lr_scale_np
from lensr.errors import LensrError
from lensr.infer.compiled import CompiledForward, compiled_forward, uses_compile
from lensr.infer.tiling import upscale_tiled
from lensr.models.common import to_channels_last

AUTO_TILE_PIXELS = 512 * 512
"""Images with more LR pixels than this are tiled even when ``tile`` is None."""
AUTO_TILE = 256
"""Tile size (LR pixels) used for such images."""

# channels_last (weights and input) measured with benchmarks/sr_throughput.py, 2 threads,
# 75x75 LR, batch 16, inference mode: +10 % (EDSR-tiny) to +38 % (SRResNet-tiny, RDN-tiny)
# images/s for every registered network on CPU; nothing for the parameter-free bilinear and
# bicubic (-16 % in that benchmark, +2 % through upscale_array), so only networks use it.
# Converting only the input gains nothing. Not measured on GPUs: used on CPU only.
CHANNELS_LAST_ON_CPU = True


def upscale_array(
    lr: np.ndarray,
    model: nn.Module,
    *,
    batch_size: int = 16,
    tile: int | None = None,
    overlap: int = 16,
    device: str = "cpu",
    progress: bool = False,
    compile: bool | None = None,
) -> np.ndarray:
    """Super-resolve a stack of single-band images (N, H, W) -> float32 (N, sH, sW).

    Each image is divided by ``lr_scale`` of itself (the percentile recorded in the
    checkpoint's ``normalization``, default 99.5), run through ``model`` (any
    ``(N,1,h,w) -> (N,1,sh,sw)`` module with a ``scale`` attribute, put in eval mode on
    ``device``, default "cpu", moved there in place and, for a network on CPU, made
    channels_last),
    and multiplied back, so values keep their units.
    ``batch_size`` (default 16) images run per call under ``torch.inference_mode``.
    ``tile`` (default None) LR pixels per tile with ``overlap`` (default 16) pixels of
    overlap, see :func:`lensr.infer.tiling.upscale_tiled`; with ``tile=None`` only
    images larger than ``AUTO_TILE_PIXELS`` (512 x 512) are tiled, in ``AUTO_TILE``
    (256) pixel tiles. ``progress`` (default False) shows a tqdm bar. ``compile``
    (default None: the ``LENSR_COMPILE`` environment variable, off when unset) runs a
    network through ``torch.compile`` with frozen weights (:mod:`lensr.infer.compiled`:
    the same outputs within 1e-5; 1.06-1.14x on a 2-core CPU after 10-15 s of compiling per
    model and input shape; :func:`lensr.infer.compiled.uses_compile` says whether it applies).

    Example::

        model = resolve_model("bicubic", scale=2)
        sr = upscale_array(np.random.rand(4, 75, 75), model)    # (4, 150, 150)
    """
    images = _as_stack(lr)
    check_finite(images, "input")
    check_options(batch_size=batch_size, tile=tile, overlap=overlap)
    scale = model_scale(model)
    percentile = model_percentile(model)
    dev = torch_device(device)
    n, h, w = images.shape
    if tile is None and h * w > AUTO_TILE_PIXELS:
        tile = AUTO_TILE
    dtype = next((p.dtype for p in model.parameters()), torch.float32)
    out = np.empty((n, h * scale, w * scale), dtype=np.float32)
    has_weights = any(True for _ in model.parameters())
    channels_last = CHANNELS_LAST_ON_CPU and dev.type == "cpu" and has_weights
    was_training = model.training
    model.eval().to(dev)
    if channels_last:
        to_channels_last(model)
    fn = compiled_forward(model, device=dev) if uses_compile(model, compile) else model
    try:
        with torch.inference_mode(), tqdm(total=n, unit="img", disable=not progress) as bar:
            for start in range(0, n, batch_size):
                batch = images[start : start + batch_size]
                norm = lr_scale_np(batch, percentile=percentile).astype(np.float32)[:, None, None]
                x = torch.from_numpy(batch / norm)[:, None].to(dev, dtype)
                x = _pad_batch(fn, x, batch_size)
                if channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                y = _forward(fn, x, scale=scale, tile=tile, overlap=overlap)[: len(batch)]
                out[start : start + len(batch)] = y[:, 0].float().cpu().numpy() * norm
                bar.update(len(batch))
    finally:
        model.train(was_training)
    return out


def _pad_batch(fn, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    # A short last batch reuses the compiled full-batch graph (zero images appended, their
    # outputs dropped) instead of compiling another shape.
    if not isinstance(fn, CompiledForward) or len(x) >= batch_size:
        return x
    if not fn.knows((batch_size, *x.shape[1:])):
        return x
    return torch.cat([x, x.new_zeros((batch_size - len(x), *x.shape[1:]))])


def _forward(model, x: torch.Tensor, *, scale: int, tile, overlap) -> torch.Tensor:
    if tile is not None:
        return upscale_tiled(model, x, scale=scale, tile=tile, overlap=overlap)
    y = model(x)
    expected = (x.shape[0], 1, x.shape[2] * scale, x.shape[3] * scale)
    if tuple(y.shape) != expected:
        raise LensrError(f"the model returned shape {tuple(y.shape)}, expected {expected}")
    return y


def _as_stack(lr) -> np.ndarray:
    images = np.asarray(lr)
    if images.ndim != 3 or 0 in images.shape:
        raise LensrError(f"upscale_array needs an (N, H, W) stack, got shape {images.shape}")
    if images.dtype.kind not in "iuf":
        raise LensrError(f"upscale_array needs numeric pixels, got dtype {images.dtype}")
    return np.ascontiguousarray(images, dtype=np.float32)


# Checks shared with the file-level entry point -------------------------------------------


def check_finite(images: np.ndarray, where: str) -> None:
    """A one-line LensrError naming ``where`` if ``images`` hold NaN or infinite pixels."""
    n_nan, n_inf = int(np.isnan(images).sum()), int(np.isinf(images).sum())
    if not (n_nan or n_inf):
        return
    parts = [f"{n_nan} NaN"] if n_nan else []
    parts += [f"{n_inf} infinite"] if n_inf else []
    raise LensrError(f"{where} contains {' and '.join(parts)} pixels; mask or fill them first")


def check_options(*, batch_size: int, tile: int | None, overlap: int) -> None:
    """Check the batch and tiling options of :func:`upscale_array`."""
    if batch_size < 1:
        raise LensrError(f"batch size must be >= 1, got {batch_size}")
    if overlap < 0:
        raise LensrError(f"overlap must be >= 0, got {overlap}")
    if tile is not None and not overlap < tile:
        raise LensrError(f"need overlap < tile, got tile={tile}, overlap={overlap}")


def model_scale(model: nn.Module) -> int:
    """The model's integer upscaling factor (its ``scale`` attribute), checked."""
    scale = getattr(model, "scale", None)
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise LensrError(f"the model has no integer 'scale' attribute (got {scale!r})")
    return scale


def model_percentile(model: nn.Module, *, name: str = "the model") -> float:
    """The normalisation percentile recorded in a checkpoint sidecar (either spelling)."""
    meta = getattr(model, "metadata", None) or {}
    spec = meta.get("normalization", meta.get("normalisation"))
    if spec is None:
        return PERCENTILE
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or spec.get("name") != SPEC["name"]:
        raise LensrError(
            f"{name} was trained with normalisation {spec!r}; "
            f"lensr upscale applies only {SPEC['name']!r}"
        )
    return float(spec.get("percentile", PERCENTILE))


def torch_device(device: str) -> torch.device:
    """``device`` ("cpu", "cuda", "cuda:1", "mps") as a torch.device that exists here."""
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise LensrError(f"unknown device {device!r} (use cpu, cuda, cuda:1 or mps)") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise LensrError(f"device {device!r} was asked for, but torch sees no CUDA GPU")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise LensrError(f"device {device!r} was asked for, but MPS is not available")
    return dev
