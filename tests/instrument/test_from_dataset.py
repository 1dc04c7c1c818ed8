"""The LR instrument of a dataset reproduces the simulator; the Gaussian instrument of
imported data; the per-position table the physics training reads."""

import h5py
import numpy as np
import pytest
import torch

from lensr.data.store import open_dataset
from lensr.errors import LensrError
from lensr.instrument.from_dataset import (
    LRInstrumentTable,
    constant_variance,
    gaussian_degradation,
    instrument_for,
)
from lensr.instrument.operators import Degradation
from lensr.instrument.psf import band_kernel
from lensr.sim.config import load_sim_config
from lensr.sim.render import Renderer
from lensr.sim.run import simulate


@pytest.fixture(scope="module")
def classify_h5(tmp_path_factory):
    """8 classify-preset pairs (64 px HR, Gaussian PSFs 0.1"/0.2", 0.08"/px)."""
    path = tmp_path_factory.mktemp("instrument") / "d.h5"
    return simulate(load_sim_config("classify"), n=8, seed=0, out=path, progress=False)


def test_degrading_the_sky_reproduces_the_simulated_lr(observed_tiny):
    renderer = Renderer(observed_tiny)
    for index in range(4):
        s = renderer.render(seed=0, index=index)
        # The LR instrument acts on the sky (the PSF-free HR-grid image), as in the simulator.
        _, p, table, kl, ks, kll = renderer.draw(0, index)
        sky = renderer.sky(table, kl, ks, kll)
        k = band_kernel(
            p, "lr", kind=observed_tiny.lr.psf.type, pixel_scale=observed_tiny.hr_pixel_scale
        )
        lr = Degradation(kernels=k, scale=2)(torch.from_numpy(sky)[None, None])[0, 0].numpy()
        rel = np.linalg.norm(lr - s.lr_clean) / np.linalg.norm(s.lr_clean)
        # The same operator as the simulator's: equal up to float32 storage (~2e-8).
        assert rel < 1e-6


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
        # Gaussian PSFs (sim): the matching kernel of pixel-integrated, truncated kernels,
        # measured 0.002-0.047 %; Moffat (observed): regularised, measured 0.007-0.036 %.
        assert rel < 6e-4, (i, rel)


def test_instrument_for_needs_simulation_parameters(classify_h5, tmp_path):
    with open_dataset(classify_h5) as ds, pytest.raises(ValueError, match="source must be"):
        instrument_for(ds, [0], source="lr")
    imported = tmp_path / "imported.h5"
    imported.write_bytes(classify_h5.read_bytes())
    with h5py.File(imported, "r+") as f:
        del f["params"]
    with open_dataset(imported) as ds, pytest.raises(ValueError, match="no simulation param"):
        instrument_for(ds, [0])


def test_gaussian_degradation():
    x = np.random.default_rng(1).random((2, 8, 8))
    D = gaussian_degradation(lr_fwhm=0.0, pixel_scale=0.1, scale=2)
    np.testing.assert_allclose(
        D.apply_numpy(x), x.reshape(2, 4, 2, 4, 2).mean(axis=(2, 4)), atol=1e-6
    )
    D = gaussian_degradation(lr_fwhm=0.2, hr_fwhm=0.1, pixel_scale=0.16, scale=2)
    assert D.kernels.shape[-1] % 2 == 1 and abs(float(D.kernels.sum()) - 1) < 1e-9
    with pytest.raises(LensrError, match="cannot be wider"):
        gaussian_degradation(lr_fwhm=0.1, hr_fwhm=0.2, pixel_scale=0.1, scale=2)


def test_constant_variance():
    variance = constant_variance(np.array([1.0, 4.0]))(np.zeros((2, 3, 5)))
    assert variance.shape == (2, 3, 5) and variance[1, 2, 4] == 4.0


def test_table_matches_the_instrument_of_the_dataset(classify_h5):
    positions = np.array([3, 5, 7])
    table = LRInstrumentTable(classify_h5, positions, noise="auto", psf_fwhm=(0, 0))
    with open_dataset(classify_h5) as ds:
        D, variance = instrument_for(ds, positions, source="hr")
        lr = ds.lr[positions]
    assert table.simulated and table.describe() == {
        "simulated": True,
        "kernel_size": D.kernels.shape[-1],
    }
    for i, pos in enumerate(positions):
        np.testing.assert_allclose(table.variance(pos, lr[i]), variance(lr)[i], rtol=1e-6)
        flipped = torch.flip(D.kernels[i, 0], (-2, -1)).numpy()
        np.testing.assert_allclose(table.kernel(pos), flipped, rtol=1e-6)


def test_table_with_uniform_noise_for_data_without_parameters(classify_h5):
    table = LRInstrumentTable(classify_h5, [0, 1], noise="uniform", psf_fwhm=(2.5, 1.25))
    assert not table.simulated and table.kernel(0).shape[0] % 2 == 1
    noise = np.random.default_rng(0).normal(0, 0.3, (64, 64))
    variance = table.variance(0, noise)
    assert np.ptp(variance) == 0 and variance[0, 0] == pytest.approx(0.09, rel=0.1)
    assert table.variance(0, np.zeros((8, 8)))[0, 0] == 1e-20  # never zero


def test_table_refuses_the_simulated_noise_without_parameters(classify_h5, tmp_path):
    imported = tmp_path / "imported.h5"
    imported.write_bytes(classify_h5.read_bytes())
    with h5py.File(imported, "r+") as f:
        del f.attrs["config"]
    with pytest.raises(LensrError, match="noise='uniform'"):
        LRInstrumentTable(imported, [0], noise="instrument", psf_fwhm=(2.5, 1.25))
    assert not LRInstrumentTable(imported, [0], noise="auto", psf_fwhm=(2.5, 1.25)).simulated


def test_lr_noise_model_includes_the_background_term(tmp_path):
    """deeplense-1 has no sky or read noise, only a Gaussian background: the stored LR noise
    model must predict the noise measured in the dark corners of the simulated LR images."""
    cfg = load_sim_config("deeplense-1")
    cfg = cfg.model_copy(update={"hr_size": 64, "hr_pixel_scale": 0.1171875})  # 7.5" field
    path = simulate(cfg, n=6, seed=3, out=tmp_path / "dl1.h5", progress=False)
    ds = open_dataset(path)
    _, variance = instrument_for(ds, list(range(6)), source="sky")
    lr = ds.lr[:]
    corners = np.concatenate([lr[:, :6, :6].ravel(), lr[:, -6:, -6:].ravel()])
    predicted = np.sqrt(variance(np.zeros_like(lr))[:, :6, :6]).mean()
    assert predicted > 0
    assert np.std(corners) == pytest.approx(predicted, rel=0.15)
