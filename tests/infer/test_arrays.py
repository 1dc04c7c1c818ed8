"""upscale_array: tiling (explicit and automatic), batching, channels_last, model mode."""

import numpy as np
import pytest
import torch

from lensr.infer import arrays
from lensr.infer.arrays import upscale_array
from lensr.models import create_model, list_models
from lensr.models.checkpoint import resolve_model


def lenses(n: int = 2, h: int = 20, w: int = 20, *, seed: int = 0) -> np.ndarray:
    """Positive blobs on a faint noisy background, float32 (n, h, w)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:h, :w]
    cy, cx = rng.uniform(0.3, 0.7, (2, n, 1, 1)) * np.array([h, w])[:, None, None, None]
    blob = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * (0.15 * min(h, w)) ** 2))
    return (blob + 0.01 * rng.random((n, h, w))).astype(np.float32)


def test_tiled_equals_untiled_for_fsrcnn_tiny():
    torch.manual_seed(1)
    net = create_model("fsrcnn-tiny")
    lr = lenses(2, 75, 75)
    full = upscale_array(lr, net)
    # margin = overlap // 2 = 8 LR pixels covers FSRCNN-tiny's receptive-field radius (~6).
    tiled = upscale_array(lr, net, tile=32, overlap=16)
    np.testing.assert_allclose(tiled, full, atol=1e-5)
    seams = upscale_array(lr, net, tile=32, overlap=2)
    assert np.abs(seams - full).max() > 1e-4  # the check above is not vacuous


def test_large_images_are_tiled_automatically(monkeypatch):
    calls = []
    real = arrays.upscale_tiled
    monkeypatch.setattr(arrays, "upscale_tiled", lambda *a, **k: calls.append(k) or real(*a, **k))
    monkeypatch.setattr(arrays, "AUTO_TILE_PIXELS", 30 * 30)
    monkeypatch.setattr(arrays, "AUTO_TILE", 24)
    model = resolve_model("bicubic")
    upscale_array(lenses(1, 30, 30), model)
    assert calls == []
    upscale_array(lenses(1, 31, 30), model)
    assert calls and calls[0]["tile"] == 24


def test_batch_size_does_not_change_the_result(ckpt):
    net = resolve_model(ckpt)
    lr = lenses(5)
    np.testing.assert_allclose(
        upscale_array(lr, net, batch_size=2), upscale_array(lr, net, batch_size=16), atol=1e-6
    )


def test_channels_last_does_not_change_the_result(monkeypatch):
    torch.manual_seed(2)
    net = create_model("rcan-tiny")
    lr = lenses(2)
    fast = upscale_array(lr, net)
    monkeypatch.setattr(arrays, "CHANNELS_LAST_ON_CPU", False)
    np.testing.assert_allclose(upscale_array(lr, create_model_like(net)), fast, atol=1e-5)


def create_model_like(net):
    copy = create_model(net.arch, **net.config)
    copy.load_state_dict(net.state_dict())
    return copy


def test_model_mode_is_restored():
    net = create_model("fsrcnn-tiny").train()
    upscale_array(lenses(1), net)
    assert net.training


@pytest.mark.parametrize("name", [info.name for info in list_models("sr")])
def test_every_sr_model_upscales_the_same_in_either_memory_layout(name, monkeypatch):
    """channels_last on CPU (4-D weights only: the group convolutions hold 5-D ones) gives
    the contiguous layout's output for every registered SR architecture."""
    torch.manual_seed(0)
    net = create_model(name, scale=2)
    lr = lenses(1, 12, 12)
    monkeypatch.setattr(arrays, "CHANNELS_LAST_ON_CPU", False)
    plain = upscale_array(lr, net)
    monkeypatch.setattr(arrays, "CHANNELS_LAST_ON_CPU", True)
    last = upscale_array(lr, net)
    assert last.shape == (1, 24, 24) and np.isfinite(last).all()
    np.testing.assert_allclose(last, plain, rtol=1e-4, atol=1e-5 * np.abs(plain).max())
