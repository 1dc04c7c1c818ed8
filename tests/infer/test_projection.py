"""Consistency projection (iterative back-projection) and `lensr upscale --consistent`."""

import h5py
import numpy as np
import pytest
import torch

from lensr.data.store import open_dataset
from lensr.errors import LensrError
from lensr.eval.consistency import lr_chi2
from lensr.infer.arrays import upscale_array
from lensr.infer.projection import back_project, operator_norm, project
from lensr.infer.upscale import upscale_path
from lensr.instrument.from_dataset import gaussian_degradation, instrument_for
from lensr.instrument.operators import Degradation
from lensr.instrument.psf import psf_kernel
from lensr.models import create_model
from lensr.models.checkpoint import resolve_model, save_checkpoint
from lensr.sim.config import load_sim_config
from lensr.sim.run import simulate

torch.set_num_threads(1)
N = 6


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """6 classify images, their instrument, and a tiny untrained network's outputs."""
    root = tmp_path_factory.mktemp("proj")
    data = simulate(load_sim_config("classify"), n=N, seed=0, out=root / "d.h5", progress=False)
    torch.manual_seed(0)
    meta = {"normalization": {"name": "lr-percentile", "percentile": 99.5}}
    ckpt = save_checkpoint(create_model("fsrcnn-tiny"), root / "m.safetensors", metadata=meta)
    with open_dataset(data) as ds:
        D, variance = instrument_for(ds, np.arange(N))
        lr, clean = ds.lr[:], ds.hr_clean[:]
    sr = upscale_array(lr, resolve_model(str(ckpt)))
    return {"data": data, "D": D, "var": variance, "lr": lr, "clean": clean, "sr": sr}


def _residual(x, lr, D):
    return np.linalg.norm((D.apply_numpy(x) - lr).reshape(len(lr), -1), axis=1)


def test_projection_reduces_the_lr_residual_of_a_network_output(sim):
    x, info = back_project(sim["sr"], sim["lr"], sim["D"], variance=sim["var"])
    assert x.shape == sim["sr"].shape and x.dtype == np.float32
    before = _residual(sim["sr"], sim["lr"], sim["D"])
    after = _residual(x, sim["lr"], sim["D"])
    assert np.all(after < before)
    assert np.all(info.after < info.before) and np.all(info.iterations >= 1)
    chi2 = lr_chi2(x, sim["lr"], sim["D"], sim["var"])[0]
    # Stops at the noise (chi2 <= 1) or after max_iter; an untrained network starts far off.
    assert np.all((chi2 <= 1.05) | (info.iterations == 50))
    assert np.all(chi2 < lr_chi2(sim["sr"], sim["lr"], sim["D"], sim["var"])[0])


def test_chi2_never_increases(sim):
    model = sim["D"].apply_numpy(sim["sr"])
    fixed = sim["var"](model)  # the weights project() uses
    previous = None
    for max_iter in range(6):
        x = project(sim["sr"], sim["lr"], sim["D"], variance=fixed, max_iter=max_iter, tol=0.0)
        chi2 = ((sim["D"].apply_numpy(x) - sim["lr"]) ** 2 / fixed).mean(axis=(1, 2))
        if previous is not None:
            assert np.all(chi2 <= previous * (1 + 1e-6))
        previous = chi2
    # A hand-given step far too large would overshoot: it is refused, nothing gets worse.
    x, info = back_project(sim["sr"], sim["lr"], sim["D"], variance=fixed, step=1e6)
    np.testing.assert_array_equal(x, sim["sr"])
    assert np.all(info.iterations == 0) and np.all(info.after == info.before)


def test_a_consistent_input_is_left_alone(sim):
    clean = sim["clean"]
    exact = sim["D"].apply_numpy(clean)
    x = project(clean, exact, sim["D"], variance=sim["var"])
    np.testing.assert_array_equal(x, clean)  # chi2 = 0 <= tol: no iteration at all
    # Against the real, noisy LR the truth is already within the noise (chi2 ~ 1).
    x = project(clean, sim["lr"], sim["D"], variance=sim["var"])
    change = np.linalg.norm((x - clean).reshape(N, -1), axis=1)
    assert np.all(change <= 1e-2 * np.linalg.norm(clean.reshape(N, -1), axis=1))


