"""Every registered SR network and baseline: shapes, gradients, determinism, encode/decode."""

import copy
import functools

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lensr.models import count_parameters, create_model, list_models, split_parameters
from lensr.models.srresnet import SRResNet

SR_MODELS = [i.name for i in list_models() if i.family in ("sr", "baseline")]
TRAINABLE = [i.name for i in list_models("sr")]
HEAVY = {"rcan", "rdn", "edsr-full"}  # published sizes: tiny inputs only
CHEAP = [n for n in SR_MODELS if n.endswith("-tiny") or n in ("bilinear", "bicubic", "fsrcnn")]

PUBLISHED = {  # 1 channel, x2
    "rcan": 15_442_337,
    "edsr": 1_367_553,
    "edsr-full": 40_720_385,
    "rdn": 22_121_089,
    "fsrcnn": 12_809,
    "srresnet": 1_378_899,  # measured: Ledig et al., BN, bias-free convs before BN
    "srgan": 1_378_899,
}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # Two OpenMP threads on a busy 2-core machine spin against each other: ~100x slower.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@functools.cache
def built(name: str, scale: int):
    """Created once with seed 0; tests that train or backpropagate work on a deepcopy."""
    torch.manual_seed(0)
    return create_model(name, scale=scale)


def lr_size(name: str, scale: int) -> tuple[int, int]:
    if name in HEAVY:
        return (7, 9)
    return (75, 75) if scale == 2 else (37, 21)


@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("name", SR_MODELS)
def test_output_shape_odd_sizes(name, scale):
    model = built(name, scale).eval()
    h, w = lr_size(name, scale)
    with torch.no_grad():
        out = model(torch.rand(1, 1, h, w))
    assert out.shape == (1, 1, scale * h, scale * w)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", CHEAP)
def test_scale_3_and_more_channels(name):
    model = create_model(name, scale=3, in_channels=2).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 2, 11, 8)).shape == (2, 2, 33, 24)


@pytest.mark.parametrize("name", TRAINABLE)
def test_backward_gives_finite_grads(name):
    model = copy.deepcopy(built(name, 2)).train()
    h, w = (5, 6) if name in HEAVY else (12, 13)
    out = model(torch.rand(2, 1, h, w))
    F.l1_loss(out, torch.rand_like(out)).backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name", SR_MODELS)
def test_same_seed_same_weights_and_output(name):
    a = built(name, 2).eval()
    torch.manual_seed(0)
    b = create_model(name, scale=2).eval()
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    x = torch.rand(1, 1, 6, 7)
    with torch.no_grad():
        assert torch.equal(a(x), b(x))
    torch.manual_seed(1)
    c = create_model(name, scale=2)
    if count_parameters(c):
        assert any(not torch.equal(sa[k], c.state_dict()[k]) for k in sa)


@pytest.mark.parametrize("name", SR_MODELS)
def test_encode_decode_split(name):
    model = built(name, 2).eval()
    x = torch.rand(1, 1, 6, 7)
    with torch.no_grad():
        feats = model.encode(x)
        assert feats.shape[-2:] == x.shape[-2:]
        assert torch.equal(model.decode(feats, x), model(x))

    features, upsampler = split_parameters(model)
    names = [n for n, _ in model.named_parameters()]
    assert sorted(features + upsampler) == sorted(names)
    assert not set(features) & set(upsampler)
    if not names:
        assert model.upsampler_prefixes == ()
        return
    assert features and upsampler
    for prefix in model.upsampler_prefixes:
        assert any(n.startswith(prefix + ".") for n in upsampler), prefix
    # decode must use only upsampler parameters, encode only feature parameters.
    model = copy.deepcopy(model)
    model.decode(model.encode(x).detach(), x).sum().backward()
    grads = {n for n, p in model.named_parameters() if p.grad is not None}
    assert grads == set(upsampler)


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_published_parameter_counts(name):
    assert count_parameters(built(name, 2)) == PUBLISHED[name]


