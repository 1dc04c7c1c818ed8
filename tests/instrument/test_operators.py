"""The instrument operators: true adjoint pairs, FFT = direct convolution, hand-written
backward = autograd's, and the block mean in numpy and torch."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from lensr.instrument.binning import block_mean
from lensr.instrument.operators import (
    Degradation,
    GaussianInstrument,
    block_mean_adjoint,
    block_mean_torch,
)


def test_adjoint_identity():
    rng = np.random.default_rng(0)
    kernels = rng.random((3, 7, 7))
    D = Degradation(kernels=kernels / kernels.sum(axis=(1, 2), keepdims=True), scale=2)
    x = torch.from_numpy(rng.random((3, 1, 16, 16)))
    y = torch.from_numpy(rng.random((3, 1, 8, 8)))
    assert torch.allclose((D(x) * y).sum(), (x * D.adjoint(y)).sum())


@pytest.mark.parametrize("per_image", [True, False])
def test_wide_kernels_by_fft_equal_the_direct_convolution(per_image):
    rng = np.random.default_rng(1)
    kernels = rng.random((3, 41, 41) if per_image else (41, 41))
    x = torch.from_numpy(rng.random((3, 1, 30, 34)))
    y = torch.from_numpy(rng.random((3, 1, 15, 17)))
    fft, direct = (Degradation(kernels=kernels, scale=2, fft_above=f) for f in (25, None))
    for a, b in ((fft(x), direct(x)), (fft.adjoint(y), direct.adjoint(y))):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("n_kernels", [1, 3])
def test_hand_written_backward_is_the_gradient(n_kernels):
    rng = np.random.default_rng(2)
    kernels = rng.random((n_kernels, 9, 9))
    D = Degradation(kernels=kernels, scale=2)
    x = torch.from_numpy(rng.random((3, 1, 20, 22))).requires_grad_(True)
    weights = torch.from_numpy(rng.random((3, 1, 10, 11)))
    (ours,) = torch.autograd.grad((D(x) * weights).sum(), x)
    # Reference: conv2d's own autograd, one image at a time.
    flipped = torch.flip(torch.from_numpy(kernels), (-2, -1))[:, None]
    out = torch.cat([F.conv2d(x[[i]], flipped[[i % n_kernels]], padding=4) for i in range(3)])
    (reference,) = torch.autograd.grad((F.avg_pool2d(out, 2) * weights).sum(), x)
    assert torch.allclose(ours, reference, rtol=1e-10, atol=1e-12)


def test_tensor_kernels_with_direct_convolution_match_the_default():
    """The physics training loss: float32 kernel tensors, no FFT, against float64 kernels."""
    rng = np.random.default_rng(3)
    kernels = rng.random((3, 31, 31))
    kernels /= kernels.sum(axis=(1, 2), keepdims=True)
    hr = torch.rand(3, 1, 64, 64, requires_grad=True)
    ours = Degradation(kernels=torch.from_numpy(kernels).float(), scale=2, fft_above=None)(hr)
    reference = Degradation(kernels=kernels, scale=2)(hr)  # by FFT: 31 > FFT_ABOVE
    assert ours.dtype == torch.float32 and torch.allclose(ours, reference, atol=1e-6)
    weights = torch.rand_like(ours)
    (g_ours,) = torch.autograd.grad((ours * weights).sum(), hr)
    (g_ref,) = torch.autograd.grad((reference * weights).sum(), hr)
    assert torch.allclose(g_ours, g_ref, atol=1e-6)


def test_bad_kernels_are_refused():
    with pytest.raises(ValueError, match="odd size"):
        Degradation(kernels=np.ones((4, 4)), scale=2)
    D = Degradation(kernels=np.ones((2, 3, 3)), scale=2)
    with pytest.raises(ValueError, match="2 PSF kernels for a batch of 3"):
        D(torch.zeros(3, 1, 8, 8))


def test_apply_numpy():
    x = np.random.default_rng(4).random((2, 8, 8))
    out = Degradation(kernels=np.ones((1, 1)), scale=2).apply_numpy(x)
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, x.reshape(2, 4, 2, 4, 2).mean(axis=(2, 4)), atol=1e-6)


def test_gaussian_instrument_adjoint_and_flux():
    ins = GaussianInstrument(fwhm=3.2, scale=2)
    x, y = torch.rand(2, 1, 40, 44), torch.rand(2, 1, 20, 22)
    assert torch.allclose((ins(x) * y).sum(), (x * ins.adjoint(y)).sum(), rtol=1e-5)
    flat = torch.ones(1, 1, 60, 60)
    assert torch.allclose(ins(flat)[..., 10:-10, 10:-10], torch.ones(1, 1, 10, 10), atol=1e-5)
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad((ins(x) * y).sum(), x)
    assert torch.allclose(grad, ins.adjoint(y), atol=1e-6)


def test_block_mean_in_numpy_and_torch():
    image = np.random.default_rng(5).random((6, 9))
    ours = block_mean(image, 3)
    assert ours.shape == (2, 3)
    np.testing.assert_allclose(ours, image.reshape(2, 3, 3, 3).mean(axis=(1, 3)))
    t = torch.from_numpy(image)[None, None]
    np.testing.assert_allclose(block_mean_torch(t, 3)[0, 0].numpy(), ours)
    y = torch.rand(1, 1, 2, 3, dtype=torch.float64)
    lhs = (block_mean_torch(t, 3) * y).sum()
    assert torch.allclose(lhs, (t * block_mean_adjoint(y, 3)).sum())
