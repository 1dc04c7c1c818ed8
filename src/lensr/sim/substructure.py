"""Dark-matter substructure classes as lenstronomy lens profiles.

``cdm``: Poisson(n_mean) subhalos, dN/dm ~ m^slope on [m_lo, m_hi], uniform in radius
within [r_lo, r_hi] of the lens centre and uniform in angle (DeepLenseSim's choice).
``axion``: a vortex of total mass M as n equal point masses on a line through the lens
centre at a random angle, half-length L = length_coeff * (1e-22 eV / m_a).
"""

from __future__ import annotations

import numpy as np
from lenstronomy.Cosmo.lens_cosmo import LensCosmo

from lensr.sim.config import CDM, Axion
from lensr.sim.cosmology import point_mass_theta_e


def sample_power_law(rng: np.random.Generator, n: int, lo: float, hi: float, slope: float):
    """Draw n values with density ~ x^slope on [lo, hi] by inverting the CDF."""
    u = rng.random(n)
    if np.isclose(slope, -1.0):
        return lo * (hi / lo) ** u
    a = slope + 1.0
    return (lo**a + u * (hi**a - lo**a)) ** (1.0 / a)


def draw_cdm(rng: np.random.Generator, cfg: CDM, center: tuple[float, float]) -> np.ndarray:
    """Subhalo table: rows (x, y, mass) in arcsec and Msun."""
    n = int(cfg.n_mean) if cfg.count == "fixed" else rng.poisson(cfg.n_mean)
    mass = sample_power_law(rng, n, cfg.mass[0], cfg.mass[1], cfg.slope)
    r = rng.uniform(cfg.radius[0], cfg.radius[1], n)
    phi = rng.uniform(0, 2 * np.pi, n)
    return np.column_stack([center[0] + r * np.cos(phi), center[1] + r * np.sin(phi), mass])


def draw_axion(rng: np.random.Generator, cfg: Axion, center: tuple[float, float]):
    """Vortex point masses (x, y, mass) and its (log10 m_a / eV, angle, half-length)."""
    log_ma = rng.uniform(*cfg.log10_mass_ev)
    angle = rng.uniform(0, np.pi)
    half_length = cfg.length_coeff * 10.0 ** (-22.0 - log_ma)
    t = np.linspace(-half_length, half_length, cfg.n_points)
    mass = np.full(cfg.n_points, cfg.total_mass / cfg.n_points)
    table = np.column_stack([center[0] + t * np.cos(angle), center[1] + t * np.sin(angle), mass])
    return table, (log_ma, angle, half_length)


def point_mass_table(table: np.ndarray, lc: LensCosmo) -> np.ndarray:
    """Rows (x, y, theta_E) in arcsec of point-mass subhalos (for
    :func:`lensr.sim.point_masses.add_point_mass_alpha`)."""
    if len(table) == 0:
        return np.zeros((0, 3))
    return np.column_stack([table[:, 0], table[:, 1], point_mass_theta_e(table[:, 2], lc)])


def subhalo_profiles(table: np.ndarray, lc: LensCosmo, profile: str = "point_mass"):
    """lenstronomy (model names, kwargs) for a subhalo table."""
    if len(table) == 0:
        return [], []
    if profile == "point_mass":
        theta = point_mass_theta_e(table[:, 2], lc)
        kwargs = [
            {"theta_E": float(t), "center_x": float(x), "center_y": float(y)}
            for (x, y, _), t in zip(table, theta, strict=True)
        ]
        return ["POINT_MASS"] * len(table), kwargs
    kwargs = []
    for x, y, m in table:
        # Concentration from a simple c(M) power law (Duffy-like at z~0.5); truncated at 5 r_s.
        concentration = 15.0 * (m / 1e8) ** -0.1
        rs_angle, alpha_rs = lc.nfw_physical2angle(M=m, c=concentration)
        kwargs.append(
            {
                "Rs": rs_angle,
                "alpha_Rs": alpha_rs,
                "r_trunc": 5 * rs_angle,
                "center_x": float(x),
                "center_y": float(y),
            }
        )
    return ["TNFW"] * len(table), kwargs
