"""All point masses of an image as one deflection, and ray-tracing that reuses the coarse pass.

lenstronomy evaluates each POINT_MASS as its own profile on every ray: 100 array passes for
an axion vortex. :func:`add_point_mass_alpha` adds the whole table in one compiled loop
(numba ships with lenstronomy), with lenstronomy's formula and summation order (alpha_x +=
(theta_E^2 / r) * x / r, profiles in table order after the SIE and the shear), so the
deflections are the same to the last bit or two.

:class:`SkyTracer` renders the PSF-free sky with lenstronomy's own numerics (grids, adaptive
supersampling, sub-pixel averaging) and light models; only the deflection is computed here.
The first, one-ray-per-pixel pass that picks the pixels to supersample is reused for every
pixel that is not supersampled: lenstronomy's adaptive grid evaluates those at the same
pixel centres again.
"""

from __future__ import annotations

import numba
import numpy as np
from lenstronomy.Data.psf import PSF
from lenstronomy.ImSim.Numerics.numerics_subframe import NumericsSubFrame
from lenstronomy.LensModel.lens_model import LensModel
from lenstronomy.Util import util

R_MIN = 1e-25  # lenstronomy's PointMass.r_min


@numba.njit(
    "void(float64[::1], float64[::1], float64[::1], float64[::1], float64[::1], "
    "float64[::1], float64[::1])",
    cache=True,
    nogil=True,
)
def _accumulate(x, y, cx, cy, theta_e_sq, ax, ay):  # pragma: no cover - compiled
    for i in range(cx.shape[0]):
        t2, x0, y0 = theta_e_sq[i], cx[i], cy[i]
        for j in range(x.shape[0]):
            dx = x[j] - x0
            dy = y[j] - y0
            r = np.sqrt(dx * dx + dy * dy)
            if not r > R_MIN:
                r = R_MIN
            a = t2 / r
            ax[j] += a * dx / r
            ay[j] += a * dy / r


def add_point_mass_alpha(x, y, table_xy_theta: np.ndarray, ax: np.ndarray, ay: np.ndarray):
    """Add the deflection of point masses (rows: x, y, theta_E in arcsec) to ``ax, ay``
    in place, at the rays ``x, y`` (1-d float64 arrays of equal length)."""
    t = np.ascontiguousarray(table_xy_theta, dtype=np.float64).reshape(-1, 3)
    if len(t) == 0:
        return
    _accumulate(
        np.ascontiguousarray(x, dtype=np.float64),
        np.ascontiguousarray(y, dtype=np.float64),
        np.ascontiguousarray(t[:, 0]),
        np.ascontiguousarray(t[:, 1]),
        t[:, 2] ** 2,
        ax,
        ay,
    )


def point_mass_alpha(x, y, table_xy_theta: np.ndarray):
    """Deflection (alpha_x, alpha_y) of a table of point masses at the rays ``x, y``."""
    x = np.ascontiguousarray(x, dtype=np.float64).ravel()
    y = np.ascontiguousarray(y, dtype=np.float64).ravel()
    ax, ay = np.zeros_like(x), np.zeros_like(x)
    add_point_mass_alpha(x, y, table_xy_theta, ax, ay)
    return ax, ay


class SkyTracer:
    """PSF-free sky on one pixel grid: lenstronomy lens/light models for everything but the
    point masses, which are one vectorised deflection."""

    def __init__(self, data, supersampling: int, lens_light_model):
        self.data = data
        self.supersampling = supersampling
        self.lens_light_model = lens_light_model
        self._macro = LensModel(["SIE", "SHEAR"])
        self._coarse = self._numerics({"supersampling_factor": 1})
        self._regular = self._numerics({"supersampling_factor": supersampling})

    def _numerics(self, kwargs: dict) -> NumericsSubFrame:
        return NumericsSubFrame(pixel_grid=self.data, psf=PSF(psf_type="NONE"), **kwargs)

    def _fluxes(self, x, y, scene):
        """Source and lens-light surface brightness at rays ``x, y``."""
        lens_model, kwargs_lens, points, source_model, kwargs_source, kwargs_lens_light = scene
        x, y = np.array(x, dtype=float), np.array(y, dtype=float)
        ax, ay = lens_model.alpha(x, y, kwargs_lens)
        add_point_mass_alpha(x, y, points, ax, ay)
        src = source_model.surface_brightness(x - ax, y - ay, kwargs_source)
        light = None
        if kwargs_lens_light:
            light = self.lens_light_model.surface_brightness(x, y, kwargs_lens_light)
        return src, light

    def _image(self, numerics, src, light) -> np.ndarray:
        """lenstronomy's ImageModel.image: zeros + source + lens light, each resized."""
        model = np.zeros(self.data.num_pixel_axes)
        model += numerics.re_size_convolve(src, unconvolved=True)
        if light is not None:
            model += numerics.re_size_convolve(light, unconvolved=True)
        return model

    def scene(
        self,
        kwargs_lens,
        points,
        extra_names,
        extra_kwargs,
        source_model,
        kwargs_source,
        kwargs_lens_light,
    ):
        """Bundle of what a render needs: ``kwargs_lens`` are the SIE and shear kwargs,
        ``points`` rows (x, y, theta_E), ``extra_*`` other lenstronomy subhalo profiles."""
        if extra_names:
            lens_model = LensModel(["SIE", "SHEAR", *extra_names])
            kwargs_lens = list(kwargs_lens) + list(extra_kwargs)
        else:
            lens_model = self._macro
        return lens_model, kwargs_lens, points, source_model, list(kwargs_source), kwargs_lens_light

    def regular(self, scene) -> np.ndarray:
        """Every pixel at ``supersampling`` x ``supersampling`` rays (counts per pixel)."""
        x, y = self._regular.coordinates_evaluate
        return self._image(self._regular, *self._fluxes(x, y, scene))

    def coarse(self, scene):
        """One ray per pixel centre: (image, source flux, lens-light flux)."""
        x, y = self._coarse.coordinates_evaluate
        src, light = self._fluxes(x, y, scene)
        return self._image(self._coarse, src, light), src, light

    def adaptive(self, scene, mask: np.ndarray, coarse_src, coarse_light) -> np.ndarray:
        """lenstronomy's adaptive mode: ``mask`` pixels supersampled, the rest taken from the
        coarse pass (the same rays at the same pixel centres)."""
        numerics = self._numerics(
            {
                "supersampling_factor": self.supersampling,
                "compute_mode": "adaptive",
                "supersampled_indexes": mask,
            }
        )
        x, y = numerics.coordinates_evaluate
        low = ~util.image2array(mask)
        n_low = int(low.sum())
        src_hi, light_hi = self._fluxes(x[n_low:], y[n_low:], scene)
        src = np.concatenate([coarse_src[low], src_hi])
        light = None if coarse_light is None else np.concatenate([coarse_light[low], light_hi])
        return self._image(numerics, src, light)
