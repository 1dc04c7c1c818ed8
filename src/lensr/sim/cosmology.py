"""Angular-diameter distances and mass <-> angle conversions (astropy FlatLambdaCDM)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from astropy.cosmology import FlatLambdaCDM
from lenstronomy.Cosmo.lens_cosmo import LensCosmo


@lru_cache(maxsize=16)
def lens_cosmo(z_lens: float, z_source: float, H0: float = 70.0, Om0: float = 0.3) -> LensCosmo:
    """lenstronomy's LensCosmo with real angular-diameter distances."""
    return LensCosmo(z_lens=z_lens, z_source=z_source, cosmo=FlatLambdaCDM(H0=H0, Om0=Om0))


def point_mass_theta_e(mass, lc: LensCosmo) -> np.ndarray:
    """Einstein radius in arcsec of a point mass in Msun: M = pi Sigma_crit theta_E^2."""
    return np.sqrt(np.asarray(mass, dtype=float) / (np.pi * lc.sigma_crit_angle))
