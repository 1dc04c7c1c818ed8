import pytest
import torch
import torch.nn.functional as F
from torch import nn

from lensr.errors import LensrError
from lensr.infer.tiling import upscale_tiled


def _toy_net(scale: int = 2, channels: int = 1) -> nn.Module:
    """Fully convolutional, receptive-field radius 3 LR pixels (three 3x3 convs)."""
    torch.manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(channels, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, channels * scale**2, 3, padding=1),
        nn.PixelShuffle(scale),
    )
    return net.double().eval()


def _bicubic(scale: int):
    return lambda t: F.interpolate(t, scale_factor=scale, mode="bicubic", align_corners=False)


@pytest.mark.parametrize(
    "shape, scale, tile, overlap",
    [
        ((2, 1, 75, 75), 2, 32, 8),  # odd size, not a multiple of the tile
        ((1, 1, 64, 64), 2, 24, 6),  # margin 3 == receptive-field radius
        ((1, 1, 40, 90), 4, 32, 8),  # tile taller than the image: one row of tiles
        ((1, 1, 37, 50), 2, 20, 9),  # odd overlap: a one-pixel cross-fade
    ],
)
def test_tiled_equals_untiled_for_a_limited_receptive_field(shape, scale, tile, overlap):
    net = _toy_net(scale)
    x = torch.rand(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = net(x)
        tiled = upscale_tiled(net, x, scale=scale, tile=tile, overlap=overlap, tiles_per_call=3)
    assert tiled.shape == full.shape
    assert (tiled - full).abs().max() < 1e-5


def test_margin_too_small_shows_seams():
    net = _toy_net()
    x = torch.rand((1, 1, 75, 75), dtype=torch.float64)
    with torch.no_grad():
        err = (upscale_tiled(net, x, scale=2, tile=32, overlap=4) - net(x)).abs().max()
    assert err > 1e-3  # margin 2 < radius 3: the check above is not vacuous


def test_tiled_bicubic_and_full_overlap_blend():
    x = torch.rand((1, 1, 75, 75), dtype=torch.float64)
    full = _bicubic(2)(x)
    exact = upscale_tiled(_bicubic(2), x, scale=2, tile=32, overlap=8)
    assert (exact - full).abs().max() < 1e-10
    # Cosine cross-fade over the whole overlap: border pixels leak in, but barely.
    blended = upscale_tiled(_bicubic(2), x, scale=2, tile=32, overlap=8, margin=0)
    assert (blended - full).abs().max() < 0.1


def test_image_in_one_tile_calls_fn_once_and_constant_is_preserved():
    calls = []

    def fn(t):
        calls.append(t.shape)
        return _bicubic(2)(t)

    x = torch.rand((3, 2, 50, 60))
    assert upscale_tiled(fn, x, scale=2, tile=64).shape == (3, 2, 100, 120)
    assert calls == [(3, 2, 50, 60)]
    const = torch.full((1, 1, 70, 70), 0.25)
    out = upscale_tiled(_bicubic(2), const, scale=2, tile=16, overlap=6, margin=1)
    assert torch.allclose(out, torch.full_like(out, 0.25))


def test_gradients_flow_through_tiles():
    net = _toy_net()
    x = torch.rand((1, 1, 40, 40), dtype=torch.float64, requires_grad=True)
    upscale_tiled(net, x, scale=2, tile=16, overlap=8).sum().backward()
    assert x.grad is not None and x.grad.abs().min() > 0


def test_bad_arguments():
    x = torch.rand((1, 1, 40, 40))
    with pytest.raises(LensrError, match="overlap < tile"):
        upscale_tiled(_bicubic(2), x, scale=2, tile=16, overlap=16)
    with pytest.raises(LensrError, match="margin"):
        upscale_tiled(_bicubic(2), x, scale=2, tile=16, overlap=8, margin=5)
    with pytest.raises(LensrError, match="expected"):
        upscale_tiled(_bicubic(3), x, scale=2, tile=16, overlap=4)
    with pytest.raises(LensrError, match=r"\(N,C,H,W\)"):
        upscale_tiled(_bicubic(2), x[0], scale=2)
