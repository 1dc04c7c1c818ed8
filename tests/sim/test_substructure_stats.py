"""Substructure statistics against analytic references: the subhalo mass function (mean,
quantiles, KS), the Poisson number of subhalos, the radius range, the vortex half-length
vs the axion mass, the point-mass Einstein radius against the cosmology (astropy, computed
here), and the truncated-NFW option. Only public behaviour is used: the draws a render
makes (:meth:`Renderer.draw`), the point-mass conversion and the TNFW profile kwargs."""

import numpy as np
import pytest
from astropy import constants as const
from astropy import units as u
from astropy.cosmology import FlatLambdaCDM
from lenstronomy.LensModel.lens_model import LensModel
from scipy import stats

from lensr.sim.config import SimConfig
from lensr.sim.cosmology import lens_cosmo, point_mass_theta_e
from lensr.sim.render import Renderer
from lensr.sim.substructure import subhalo_profiles

CDM_LABEL, AXION_LABEL = 1, 2


@pytest.fixture(scope="module")
def draws():
    """Subhalo tables and params of 400 cdm and 300 axion draws of the classify preset
    (drawing only: no ray tracing)."""
    cfg = SimConfig(hr_size=64, hr_pixel_scale=0.08)
    renderer = Renderer(cfg)
    cdm = [renderer.draw(seed=7, index=i, label=CDM_LABEL) for i in range(400)]
    axion = [renderer.draw(seed=7, index=i, label=AXION_LABEL) for i in range(300)]
    return cfg, cdm, axion


def power_law_cdf(m, lo, hi, slope):
    a = slope + 1.0
    return (m**a - lo**a) / (hi**a - lo**a)


def test_subhalo_masses_follow_the_power_law(draws):
    cfg, cdm, _ = draws
    lo, hi = cfg.cdm.mass
    slope = cfg.cdm.slope
    masses = np.concatenate([table[:, 2] for _, _, table, *_ in cdm])
    assert len(masses) > 5000 and masses.min() >= lo and masses.max() <= hi
    # Analytic mean and quantiles of dN/dm ~ m^slope on [lo, hi].
    a = slope + 1.0
    mean = a / (a + 1.0) * (hi ** (a + 1) - lo ** (a + 1)) / (hi**a - lo**a)
    stderr = masses.std() / np.sqrt(len(masses))
    assert abs(masses.mean() - mean) < 5 * stderr
    for q in (0.1, 0.25, 0.5, 0.75, 0.9):
        analytic = (lo**a + q * (hi**a - lo**a)) ** (1 / a)
        assert np.quantile(np.log10(masses), q) == pytest.approx(np.log10(analytic), abs=0.08)
    pvalue = stats.kstest(masses, lambda m: power_law_cdf(m, lo, hi, slope)).pvalue
    assert pvalue > 1e-3
    # The test has power: a flipped slope or a flat mass function is rejected outright.
    for wrong in (-slope, 0.0):
        assert stats.kstest(masses, lambda m, s=wrong: power_law_cdf(m, lo, hi, s)).pvalue < 1e-6


def test_the_number_of_subhalos_is_poisson(draws):
    cfg, cdm, _ = draws
    counts = np.array([len(table) for _, _, table, *_ in cdm])
    n_mean = cfg.cdm.n_mean
    assert counts.mean() == pytest.approx(n_mean, abs=4 * np.sqrt(n_mean / len(counts)))
    # Poisson: variance = mean (a fixed count, or n_mean subhalos always, has variance 0).
    assert counts.var(ddof=1) == pytest.approx(n_mean, rel=0.25)
    assert all(p["n_sub"] == n for (_, p, *_), n in zip(cdm, counts, strict=True))


def test_subhalos_lie_in_the_radius_range_uniform_in_radius(draws):
    cfg, cdm, _ = draws
    lo, hi = cfg.cdm.radius
    r = np.concatenate(
        [np.hypot(t[:, 0] - p["lens_x"], t[:, 1] - p["lens_y"]) for _, p, t, *_ in cdm]
    )
    assert r.min() >= lo and r.max() <= hi
    assert r.min() < lo + 0.01 and r.max() > hi - 0.01  # the whole range is used
    assert stats.kstest(r, stats.uniform(lo, hi - lo).cdf).pvalue > 1e-3


