"""The LR instrument operator reproduces the simulator and is a true adjoint pair."""

import numpy as np
import pytest
import torch

from lensr.data.store import open_dataset
from lensr.infer.degrade import Degradation, instrument_for
from lensr.sim.config import load_sim_config
from lensr.sim.psf import psf_kernel
from lensr.sim.render import Renderer
from lensr.sim.run import simulate


def test_degrading_the_noise_free_hr_reproduces_the_simulated_lr(observed_tiny):
    renderer = Renderer(observed_tiny)
    for index in range(4):
        s = renderer.render(seed=0, index=index)
        # The LR instrument acts on the sky (the PSF-free HR-grid image), as in the simulator.
        _, p, table, kl, ks, kll = renderer.draw(0, index)
        sky = renderer.sky(table, kl, ks, kll)
        k = psf_kernel(
            kind=observed_tiny.lr.psf.type,
            fwhm=p["lr_fwhm"],
            beta=p["lr_beta"],
            pixel_scale=observed_tiny.hr_pixel_scale,
            offset=(p["offset_x"], p["offset_y"]),
        )
        lr = Degradation(kernels=k, scale=2)(torch.from_numpy(sky)[None, None])[0, 0].numpy()
        rel = np.linalg.norm(lr - s.lr_clean) / np.linalg.norm(s.lr_clean)
        assert rel < 0.01


def test_adjoint_identity():
    rng = np.random.default_rng(0)
    kernels = rng.random((3, 7, 7))
    D = Degradation(kernels=kernels / kernels.sum(axis=(1, 2), keepdims=True), scale=2)
    x = torch.from_numpy(rng.random((3, 1, 16, 16)))
    y = torch.from_numpy(rng.random((3, 1, 8, 8)))
    assert torch.allclose((D(x) * y).sum(), (x * D.adjoint(y)).sum())


@pytest.mark.parametrize("per_image", [True, False])
def test_wide_kernels_by_fft_equal_the_direct_convolution(monkeypatch, per_image):
    rng = np.random.default_rng(1)
    kernels = rng.random((3, 41, 41) if per_image else (41, 41))
    x = torch.from_numpy(rng.random((3, 1, 30, 34)))
    y = torch.from_numpy(rng.random((3, 1, 15, 17)))
    D = Degradation(kernels=kernels, scale=2)
    fft = D(x), D.adjoint(y)
    monkeypatch.setattr("lensr.infer.degrade.FFT_ABOVE", 10**6)
    direct = D(x), D.adjoint(y)
    for a, b in zip(fft, direct, strict=True):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-10)
    assert D.kernels.shape[-1] > 25  # the first pass did go through the FFT


def test_instrument_for_a_dataset_gives_unit_chi_square_on_the_truth(tmp_path, tiny_config):
    path = simulate(tiny_config, n=6, seed=0, out=tmp_path / "d.h5", progress=False)
    renderer = Renderer(tiny_config)
    with open_dataset(path) as ds:
        D, variance = instrument_for(ds, np.arange(6), source="sky")
        lr_clean = np.stack([renderer.render(0, i).lr_clean for i in range(6)])
        chi2 = (ds.lr[:] - lr_clean) ** 2 / variance(lr_clean)
    assert abs(chi2.mean() - 1.0) < 0.05


@pytest.mark.parametrize("preset", ["sim", "observed"])
def test_degrading_the_noise_free_hr_reproduces_the_noise_free_lr(tmp_path, preset):
    cfg = load_sim_config(preset)
    if preset == "sim":
        cfg = cfg.model_copy(update={"hr_size": 100})
    path = simulate(cfg, n=4, seed=0, out=tmp_path / "d.h5", progress=False)
    renderer = Renderer(cfg)
    with open_dataset(path) as ds:
        D, _ = instrument_for(ds, np.arange(4))
        lr = D(torch.from_numpy(ds.hr_clean[:].astype(np.float64))[:, None])[:, 0].numpy()
    for i in range(4):
        truth = renderer.render(0, i).lr_clean
        rel = np.linalg.norm(lr[i] - truth) / np.linalg.norm(truth)
        # Gaussian PSFs (sim): exact matching kernel; Moffat (observed): regularised, measured
        # at most 0.04 %.
        assert rel < 0.01, (i, rel)
