"""Render one HR/LR pair of the same sky with lenstronomy.

Recipe (docs/physics.md, "HR and LR images of one sky"): ray-trace once on the
supersampled HR grid without a PSF (the sky); HR = sky * HR PSF; LR = sky * LR PSF on
the HR grid, then an s x s block mean;
each band then gets its own noise. Pixel values are surface brightness: 1 means
``flux_zero_point`` mag/arcsec^2, so HR and LR values of the same sky are comparable.
The instrument (PSF kernels, block mean, noise model) is :mod:`lensr.instrument`'s, the
one the LR chi-square, the projection and the physics-informed model use too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from lenstronomy.Data.imaging_data import ImageData
from lenstronomy.Data.psf import PSF
from lenstronomy.ImSim.image_model import ImageModel
from lenstronomy.LensModel.lens_model import LensModel
from lenstronomy.LightModel.light_model import LightModel
from lenstronomy.Util import param_util, simulation_util
from scipy.ndimage import binary_dilation
from scipy.signal import fftconvolve

from lensr.instrument.binning import block_mean
from lensr.instrument.noise import (
    add_cosmic_rays,
    band_rate,
    exposure_for_snr,
    noise_counts,
    noise_variance,
    read_variance,
    sky_rate,
)
from lensr.instrument.psf import band_kernel
from lensr.sim.config import SimConfig, variant_configs
from lensr.sim.cosmology import lens_cosmo, point_mass_theta_e
from lensr.sim.point_masses import SkyTracer
from lensr.sim.sources import is_single_sersic, light_names, source_components
from lensr.sim.substructure import draw_axion, draw_cdm, point_mass_table, subhalo_profiles

# Every scalar drawn per image, in the order of the HDF5 `params` table.
PARAM_FIELDS = (
    "theta_e",
    "lens_q",
    "lens_phi",
    "lens_x",
    "lens_y",
    "shear",
    "shear_phi",
    "source_r",
    "source_n",
    "source_x",
    "source_y",
    "source_q",
    "source_phi",
    "source_mag",
    "lens_light",
    "lens_light_mag",
    "lens_light_r",
    "lens_light_n",
    "lens_light_q",
    "lens_light_phi",
    "n_sub",
    "sub_mass",
    "axion_log10_ma",
    "vortex_angle",
    "vortex_half_length",
    "hr_fwhm",
    "hr_beta",
    "lr_fwhm",
    "lr_beta",
    "offset_x",
    "offset_y",
    "snr_target",
    "hr_exposure",
    "lr_exposure",
    "correlated_sigma",
    "cosmic_rays_hr",
    "cosmic_rays_lr",
    "peak_snr_hr",
    "peak_snr_lr",
)


@dataclass
class Sample:
    """One simulated pair; ``subhalos`` rows are (x, y, mass) in arcsec and Msun."""

    hr: np.ndarray
    lr: np.ndarray
    hr_clean: np.ndarray
    lr_clean: np.ndarray
    label: int
    params: dict[str, float]
    subhalos: np.ndarray = field(default_factory=lambda: np.zeros((0, 3)))


def image_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    """Independent random stream per (seed, image, purpose): macro model, substructure,
    observing conditions and noise never share draws, so changing one class keeps the rest."""
    return np.random.default_rng([seed, index, stream])


def _u(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(rng.uniform(bounds[0], bounds[1]))


def _sersic(p: dict, prefix: str, center: tuple[float, float]) -> dict:
    """lenstronomy SERSIC_ELLIPSE keyword arguments (without ``amp``) from the params
    ``{prefix}_r``, ``_n``, ``_phi`` and ``_q`` of ``p``, centred on ``center``."""
    e1, e2 = param_util.phi_q2_ellipticity(p[f"{prefix}_phi"], p[f"{prefix}_q"])
    return {
        "R_sersic": p[f"{prefix}_r"],
        "n_sersic": p[f"{prefix}_n"],
        "e1": e1,
        "e2": e2,
        "center_x": center[0],
        "center_y": center[1],
    }


class Renderer:
    """Draws and renders scenes for one :class:`SimConfig`. Reusable across images."""

    def __init__(self, cfg: SimConfig, *, reference: bool = False):
        self.cfg = cfg
        # reference: lenstronomy's ImageModel with one POINT_MASS profile per subhalo.
        self.reference = reference
        c = cfg.cosmology
        self.lens_cosmo = lens_cosmo(c.z_lens, c.z_source, c.H0, c.Om0)
        self.data = ImageData(
            **simulation_util.data_configure_simple(cfg.hr_size, cfg.hr_pixel_scale)
        )
        self.hr_area = cfg.hr_pixel_scale**2
        self.lr_area = cfg.lr_pixel_scale**2
        self.source_model = LightModel(["SERSIC_ELLIPSE"])
        self.lens_light_model = LightModel(["SERSIC_ELLIPSE"])
        self.numerics = {"supersampling_factor": cfg.supersampling}
        self.tracer = SkyTracer(self.data, cfg.supersampling, self.lens_light_model)
        # A mixture prior: each image is rendered by the renderer of one variant.
        parts = variant_configs(cfg) if cfg.variants else []
        self.variants = [Renderer(c, reference=reference) for c, _ in parts]
        weights = np.array([w for _, w in parts], dtype=float)
        self.variant_weights = weights / weights.sum() if parts else weights

    # -- drawing -----------------------------------------------------------------------
    def label_of(self, index: int) -> int:
        """Classes cycle with the index, so every prefix of a dataset is balanced."""
        return index % len(self.cfg.classes)

    def _sersic_amp(self, model: LightModel, kwargs: dict, magnitude: float) -> float:
        unit = model.total_flux([{**kwargs, "amp": 1.0}])[0]
        return 10.0 ** (-0.4 * (magnitude - self.cfg.flux_zero_point)) / unit

    def draw(self, seed: int, index: int, label: int | None = None):
        """Scene for image ``index``: lenstronomy kwargs, flat params and subhalo table."""
        cfg = self.cfg
        label = self.label_of(index) if label is None else label
        macro, sub, obs = (image_rng(seed, index, k) for k in range(3))
        p = dict.fromkeys(PARAM_FIELDS, 0.0)

        p["theta_e"], p["lens_q"] = _u(macro, cfg.lens.theta_e), _u(macro, cfg.lens.q)
        p["lens_phi"] = _u(macro, cfg.lens.phi)
        p["lens_x"], p["lens_y"] = _u(macro, cfg.lens.center), _u(macro, cfg.lens.center)
        p["shear"], p["shear_phi"] = _u(macro, cfg.lens.shear), _u(macro, cfg.lens.shear_phi)
        e1, e2 = param_util.phi_q2_ellipticity(p["lens_phi"], p["lens_q"])
        g1, g2 = param_util.shear_polar2cartesian(p["shear_phi"], p["shear"])
        kwargs_lens = [
            {
                "theta_E": p["theta_e"],
                "e1": e1,
                "e2": e2,
                "center_x": p["lens_x"],
                "center_y": p["lens_y"],
            },
            {"gamma1": g1, "gamma2": g2, "ra_0": 0.0, "dec_0": 0.0},
        ]

        src = cfg.source
        p["source_r"], p["source_n"] = _u(macro, src.r_sersic), _u(macro, src.n_sersic)
        p["source_x"], p["source_y"] = _u(macro, src.center), _u(macro, src.center)
        p["source_q"], p["source_phi"] = _u(macro, src.q), _u(macro, src.phi)
        p["source_mag"] = _u(macro, src.magnitude)
        source = _sersic(p, "source", (p["source_x"], p["source_y"]))
        source["amp"] = self._sersic_amp(self.source_model, source, p["source_mag"])
        sources = [source]
        if src.templates or src.components[1] > 1 or src.clumps[1] > 0:
            extra_rng = image_rng(seed, index, 5)  # own stream: other draws stay as they were
            sources = source_components(extra_rng, src, p, source, cfg.flux_zero_point)

        light = cfg.lens.light
        kwargs_lens_light = None
        if light.probability > 0 and macro.random() < light.probability:
            p["lens_light"] = 1.0
            p["lens_light_mag"] = _u(macro, light.magnitude)
            p["lens_light_r"], p["lens_light_n"] = (
                _u(macro, light.r_sersic),
                _u(macro, light.n_sersic),
            )
            # The light follows the mass: same centre, similar orientation.
            p["lens_light_q"], p["lens_light_phi"] = _u(macro, light.q), p["lens_phi"]
            ll = _sersic(p, "lens_light", (p["lens_x"], p["lens_y"]))
            ll["amp"] = self._sersic_amp(self.lens_light_model, ll, p["lens_light_mag"])
            kwargs_lens_light = [ll]

        center = (p["lens_x"], p["lens_y"])
        name = cfg.classes[label]
        table = np.zeros((0, 3))
        if name == "cdm":
            table = draw_cdm(sub, cfg.cdm, center)
        elif name == "axion":
            table, (p["axion_log10_ma"], p["vortex_angle"], p["vortex_half_length"]) = draw_axion(
                sub, cfg.axion, center
            )
        if cfg.mass_compensation and len(table):
            p["theta_e"] = kwargs_lens[0]["theta_E"] = self._compensated_theta_e(
                p["theta_e"], table, center
            )
        p["n_sub"], p["sub_mass"] = (
            float(len(table)),
            float(table[:, 2].sum()) if len(table) else 0.0,
        )

        for band, key in ((cfg.hr, "hr"), (cfg.lr, "lr")):
            p[f"{key}_fwhm"], p[f"{key}_beta"] = _u(obs, band.psf.fwhm), _u(obs, band.psf.beta)
        p["offset_x"] = _u(obs, (-cfg.noise.offset, cfg.noise.offset))
        p["offset_y"] = _u(obs, (-cfg.noise.offset, cfg.noise.offset))
        p["snr_target"] = _u(obs, cfg.noise.snr) if cfg.noise.snr else 0.0
        p["correlated_sigma"] = _u(obs, cfg.noise.correlated_sigma)
        if cfg.noise.log10_exposure is not None:  # drawn last: other draws stay as they were
            p["hr_exposure"] = 10.0 ** _u(obs, cfg.noise.log10_exposure)
        return label, p, table, kwargs_lens, sources, kwargs_lens_light

    def _compensated_theta_e(self, theta_e: float, table: np.ndarray, center) -> float:
        """Main-lens Einstein radius that keeps the ring radius at ``theta_e`` once the
        subhalos are added (``mass_compensation``). The ring sits where the mean convergence
        inside it is 1: pi Sigma_cr theta_E^2 = M_main(<theta_E) + M_sub(<theta_E), and an
        isothermal lens of Einstein radius t holds M(<r) = pi Sigma_cr t r. Mass outside the
        ring does not move it (monopole), so only subhalos inside count:
        theta_E' = theta_E - theta_sub^2 / theta_E with pi Sigma_cr theta_sub^2 = M_sub(<theta_E).
        """
        r = np.hypot(table[:, 0] - center[0], table[:, 1] - center[1])
        inside = float(table[r < theta_e, 2].sum())
        theta_sub2 = float(point_mass_theta_e(inside, self.lens_cosmo)) ** 2
        return max(theta_e - theta_sub2 / theta_e, 1e-3 * theta_e)

    # -- rendering ---------------------------------------------------------------------
    def sky(self, table, kwargs_lens, kwargs_source, kwargs_lens_light) -> np.ndarray:
        """Noise-free, PSF-free surface brightness on the HR grid (pixel-integrated): the
        point masses as one deflection, the coarse pass reused (:mod:`lensr.sim.point_masses`);
        :meth:`sky_reference`'s image within round-off."""
        if self.reference:
            return self.sky_reference(table, kwargs_lens, kwargs_source, kwargs_lens_light)
        single = is_single_sersic(kwargs_source)
        source_model = self.source_model if single else LightModel(light_names(kwargs_source))
        points, names, extra = np.zeros((0, 3)), [], []
        if self.cfg.cdm.profile == "point_mass":
            points = point_mass_table(table, self.lens_cosmo)
        else:
            names, extra = subhalo_profiles(table, self.lens_cosmo, self.cfg.cdm.profile)
        scene = self.tracer.scene(
            kwargs_lens, points, names, extra, source_model, kwargs_source, kwargs_lens_light
        )
        threshold = self.cfg.adaptive_threshold
        if threshold <= 0 or self.cfg.supersampling == 1:
            return self.tracer.regular(scene) / self.hr_area
        coarse, src, light = self.tracer.coarse(scene)
        mask = binary_dilation(self._supersample_mask(coarse, table, threshold), iterations=2)
        return self.tracer.adaptive(scene, mask, src, light) / self.hr_area

    def sky_reference(self, table, kwargs_lens, kwargs_source, kwargs_lens_light) -> np.ndarray:
        """:meth:`sky` as lenstronomy's ImageModel renders it, one profile per subhalo."""
        names, sub_kwargs = subhalo_profiles(table, self.lens_cosmo, self.cfg.cdm.profile)
        lens_model = LensModel(["SIE", "SHEAR", *names])

        def counts(numerics: dict) -> np.ndarray:
            image_model = ImageModel(
                self.data,
                PSF(psf_type="NONE"),
                lens_model_class=lens_model,
                source_model_class=self.source_model
                if is_single_sersic(kwargs_source)
                else LightModel(light_names(kwargs_source)),
                lens_light_model_class=self.lens_light_model if kwargs_lens_light else None,
                kwargs_numerics=numerics,
            )
            return image_model.image(
                kwargs_lens + sub_kwargs, kwargs_source, kwargs_lens_light=kwargs_lens_light
            )

        threshold = self.cfg.adaptive_threshold
        if threshold <= 0 or self.cfg.supersampling == 1:
            return counts(self.numerics) / self.hr_area
        coarse = counts({"supersampling_factor": 1})
        mask = binary_dilation(self._supersample_mask(coarse, table, threshold), iterations=2)
        adaptive = {**self.numerics, "compute_mode": "adaptive", "supersampled_indexes": mask}
        return counts(adaptive) / self.hr_area

    def _supersample_mask(self, coarse: np.ndarray, table, threshold: float) -> np.ndarray:
        """Bright pixels, and pixels next to a subhalo, where one ray per pixel is not enough:
        a point mass can hide a small bright ring inside a pixel whose centre ray misses it."""
        mask = coarse > threshold * coarse.max()
        if len(table):  # the grid is axis-aligned: one row and one column test per subhalo
            ra, dec = self.data.pixel_coordinates
            near = 1.5 * self.cfg.hr_pixel_scale
            cols = (np.abs(ra[0][None, :] - table[:, :1]) < near).astype(np.float32)
            rows = (np.abs(dec[:, 0][None, :] - table[:, 1:2]) < near).astype(np.float32)
            mask |= (rows.T @ cols) > 0
        return mask

    def render(self, seed: int, index: int, label: int | None = None) -> Sample:
        """Draw and render image ``index`` of a dataset made with ``seed``."""
        if self.variants:
            k = image_rng(seed, index, 4).choice(len(self.variants), p=self.variant_weights)
            return self.variants[k].render(seed, index, label)
        cfg = self.cfg
        label, p, table, kwargs_lens, kwargs_source, kwargs_lens_light = self.draw(
            seed, index, label
        )
        sky = self.sky(table, kwargs_lens, kwargs_source, kwargs_lens_light)
        k_hr = band_kernel(p, "hr", kind=cfg.hr.psf.type, pixel_scale=cfg.hr_pixel_scale)
        k_lr = band_kernel(p, "lr", kind=cfg.lr.psf.type, pixel_scale=cfg.hr_pixel_scale)
        # FFT round-off leaves ~1e-13 negatives in empty sky; flux is never negative.
        hr_clean = np.clip(fftconvolve(sky, k_hr, mode="same"), 0.0, None)
        lr_clean = block_mean(np.clip(fftconvolve(sky, k_lr, mode="same"), 0.0, None), cfg.scale)

        hr, lr = self.observe(image_rng(seed, index, 3), hr_clean, lr_clean, p)
        return Sample(
            hr=hr,
            lr=lr,
            hr_clean=hr_clean.astype(np.float32),
            lr_clean=lr_clean.astype(np.float32),
            label=label,
            params=p,
            subhalos=table,
        )

    def observe(self, rng, hr_clean, lr_clean, p):
        """Add each band's noise; sets exposure times and measured S/N in ``p``."""
        cfg = self.cfg
        if not cfg.noise.enabled:  # DeepLenseSim's released Models II/III: no noise at all
            # Nominal exposures keep the stored LR noise model (instrument_for) finite.
            p["hr_exposure"], p["lr_exposure"] = cfg.hr.exposure_time, cfg.lr.exposure_time
            p["peak_snr_hr"] = p["peak_snr_lr"] = np.inf  # noise-free, not S/N 0
            return hr_clean.astype(np.float32), lr_clean.astype(np.float32)
        rate_hr = band_rate(cfg.hr.zero_point, cfg.flux_zero_point) * self.hr_area
        rate_lr = band_rate(cfg.lr.zero_point, cfg.flux_zero_point) * self.lr_area
        sky_hr = sky_rate(cfg.hr.sky_brightness, cfg.hr.zero_point, self.hr_area)
        sky_lr = sky_rate(cfg.lr.sky_brightness, cfg.lr.zero_point, self.lr_area)
        t_hr, t_lr = cfg.hr.exposure_time, cfg.lr.exposure_time
        if p["hr_exposure"] > 0:  # drawn per image (noise.log10_exposure)
            t_hr, t_lr = p["hr_exposure"], p["hr_exposure"] * t_lr / t_hr
        if p["snr_target"] > 0:
            peak = max(float(hr_clean.max()), 1e-30) * rate_hr
            read_var = read_variance(cfg.hr.read_noise, cfg.hr.num_exposures)
            t_new = exposure_for_snr(p["snr_target"], peak, sky_hr, read_var)
            t_hr, t_lr = t_new, t_new * cfg.lr.exposure_time / cfg.hr.exposure_time
        p["hr_exposure"], p["lr_exposure"] = t_hr, t_lr
        images = []
        for key, band, clean, rate, sky, t in (
            ("hr", cfg.hr, hr_clean, rate_hr, sky_hr, t_hr),
            ("lr", cfg.lr, lr_clean, rate_lr, sky_lr, t_lr),
        ):
            signal = clean * rate * t
            read_var = read_variance(band.read_noise, band.num_exposures)
            read_var += (band.background_rms * t) ** 2
            noise = noise_counts(
                rng, signal, sky=sky * t, read_var=read_var, correlated_sigma=p["correlated_sigma"]
            )
            std = np.sqrt(noise_variance(signal, sky=sky * t, read_var=read_var))
            counts = signal + noise
            p[f"cosmic_rays_{key}"] = add_cosmic_rays(
                rng, counts, rate=cfg.noise.cosmic_rays, noise_std=std
            )
            p[f"peak_snr_{key}"] = float((signal / std).max())
            images.append((counts / (rate * t)).astype(np.float32))
        return images