def test_srresnet_structure_and_srgan_generator():
    model = built("srresnet", 2)
    assert isinstance(built("srgan", 2), SRResNet)
    assert model.head[0].kernel_size == (9, 9) and model.tail.kernel_size == (9, 9)
    assert len(model.body) == 16
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 33
    assert sum(isinstance(m, torch.nn.PixelShuffle) for m in built("srresnet", 4).modules()) == 2


def test_no_rgb_mean_shift():
    for name in ("rcan", "edsr"):
        assert not [n for n, _ in built(name, 2).named_buffers()]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_fsrcnn_transposed_conv_is_exact_for_any_size(scale):
    model = create_model("fsrcnn-tiny", scale=scale).eval()
    with torch.no_grad():
        for h, w in ((1, 2), (3, 4), (37, 8)):
            assert model(torch.rand(1, 1, h, w)).shape[-2:] == (scale * h, scale * w)


def test_tiny_variants_are_small():
    for name in SR_MODELS:
        if name.endswith("-tiny"):
            assert 4_000 < count_parameters(built(name, 2)) < 250_000, name


def _keys(x: np.ndarray, a: float = -0.75) -> np.ndarray:
    """Keys' cubic convolution kernel (Keys 1981), a = -0.75 as in OpenCV and PyTorch."""
    x = np.abs(x)
    near = ((a + 2) * x - (a + 3)) * x**2 + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def _resample_axis(img: np.ndarray, scale: int, mode: str, axis: int) -> np.ndarray:
    """Upsample one axis by ``scale``, pixel centres aligned (align_corners=False), edge
    pixels repeated: written out from the definitions, no library interpolation."""
    img = np.moveaxis(img, axis, -1)
    n = img.shape[-1]
    src = (np.arange(n * scale) + 0.5) / scale - 0.5
    out = np.zeros((*img.shape[:-1], n * scale))
    if mode == "bilinear":
        src = np.maximum(src, 0.0)
        x0 = np.floor(src).astype(int)
        t = src - x0
        out = img[..., x0] * (1 - t) + img[..., np.minimum(x0 + 1, n - 1)] * t
    else:
        x0 = np.floor(src).astype(int)
        for k in range(-1, 3):
            idx = np.clip(x0 + k, 0, n - 1)
            out += img[..., idx] * _keys(src - (x0 + k))
    return np.moveaxis(out, -1, axis)


def test_baselines_match_hand_written_interpolation_and_have_no_parameters():
    rng = np.random.default_rng(0)
    x = rng.random((2, 1, 9, 8))
    for name in ("bilinear", "bicubic"):
        model = create_model(name, scale=4)
        assert count_parameters(model) == 0 and model.upsampler_prefixes == ()
        xt = torch.from_numpy(x)
        assert torch.equal(model.encode(xt), xt)
        expected = _resample_axis(_resample_axis(x, 4, name, -1), 4, name, -2)
        np.testing.assert_allclose(model(xt).numpy(), expected, rtol=0, atol=1e-12)
    # Hand-computed: an impulse at sample 3, x2 bicubic. Outputs 4..9 sit at source
    # positions 1.75 ... 4.25, i.e. 1.25, 0.75, 0.25 samples from it on each side:
    # W(1.25) = -0.10546875, W(0.75) = 0.26171875, W(0.25) = 0.87890625 (a = -0.75).
    impulse = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    impulse[..., 3] = 1.0
    row = create_model("bicubic")(impulse)[0, 0, 0].numpy()
    w = [-0.10546875, 0.26171875, 0.87890625]
    np.testing.assert_allclose(row[4:10], w + w[::-1], atol=1e-12)
    assert np.abs(row[:3]).max() < 1e-12 and np.abs(row[11:]).max() < 1e-12
    flat = torch.full((1, 1, 5, 5), 0.3)
    assert torch.allclose(create_model("bilinear")(flat), torch.full((1, 1, 10, 10), 0.3))
