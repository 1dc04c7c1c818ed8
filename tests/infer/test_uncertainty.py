"""Dihedral TTA / ensemble uncertainty, its calibration, and `lensr upscale --uncertainty`."""

import h5py
import numpy as np
import pytest
import torch
from astropy.io import fits
from torch import nn
from torch.nn import functional as F

from lensr.errors import LensrError
from lensr.infer.arrays import upscale_array
from lensr.infer.uncertainty import (
    DIHEDRAL,
    calibration,
    dihedral_inverse,
    dihedral_transform,
    predict_with_uncertainty,
    tta_outputs,
)
from lensr.infer.upscale import upscale_path
from lensr.models import create_model
from lensr.models.checkpoint import resolve_model, save_checkpoint
from lensr.sim.config import load_sim_config
from lensr.sim.run import simulate

torch.set_num_threads(1)
META = {"normalization": {"name": "lr-percentile", "percentile": 99.5}}


class PointwiseReplicate(nn.Module):
    """A 1x1 convolution, then nearest-neighbour (pixel replication) upsampling.

    Exactly dihedral-equivariant, bit for bit: every output pixel is one input pixel times
    the same weight, whatever the orientation (no sums whose order could change).
    """

    scale = 2

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)
        nn.init.constant_(self.conv.weight, 1.5)
        nn.init.constant_(self.conv.bias, 0.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.conv(x), scale_factor=self.scale, mode="nearest")


def lenses(n: int, h: int = 20, w: int = 20, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w]
    r = np.hypot(yy - h / 2, xx - w / 2)
    ring = np.exp(-((r - min(h, w) / 4) ** 2) / 4.0)
    return (ring + 0.05 * rng.random((n, h, w))).astype(np.float32)


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("unc")
    out = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        path = root / f"m{seed}.safetensors"
        out.append(str(save_checkpoint(create_model("fsrcnn-tiny"), path, metadata=META)))
    return out


def test_dihedral_round_trip_and_group():
    x = np.arange(2 * 3 * 5, dtype=np.float32).reshape(2, 3, 5)
    seen = set()
    for k, flip in DIHEDRAL:
        y = dihedral_transform(x, k, flip)
        np.testing.assert_array_equal(dihedral_inverse(y, k, flip), x)
        seen.add(y.tobytes() + bytes(y.shape))
    assert len(DIHEDRAL) == 8 and len(seen) == 8 and DIHEDRAL[0] == (0, False)


@pytest.mark.parametrize("shape", [(3, 20, 20), (2, 12, 18)])
def test_sigma_has_the_output_shape(ckpts, shape):
    lr = lenses(*shape)
    model = resolve_model(ckpts[0])
    mean, sigma = predict_with_uncertainty(lr, model)
    expected = (shape[0], 2 * shape[1], 2 * shape[2])
    assert mean.shape == sigma.shape == upscale_array(lr, model).shape == expected
    assert mean.dtype == sigma.dtype == np.float32
    assert sigma.min() >= 0 and sigma.max() > 0  # a random network is not symmetric
    outputs = np.stack(list(tta_outputs(lr, model)))
    np.testing.assert_allclose(mean, outputs.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sigma, outputs.std(axis=0), rtol=1e-4, atol=1e-6)


def test_an_exactly_equivariant_model_has_zero_sigma():
    lr = lenses(3, 16, 16)
    _, sigma = predict_with_uncertainty(lr, PointwiseReplicate())
    assert sigma.max() == 0.0


def test_bicubic_sigma_is_rounding_only():
    # torch's bicubic (align_corners=False, integer scale, clamped borders) is dihedral-
    # equivariant in exact arithmetic (0 in float64); float32 sums in another order leave
    # ~1e-7 of the image scale.
    lr = lenses(3, 16, 16)
    _, sigma = predict_with_uncertainty(lr, resolve_model("bicubic"))
    assert sigma.max() < 1e-6 * lr.max()


def test_ensemble_spans_models_and_transforms(ckpts):
    lr = lenses(2, 12, 12)
    models = [resolve_model(c) for c in ckpts]
    mean, sigma = predict_with_uncertainty(lr, models)
    stack = np.stack([o for m in models for o in tta_outputs(lr, m)])
    assert len(stack) == 16
    np.testing.assert_allclose(sigma, stack.std(axis=0), rtol=1e-4, atol=1e-6)
    plain = predict_with_uncertainty(lr, models, tta=False)[1]
    a, b = (upscale_array(lr, m) for m in models)
    np.testing.assert_allclose(plain, np.abs(a - b) / 2, rtol=1e-4, atol=1e-6)
    identity = upscale_array(lr, models[0])
    reused = predict_with_uncertainty(lr, models, identity=identity)
    np.testing.assert_array_equal(reused[1], sigma)
    with pytest.raises(LensrError, match=">= 2 models"):
        predict_with_uncertainty(lr, models[0], tta=False)


