"""Seamless tiled super-resolution of images too large to run in one piece.

The LR image is cut into overlapping tiles; each tile's output is weighted by a
window that is zero on a ``margin`` strip along its interior edges (where the
network saw zero padding instead of the neighbouring pixels), ramps up with a
cosine over the rest of the overlap, and is one elsewhere; the weighted tiles are
summed and divided by the summed weights. Tiles touching the image border keep
their border pixels, which the untiled run computes the same way.

If ``margin`` (default ``overlap // 2``) covers the network's receptive-field
radius in LR pixels, the tiled result equals the untiled one to rounding.

Example::

    from lensr.infer.tiling import upscale_tiled
    with torch.no_grad():
        sr = upscale_tiled(model, lr, scale=2, tile=128, overlap=16)
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from lensr.errors import LensrError


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile starts covering [0, length) with overlaps >= ``overlap``, spread evenly."""
    if length <= tile:
        return [0]
    n = math.ceil((length - overlap) / (tile - overlap))
    # Integer floor keeps every gap <= tile - overlap; the last tile ends on the border.
    return [i * (length - tile) // (n - 1) for i in range(n)]


def _axis_weights(
    start: int, size: int, length: int, *, scale: int, overlap: int, margin: int, like: torch.Tensor
) -> torch.Tensor:
    """1-D HR weights of one tile along one axis (interior edges only are tapered)."""
    j = torch.arange(size * scale, dtype=like.dtype, device=like.device)
    zero = scale * margin
    ramp = scale * (overlap - 2 * margin)

    def taper(d: torch.Tensor) -> torch.Tensor:
        if ramp == 0:
            return (d >= zero).to(like.dtype)
        t = ((d - zero + 0.5) / ramp).clamp(0.0, 1.0)
        return torch.where(d < zero, torch.zeros_like(t), 0.5 - 0.5 * torch.cos(math.pi * t))

    w = torch.ones_like(j)
    if start > 0:
        w = w * taper(j)
    if start + size < length:
        w = w * taper(size * scale - 1 - j)
    return w


def upscale_tiled(
    fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    *,
    scale: int,
    tile: int = 128,
    overlap: int = 16,
    margin: int | None = None,
    tiles_per_call: int = 1,
) -> torch.Tensor:
    """Apply ``fn`` ((N,C,h,w) -> (N,C',scale*h,scale*w)) to ``x`` (N,C,H,W) tile by tile.

    ``tile`` (default 128) and ``overlap`` (default 16) are in LR pixels. ``margin``
    (default ``overlap // 2``, at most that) LR pixels along interior tile edges are
    discarded; the remaining ``overlap - 2 * margin`` are cross-faded with a cosine
    window. Keep the default for exact results with fully convolutional networks
    whose receptive-field radius is <= margin; ``margin=0`` blends over the whole
    overlap, softer for networks with global context. ``tiles_per_call`` (default 1)
    tiles are stacked along the batch axis per call of ``fn``. If the image fits in
    one tile, ``fn(x)`` is called once. Gradients flow if ``fn`` allows them.

    Example::

        sr = upscale_tiled(model, lr, scale=2, tile=64, overlap=8)   # (N,1,2H,2W)
    """
    if x.ndim != 4:
        raise LensrError(f"upscale_tiled needs an (N,C,H,W) tensor, got shape {tuple(x.shape)}")
    margin = overlap // 2 if margin is None else margin
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise LensrError(f"scale must be a positive integer, got {scale!r}")
    if tile < 1 or not 0 <= overlap < tile:
        raise LensrError(
            f"need tile >= 1 and 0 <= overlap < tile, got tile={tile}, overlap={overlap}"
        )
    if not 0 <= margin <= overlap // 2:
        raise LensrError(f"margin must lie in [0, overlap // 2 = {overlap // 2}], got {margin}")
    if tiles_per_call < 1:
        raise LensrError(f"tiles_per_call must be >= 1, got {tiles_per_call}")
    n, _, h, w = x.shape
    th, tw = min(tile, h), min(tile, w)

    def run(batch: torch.Tensor) -> torch.Tensor:
        y = fn(batch)
        bh, bw = batch.shape[-2:]
        if y.ndim != 4 or y.shape[0] != batch.shape[0] or y.shape[-2:] != (bh * scale, bw * scale):
            raise LensrError(
                f"fn returned shape {tuple(y.shape)} for input {tuple(batch.shape)}; "
                f"expected (N,C,{bh * scale},{bw * scale}) for scale={scale}"
            )
        return y

    if h <= tile and w <= tile:
        return run(x)

    boxes = [(y0, x0) for y0 in _starts(h, tile, overlap) for x0 in _starts(w, tile, overlap)]
    out = weight_sum = None
    for i in range(0, len(boxes), tiles_per_call):
        group = boxes[i : i + tiles_per_call]
        batch = torch.cat([x[:, :, y0 : y0 + th, x0 : x0 + tw] for y0, x0 in group])
        ys = run(batch).split(n)
        if out is None:
            out = ys[0].new_zeros((n, ys[0].shape[1], h * scale, w * scale))
            weight_sum = ys[0].new_zeros((h * scale, w * scale))
        for (y0, x0), y in zip(group, ys, strict=True):
            kw = dict(scale=scale, overlap=overlap, margin=margin, like=y)
            wy = _axis_weights(y0, th, h, **kw)
            wx = _axis_weights(x0, tw, w, **kw)
            win = wy[:, None] * wx[None, :]
            rows = slice(y0 * scale, (y0 + th) * scale)
            cols = slice(x0 * scale, (x0 + tw) * scale)
            out[:, :, rows, cols] += y * win
            weight_sum[rows, cols] += win
    return out / weight_sum