def test_vortex_half_length_scales_as_one_over_the_axion_mass(draws):
    cfg, _, axion = draws
    log_ma = []
    for _, p, table, *_ in axion:
        centre = np.array([p["lens_x"], p["lens_y"]])
        extent = np.hypot(*(table[:, :2] - centre).T).max()
        expected = cfg.axion.length_coeff * 1e-22 / 10.0 ** p["axion_log10_ma"]
        assert extent == pytest.approx(expected, rel=1e-9)
        assert p["vortex_half_length"] == pytest.approx(expected, rel=1e-9)
        assert len(table) == cfg.axion.n_points
        assert table[:, 2].sum() == pytest.approx(cfg.axion.total_mass, rel=1e-12)
        log_ma.append(p["axion_log10_ma"])
    # m_a log-uniform on its range.
    lo, hi = cfg.axion.log10_mass_ev
    assert stats.kstest(log_ma, stats.uniform(lo, hi - lo).cdf).pvalue > 1e-3


def einstein_radius_arcsec(mass_msun, z_lens=0.5, z_source=1.0, H0=70.0, Om0=0.3):
    """theta_E = sqrt(4 G M / c^2 * D_ls / (D_l D_s)), angular-diameter distances."""
    cosmo = FlatLambdaCDM(H0=H0, Om0=Om0)
    d_l = cosmo.angular_diameter_distance(z_lens)
    d_s = cosmo.angular_diameter_distance(z_source)
    d_ls = cosmo.angular_diameter_distance(z_lens, z_source)
    theta2 = 4 * const.G * mass_msun * u.Msun / const.c**2 * d_ls / (d_l * d_s)
    return (np.sqrt(theta2.decompose()) * u.rad).to(u.arcsec).value


def deflection(names, kwargs, x, y):
    ax, ay = LensModel(names).alpha(np.atleast_1d(x), np.atleast_1d(y), kwargs)
    return np.hypot(ax, ay)


@pytest.mark.parametrize("mass", [1e6, 1e8, 1e10])
def test_point_mass_einstein_radius_matches_the_cosmology(mass):
    lc = lens_cosmo(0.5, 1.0, 70.0, 0.3)
    theta_e = einstein_radius_arcsec(mass)
    assert point_mass_theta_e(mass, lc) == pytest.approx(theta_e, rel=1e-3)
    # Sanity anchor for the formula above: 1e12 Msun at z = 0.5 -> 1.0 is ~1.7 arcsec.
    assert 1.6 < einstein_radius_arcsec(1e12) < 1.75


def test_truncated_nfw_option_has_the_truncated_mass_far_away():
    """Far outside the truncation a TNFW deflects like a point mass of its total mass:
    Baltz, Marshall & Oguri (2009) eq. 10 with tau = r_t / r_s = 5, the NFW normalised to
    M200 (critical density at z_lens, astropy) with c = 15 (M / 1e8)^-0.1."""
    lc = lens_cosmo(0.5, 1.0, 70.0, 0.3)
    mass = 1e9
    names, kwargs = subhalo_profiles(np.array([[0.0, 0.0, mass]]), lc, "tnfw")
    assert set(names) == {"TNFW"}
    c, tau = 15.0 * (mass / 1e8) ** -0.1, 5.0
    cosmo = FlatLambdaCDM(H0=70.0, Om0=0.3)
    rho_c = cosmo.critical_density(0.5).to(u.Msun / u.Mpc**3).value
    r200 = (3 * mass / (4 * np.pi * 200 * rho_c)) ** (1 / 3)  # Mpc
    rs_arcsec = r200 / c / cosmo.angular_diameter_distance(0.5).value * 206264.806
    assert kwargs[0]["Rs"] == pytest.approx(rs_arcsec, rel=1e-3)
    assert kwargs[0]["r_trunc"] == pytest.approx(tau * kwargs[0]["Rs"], rel=1e-12)
    m_nfw = np.log(1 + c) - c / (1 + c)
    t2 = tau**2
    m_trunc = t2 / (t2 + 1) ** 2 * ((t2 - 1) * np.log(tau) + tau * np.pi - (t2 + 1))
    total = mass * m_trunc / m_nfw
    r = 200 * rs_arcsec
    alpha = deflection(names, kwargs, r, 0.0)[0]
    assert alpha * r == pytest.approx(einstein_radius_arcsec(total) ** 2, rel=0.01)
    assert total < mass  # truncation removes mass beyond 5 r_s