def test_without_a_noise_model_it_iterates_until_the_residual_stalls(sim):
    x, info = back_project(sim["sr"], sim["lr"], sim["D"], max_iter=200, rtol=1e-2)
    assert np.all(info.after < info.before)
    assert np.all(info.iterations < 200)  # stopped by the stall test
    assert np.all(_residual(x, sim["lr"], sim["D"]) < _residual(sim["sr"], sim["lr"], sim["D"]))


def test_operator_norm_matches_the_dense_matrix():
    kernel = psf_kernel(kind="gaussian", fwhm=0.16, pixel_scale=0.05)
    D = Degradation(kernels=kernel, scale=2)
    h = 12
    eye = torch.eye(h * h, dtype=torch.float32).reshape(h * h, 1, h, h)
    A = D(eye).reshape(h * h, -1).T.double()  # (LR pixels, HR pixels)
    exact = torch.linalg.eigvalsh(A.T @ A).max().item()
    estimate = operator_norm(D, (1, h, h)).item()
    assert estimate <= exact * (1 + 1e-5) and estimate > 0.98 * exact
    assert exact <= 0.25 + 1e-6  # ||D^T D|| <= 1/s^2 for a normalised kernel


def test_projection_errors(sim):
    with pytest.raises(LensrError, match="stacks"):
        project(sim["sr"][0], sim["lr"][0], sim["D"])
    with pytest.raises(LensrError, match="finite and positive"):
        project(sim["sr"], sim["lr"], sim["D"], variance=np.zeros(1))


# lensr upscale --consistent ------------------------------------------------------------------


def test_upscale_consistent_on_simulated_hdf5_needs_no_options(sim, tmp_path):
    out = upscale_path(
        sim["data"], model="bicubic", out=tmp_path / "sr.h5", consistent=True, progress=False
    )
    with h5py.File(out) as f:
        sr = f["sr"][:]
        assert f.attrs["consistency_projection"] == 1
    bicubic = upscale_array(sim["lr"], resolve_model("bicubic"))
    expected = project(bicubic, sim["lr"], sim["D"], variance=sim["var"])
    np.testing.assert_allclose(sr, expected, rtol=1e-5, atol=1e-5)
    chi2 = lr_chi2(sr, sim["lr"], sim["D"], sim["var"])[0]
    assert np.all(chi2 <= lr_chi2(bicubic, sim["lr"], sim["D"], sim["var"])[0] + 1e-6)


def test_upscale_consistent_on_files_needs_the_psf(sim, tmp_path):
    np.save(tmp_path / "lr.npy", sim["lr"])
    with pytest.raises(LensrError, match="--lr-psf-fwhm and --pixel-scale") as info:
        upscale_path(tmp_path / "lr.npy", model="bicubic", out=tmp_path / "o.npy", consistent=True)
    assert "\n" not in str(info.value) and not (tmp_path / "o.npy").exists()
    options = {"lr_psf_fwhm": 0.2, "hr_psf_fwhm": 0.1, "pixel_scale": 0.16}
    out = upscale_path(
        tmp_path / "lr.npy", model="bicubic", out=tmp_path / "o.npy", consistent=True,
        progress=False, **options,
    )  # fmt: skip
    D = gaussian_degradation(lr_fwhm=0.2, hr_fwhm=0.1, pixel_scale=0.16, scale=2)
    bicubic = upscale_array(sim["lr"], resolve_model("bicubic"))
    after, before = _residual(np.load(out), sim["lr"], D), _residual(bicubic, sim["lr"], D)
    # The noise is estimated from each image; one of these is already within it (unchanged).
    assert np.all(after <= before) and np.sum(after < 0.9 * before) >= 4