def test_calibration_of_gaussian_errors():
    rng = np.random.default_rng(0)
    mean = rng.random((4, 64, 64))
    sigma = 0.1 + rng.random((4, 64, 64))
    truth = mean + sigma * rng.standard_normal(mean.shape)
    c = calibration(mean, sigma, truth)
    assert c["within_1sigma"] == pytest.approx(0.6827, abs=0.01)
    assert c["within_2sigma"] == pytest.approx(0.9545, abs=0.006)
    assert calibration(mean, sigma / 100, truth)["within_1sigma"] < 0.02
    with pytest.raises(LensrError, match="share a shape"):
        calibration(mean, sigma[:2], truth)


# lensr upscale --uncertainty -----------------------------------------------------------------


def test_npy_gets_a_sigma_file_with_the_same_layout(tmp_path, ckpts):
    np.save(tmp_path / "lr.npy", lenses(2)[:, None])
    out = upscale_path(
        tmp_path / "lr.npy", model=ckpts[0], out=tmp_path / "sr.npy", uncertainty=True,
        progress=False,
    )  # fmt: skip
    sr, sigma = np.load(out), np.load(tmp_path / "sr_sigma.npy")
    assert sr.shape == sigma.shape == (2, 1, 40, 40)
    mean, expected = predict_with_uncertainty(lenses(2), resolve_model(ckpts[0]))
    np.testing.assert_allclose(sigma[:, 0], expected, rtol=1e-6)
    np.testing.assert_allclose(sr[:, 0], mean, rtol=1e-6)  # the image is the TTA mean
    np.save(tmp_path / "sr2_sigma.npy", np.zeros(1))
    with pytest.raises(LensrError, match="sr2_sigma.npy already exists"):
        upscale_path(
            tmp_path / "lr.npy", model=ckpts[0], out=tmp_path / "sr2.npy", uncertainty=True
        )
    assert not (tmp_path / "sr2.npy").exists()


def test_fits_hdf5_and_folder_outputs(tmp_path, ckpts):
    fits.PrimaryHDU(lenses(1)[0]).writeto(tmp_path / "cut.fits")
    out = upscale_path(
        tmp_path / "cut.fits", model=ckpts, out=tmp_path / "sr.fits", uncertainty=True,
        progress=False,
    )  # fmt: skip
    with fits.open(out) as hdul:
        assert hdul[0].data.shape == hdul["UNCERTAINTY"].data.shape == (40, 40)
    folder = tmp_path / "in"
    folder.mkdir()
    np.save(folder / "a.npy", lenses(1)[0])
    fits.PrimaryHDU(lenses(1, seed=1)[0]).writeto(folder / "b.fits")
    out = upscale_path(folder, model="bicubic", out=tmp_path / "x2", uncertainty=True,
                       progress=False)  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["a.npy", "a_sigma.npy", "b.fits"]
    assert np.load(out / "a_sigma.npy").shape == (40, 40)
    with fits.open(out / "b.fits") as hdul:
        assert hdul["UNCERTAINTY"].data.max() < 1e-5  # bicubic: symmetric
    data = simulate(load_sim_config("classify"), n=3, seed=0, out=tmp_path / "d.h5",
                    progress=False)  # fmt: skip
    out = upscale_path(data, model=ckpts[0], out=tmp_path / "sr.h5", uncertainty=True,
                       progress=False)  # fmt: skip
    with h5py.File(out) as f:
        assert f["sigma"].shape == f["sr"].shape == (3, 64, 64)
        assert f["sigma"][:].max() > 0 and "dihedral" in f.attrs["uncertainty"]


def test_ensemble_and_name_errors(tmp_path, ckpts):
    np.save(tmp_path / "lr.npy", lenses(1))
    with pytest.raises(LensrError, match="pass --uncertainty"):
        upscale_path(tmp_path / "lr.npy", model=ckpts, out=tmp_path / "o.npy", progress=False)
    folder = tmp_path / "in"
    folder.mkdir()
    np.save(folder / "a.npy", lenses(1)[0])
    np.save(folder / "a_sigma.npy", lenses(1)[0])
    with pytest.raises(LensrError, match="would overwrite"):
        upscale_path(folder, model="bicubic", out=tmp_path / "x2", uncertainty=True)
    assert not (tmp_path / "o.npy").exists() and not (tmp_path / "x2").exists()
