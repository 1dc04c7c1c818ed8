"""Physics sanity of the simulator: rings, flux, PSF/binning recipe, substructure."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lenstronomy.Data.imaging_data import ImageData
from lenstronomy.Data.psf import PSF
from lenstronomy.ImSim.image_model import ImageModel
from lenstronomy.Util import simulation_util

from lensr.instrument.binning import block_mean
from lensr.sim.config import SimConfig
from lensr.sim.render import Renderer


def radial_profile(image: np.ndarray, pixel_scale: float):
    n = image.shape[0]
    c = (np.arange(n) - (n - 1) / 2) * pixel_scale
    r = np.hypot(*np.meshgrid(c, c))
    edges = np.arange(0, r.max(), pixel_scale / 2)
    which = np.digitize(r.ravel(), edges)
    prof = np.bincount(which, weights=image.ravel(), minlength=len(edges) + 1)
    counts = np.bincount(which, minlength=len(edges) + 1)
    mids = np.concatenate([[0], (edges[:-1] + edges[1:]) / 2, [edges[-1]]])
    return mids, prof / np.maximum(counts, 1)


@pytest.mark.parametrize("theta_e", [0.9, 1.2, 1.5])
def test_sis_ring_radius_matches_theta_e(theta_e):
    cfg = SimConfig(
        classes=["none"],
        lens={"theta_e": theta_e, "q": 1.0, "shear": 0.0},
        source={"r_sersic": 0.04, "n_sersic": 1.0, "center": 0.0, "q": 1.0},
        supersampling=4,
    )
    sample = Renderer(cfg).render(seed=1, index=0)
    radius, profile = radial_profile(sample.hr_clean, cfg.hr_pixel_scale)
    ring = radius[np.argmax(profile)]
    assert abs(ring - theta_e) <= cfg.hr_pixel_scale


@pytest.mark.parametrize("index", range(4))
def test_lr_conserves_flux_and_matches_direct_lenstronomy_render(index):
    cfg = SimConfig(classes=["none"], supersampling=3)
    renderer = Renderer(cfg)
    s = renderer.render(seed=3, index=index)
    hr_flux = s.hr_clean.sum() * cfg.hr_pixel_scale**2
    lr_flux = s.lr_clean.sum() * cfg.lr_pixel_scale**2
    assert abs(lr_flux / hr_flux - 1) < 0.01

    # Independent reference: lenstronomy renders the LR grid itself, finely supersampled,
    # with its own Gaussian PSF convolution.
    _, _, _, kwargs_lens, kwargs_source, _ = renderer.draw(seed=3, index=index)
    data = ImageData(**simulation_util.data_configure_simple(cfg.lr_size, cfg.lr_pixel_scale))
    model = ImageModel(
        data,
        PSF(psf_type="GAUSSIAN", fwhm=cfg.lr.psf.fwhm[0], truncation=6),
        lens_model_class=_lens_model(),
        source_model_class=renderer.source_model,
        kwargs_numerics={"supersampling_factor": 6, "supersampling_convolution": True},
    )
    direct = model.image(kwargs_lens, kwargs_source) / cfg.lr_pixel_scale**2
    rel_l2 = np.linalg.norm(s.lr_clean - direct) / np.linalg.norm(direct)
    assert rel_l2 < 0.01
    # The recipe matters (README, benchmarks/lr_recipe.py over 20 lenses): naive 2x2 binning
    # of the HR image is 3-18 % off, bicubic resizing 4-26 %, ~1.4x the binning error.
    naive = block_mean(s.hr_clean, cfg.scale)
    naive_l2 = np.linalg.norm(naive - direct) / np.linalg.norm(direct)
    hr = torch.from_numpy(s.hr_clean.astype(np.float64))[None, None]
    resized = F.interpolate(hr, scale_factor=0.5, mode="bicubic", align_corners=False)[0, 0]
    bicubic_l2 = np.linalg.norm(resized.numpy() - direct) / np.linalg.norm(direct)
    assert 0.025 < naive_l2 < 0.19 and 0.035 < bicubic_l2 < 0.26
    assert 1.3 < bicubic_l2 / naive_l2 < 1.5
    assert rel_l2 < 0.1 * naive_l2


def _lens_model():
    from lenstronomy.LensModel.lens_model import LensModel

    return LensModel(["SIE", "SHEAR"])


def test_cdm_and_axion_differ_from_none_with_the_same_macro_model(tiny_config):
    renderer = Renderer(tiny_config)
    for index in range(3):
        none = renderer.render(seed=0, index=index, label=0)
        for label in (1, 2):
            sub = renderer.render(seed=0, index=index, label=label)
            # Same macro model, observing conditions and seed: only the substructure differs.
            for key in ("theta_e", "source_x", "source_mag", "hr_fwhm", "snr_target"):
                assert none.params[key] == sub.params[key], key
            assert len(sub.subhalos) > 0 and len(none.subhalos) == 0
            diff = np.abs(sub.hr_clean - none.hr_clean)
            assert diff.max() > 1e-3 * none.hr_clean.max()


@pytest.mark.parametrize("mass", [1e8, 1e9])
def test_a_subhalo_on_the_ring_perturbs_the_ring_locally(mass):
    """A point-mass subhalo on the Einstein ring changes the image mostly within 0.4 arcsec
    of itself (the disc is ~10 % of the ring's area). A vortex through the lens centre acts
    on the whole ring instead, so locality is asserted for subhalos only."""
    cfg = SimConfig(
        classes=["none"],
        lens={"theta_e": 1.2, "q": 1.0, "shear": 0.0},
        source={"r_sersic": 0.3, "center": 0.0, "q": 1.0},
    )
    renderer = Renderer(cfg)
    _, _, _, kwargs_lens, kwargs_source, _ = renderer.draw(seed=0, index=0)
    base = renderer.sky(np.zeros((0, 3)), kwargs_lens, kwargs_source, None)
    perturbed = renderer.sky(np.array([[1.2, 0.0, mass]]), kwargs_lens, kwargs_source, None)
    diff = np.abs(perturbed - base)
    c = (np.arange(cfg.hr_size) - (cfg.hr_size - 1) / 2) * cfg.hr_pixel_scale
    xx, yy = np.meshgrid(c, c)
    near = diff[np.hypot(xx - 1.2, yy) < 0.4].sum() / diff.sum()
    opposite = diff[np.hypot(xx + 1.2, yy) < 0.4].sum() / diff.sum()
    assert near > 0.3
    assert near > 5 * opposite


def test_classes_have_similar_total_substructure_mass(tiny_config):
    renderer = Renderer(tiny_config)
    cdm = [renderer.draw(seed=0, index=i, label=1)[1]["sub_mass"] for i in range(200)]
    axion = renderer.draw(seed=0, index=0, label=2)[1]["sub_mass"]
    assert 0.1 < np.mean(cdm) / axion < 10


# The noise (per-pixel variance, zero mean, S/N, correlated noise) is tested against the
# model by many draws in tests/instrument/test_noise_model.py.


def test_observed_domain_varies_every_nuisance(observed_tiny):
    renderer = Renderer(observed_tiny)
    params = [renderer.render(seed=0, index=i).params for i in range(12)]
    for key in ("lr_fwhm", "snr_target", "offset_x", "correlated_sigma"):
        values = [p[key] for p in params]
        assert np.std(values) > 0, key
    assert any(p["lens_light"] for p in params) and not all(p["lens_light"] for p in params)


@pytest.mark.parametrize("preset", ["sim", "ground"])
def test_adaptive_supersampling_matches_supersampling_everywhere(preset):
    from lensr.sim.config import load_sim_config

    adaptive = load_sim_config(preset)
    assert adaptive.adaptive_threshold > 0
    full = adaptive.model_copy(update={"adaptive_threshold": 0.0})
    fast, slow = Renderer(adaptive), Renderer(full)
    for index in range(3):  # none, cdm, axion
        a, b = fast.render(seed=5, index=index), slow.render(seed=5, index=index)
        rel_l2 = np.linalg.norm(a.hr_clean - b.hr_clean) / np.linalg.norm(b.hr_clean)
        assert 0 < rel_l2 < 5e-5  # the README's and the preset's claim


def test_adaptive_supersampling_keeps_a_subhalo_in_a_faint_region():
    # A massive subhalo where the coarse image is dark: its pixel must still be supersampled.
    cfg = SimConfig(classes=["cdm"], supersampling=4, adaptive_threshold=1e-3)
    renderer = Renderer(cfg)
    coarse = np.zeros((cfg.hr_size, cfg.hr_size))
    coarse[75, 75] = 1.0
    table = np.array([[-2.0, 2.5, 1e9]])
    mask = renderer._supersample_mask(coarse, table, 1e-3)
    ra, dec = renderer.data.pixel_coordinates
    nearest = np.unravel_index(np.argmin(np.hypot(ra + 2.0, dec - 2.5)), ra.shape)
    assert mask[nearest] and mask[75, 75] and mask.sum() < 20
