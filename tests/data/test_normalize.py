import numpy as np
import torch

from lensr.data.normalize import lr_scale, lr_scale_np


def test_torch_and_numpy_scales_agree_and_ignore_a_hot_pixel():
    rng = np.random.default_rng(0)
    lr = rng.random((4, 32, 32)).astype(np.float32)
    clean = lr_scale_np(lr)
    lr[0, 3, 3] = 1e6  # a cosmic ray must not dim the image
    got = lr_scale(torch.from_numpy(lr)[:, None]).flatten().numpy()
    np.testing.assert_allclose(got, lr_scale_np(lr), rtol=1e-5)
    np.testing.assert_allclose(got, clean, rtol=0.01)


def test_scale_is_equivariant_to_units():
    lr = torch.rand(2, 1, 16, 16, dtype=torch.float64)
    torch.testing.assert_close(lr_scale(lr * 1000.0), 1000.0 * lr_scale(lr))
    assert (lr_scale(torch.zeros(1, 1, 8, 8)) > 0).all()
