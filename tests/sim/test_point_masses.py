"""The vectorised point-mass path renders what lenstronomy's one-profile-per-subhalo path
renders (the reference, kept as ``Renderer(cfg, reference=True)``), per preset and class."""

import numpy as np
import pytest
from lenstronomy.LensModel.Profiles.point_mass import PointMass

from lensr.sim.config import load_sim_config
from lensr.sim.point_masses import point_mass_alpha
from lensr.sim.render import Renderer


def _rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def test_point_mass_alpha_is_lenstronomys_sum():
    rng = np.random.default_rng(1)
    table = np.column_stack([rng.uniform(-2, 2, (2, 40)).T, rng.uniform(1e-4, 0.3, 40)])
    x, y = rng.uniform(-3, 3, (2, 5000))
    x[0], y[0] = table[0, 0], table[0, 1]  # a ray on a point mass: lenstronomy's r_min
    ref_x, ref_y = np.zeros_like(x), np.zeros_like(y)
    for cx, cy, t in table:
        fx, fy = PointMass().derivatives(x, y, theta_E=t, center_x=cx, center_y=cy)
        ref_x += fx
        ref_y += fy
    ax, ay = point_mass_alpha(x, y, table)
    np.testing.assert_allclose(ax, ref_x, rtol=1e-12, atol=0)
    np.testing.assert_allclose(ay, ref_y, rtol=1e-12, atol=0)


@pytest.mark.parametrize("preset", ["sim", "observed", "ground", "classify", "generalist"])
def test_noise_free_images_match_lenstronomy_per_class(preset):
    cfg = load_sim_config(preset)
    fast, ref = Renderer(cfg), Renderer(cfg, reference=True)
    for label, name in enumerate(cfg.classes):
        a, b = fast.render(3, label, label), ref.render(3, label, label)
        assert (len(a.subhalos) > 0) == (name != "none")
        assert _rel(a.hr_clean, b.hr_clean) <= 1e-6, (preset, name)
        assert _rel(a.lr_clean, b.lr_clean) <= 1e-6, (preset, name)
        np.testing.assert_array_equal(a.hr, b.hr)  # same noise draws on the same image


def test_tnfw_subhalos_still_render_through_lenstronomy():
    cfg = load_sim_config("classify").model_copy(deep=True)
    cfg.cdm.profile = "tnfw"
    a, b = Renderer(cfg).render(0, 1), Renderer(cfg, reference=True).render(0, 1)
    assert len(a.subhalos) and _rel(a.hr_clean, b.hr_clean) <= 1e-6


def test_supersample_mask_marks_pixels_near_each_subhalo():
    cfg = load_sim_config("sim")
    r = Renderer(cfg)
    _, _, table, *_ = r.draw(0, 2, 2)  # an axion vortex: 100 points
    coarse = np.zeros((cfg.hr_size, cfg.hr_size))
    coarse[0, 0] = 1.0
    ra, dec = r.data.pixel_coordinates
    near = 1.5 * cfg.hr_pixel_scale
    expected = coarse > 1e-3
    for x, y, _ in table:  # the definition, one subhalo at a time
        expected |= (np.abs(ra - x) < near) & (np.abs(dec - y) < near)
    np.testing.assert_array_equal(r._supersample_mask(coarse, table, 1e-3), expected)
