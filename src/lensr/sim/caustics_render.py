"""A batched simulation path on caustics (PyTorch lensing), for GPUs and streaming training.

The scenes are lenstronomy's: :meth:`lensr.sim.render.Renderer.draw` draws every parameter
(the same random streams), so image ``i`` of seed ``S`` is the same lens here and there.
Only the sky is computed differently: caustics' functional SIE, external shear, point-mass
deflections and Sersic light, batched over images, every pixel at ``supersampling`` x
``supersampling`` rays (no adaptive mode). The instrument is :mod:`lensr.instrument`'s
(per-image PSF kernels through :class:`~lensr.instrument.operators.Degradation`, the torch
block mean, and the noise model through ``Renderer.observe`` on the CPU, with the same
random streams as the lenstronomy path).

Conventions, checked against lenstronomy 1.14.2 (tests/sim/test_caustics.py):
* SIE: caustics ``Rein`` is lenstronomy's ``theta_E`` (both put kappa = sqrt(q) theta_E /
  (2 sqrt(q^2 x'^2 + y'^2)) with x' on the major axis); ``q, phi`` from lenstronomy's
  ``e1, e2`` by its own ``ellipticity2phi_q``; caustics rotates by phi as lenstronomy does.
* Shear: caustics ``gamma_1, gamma_2`` about (x0, y0) are lenstronomy's ``gamma1, gamma2``
  about (ra_0, dec_0).
* Sersic: lenstronomy's ``R_sersic`` is the product-average radius sqrt(a b), caustics'
  ``Re`` the semi-major one: Re = R_sersic / sqrt(q); ``Ie`` = lenstronomy's ``amp``;
  ``k`` = lenstronomy's b_n (caustics' ``k_lenstronomy``).
* Pixels: the ray positions are lenstronomy's pixel centres (``ImageData``) and its
  sub-pixel offsets ((k + 1/2)/s - 1/2 pixels).
caustics is an optional dependency (``pip install lensr[gpu]``), imported on first use.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

import numpy as np
import torch
from lenstronomy.Util import param_util

from lensr.errors import LensrError
from lensr.instrument.operators import Degradation, block_mean_torch
from lensr.instrument.psf import band_kernel, pad_kernels
from lensr.sim.config import SimConfig
from lensr.sim.render import Renderer, Sample, image_rng
from lensr.sim.substructure import point_mass_table

_FAR = 1.0e6  # arcsec: where padding point masses (theta_E 0) sit, away from every ray
_CHUNK_ELEMENTS = {"cpu": 2**20, "cuda": 2**26}
"""Rays x images x point masses evaluated at once: cache-sized on a CPU, large on a GPU."""


def _caustics_func():
    try:
        import caustics.func as cf
        from caustics.light.func.sersic import k_lenstronomy
    except ImportError:  # pragma: no cover - depends on the environment
        raise LensrError(
            "engine caustics needs the caustics package: pip install 'lensr[gpu]' (caustics==1.7.1)"
        ) from None
    return cf, k_lenstronomy


def _sersic_rows(kwargs_list: list[dict]) -> list[list[float]]:
    """(x0, y0, q, phi, n, Re, Ie) per Sersic component, in caustics' conventions."""
    rows = []
    for kw in kwargs_list:
        if "image" in kw:
            raise LensrError("engine caustics renders Sersic sources only, not templates")
        phi, q = param_util.ellipticity2phi_q(kw["e1"], kw["e2"])
        re = kw["R_sersic"] / np.sqrt(q)
        rows.append([kw["center_x"], kw["center_y"], q, phi, kw["n_sersic"], re, kw["amp"]])
    return rows


def _padded(rows: list[list[list[float]]], width: int, pad: list[float]) -> np.ndarray:
    """(B, max count, width) table of per-image rows, short images padded with ``pad``."""
    n = max(1, max(len(r) for r in rows))
    out = np.tile(np.asarray(pad, dtype=np.float64), (len(rows), n, 1))
    for b, r in enumerate(rows):
        if len(r):
            out[b, : len(r)] = np.asarray(r, dtype=np.float64).reshape(-1, width)
    return out


class RenderedBatch(NamedTuple):
    """One batch: float32 (B, 1, H, W) images, (B, 1, H/s, W/s) LR, int64 (B,) labels."""

    hr: torch.Tensor
    lr: torch.Tensor
    hr_clean: torch.Tensor
    labels: torch.Tensor


class CausticsRenderer:
    """Batched renders of a :class:`SimConfig` on ``device`` with caustics."""

    def __init__(self, cfg: SimConfig, device: str | torch.device = "cpu", dtype=None):
        self.cfg = cfg
        self.renderer = Renderer(cfg)
        if cfg.cdm.profile != "point_mass":
            raise LensrError("engine caustics renders point-mass subhalos only (cdm.profile)")
        self.device = torch.device(device)
        self.dtype = dtype or (torch.float32 if self.device.type == "cuda" else torch.float64)
        # A mixture prior: one renderer per variant, as Renderer has.
        self.parts = [CausticsRenderer(r.cfg, device, dtype) for r in self.renderer.variants]
        s, d = cfg.supersampling, cfg.hr_pixel_scale
        ra, dec = self.renderer.data.pixel_coordinates
        sub = ((np.arange(s) + 0.5) / s - 0.5) * d
        fine_x = (ra[0][:, None] + sub[None, :]).ravel()
        fine_y = (dec[:, 0][:, None] + sub[None, :]).ravel()
        gy, gx = np.meshgrid(fine_y, fine_x, indexing="ij")
        self.x = torch.as_tensor(gx, dtype=self.dtype, device=self.device)
        self.y = torch.as_tensor(gy, dtype=self.dtype, device=self.device)

    def _t(self, a) -> torch.Tensor:
        return torch.as_tensor(np.asarray(a, dtype=np.float64), device=self.device).to(self.dtype)

    def draw(self, seed: int, indices):
        """The scenes of images ``indices``: (labels, params, subhalo tables, lenstronomy
        kwargs) per image, as the lenstronomy path draws them."""
        return [self.renderer.draw(seed, int(i)) for i in indices]

    def sky(self, scenes) -> torch.Tensor:
        """PSF-free surface brightness (B, H, W) on the HR grid, as ``Renderer.sky``."""
        cf, k_lenstronomy = _caustics_func()
        lens, shear, points, sources, lights = [], [], [], [], []
        for _, _, table, kwargs_lens, kwargs_source, kwargs_lens_light in scenes:
            sie, sh = kwargs_lens[0], kwargs_lens[1]
            phi, q = param_util.ellipticity2phi_q(sie["e1"], sie["e2"])
            lens.append([sie["center_x"], sie["center_y"], q, phi, sie["theta_E"]])
            shear.append([sh["ra_0"], sh["dec_0"], sh["gamma1"], sh["gamma2"]])
            points.append(point_mass_table(table, self.renderer.lens_cosmo).tolist())
            sources.append(_sersic_rows(kwargs_source))
            lights.append(_sersic_rows(kwargs_lens_light or []))
        x, y = self.x, self.y

        def col(table, k):  # (B, 1, 1) column k of a (B, width) table
            return self._t(np.asarray(table)[:, k])[:, None, None]

        ax, ay = cf.reduced_deflection_angle_sie(*(col(lens, k) for k in range(5)), x, y)
        sx, sy = cf.reduced_deflection_angle_external_shear(
            *(col(shear, k) for k in range(4)), x, y
        )
        ax, ay = ax + sx, ay + sy
        pts = self._t(_padded(points, 3, [_FAR, _FAR, 0.0]))  # (B, M, 3)
        budget = _CHUNK_ELEMENTS.get(self.device.type, _CHUNK_ELEMENTS["cuda"])
        chunk = max(1, budget // (x.numel() * len(scenes)))
        for start in range(0, pts.shape[1], chunk):
            p = pts[:, start : start + chunk, :, None, None]  # (B, m, 3, 1, 1)
            px, py = cf.reduced_deflection_angle_point(p[:, :, 0], p[:, :, 1], p[:, :, 2], x, y)
            ax, ay = ax + px.sum(1), ay + py.sum(1)
        flux = self._sersic_sum(cf, k_lenstronomy, sources, x - ax, y - ay)
        if any(lights):
            flux = flux + self._sersic_sum(cf, k_lenstronomy, lights, x, y)
        return block_mean_torch(flux[:, None], self.cfg.supersampling)[:, 0]

    def _sersic_sum(self, cf, k_fn, rows, x, y) -> torch.Tensor:
        table = self._t(_padded(rows, 7, [0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0]))  # (B, C, 7)
        flux = 0.0
        for c in range(table.shape[1]):
            x0, y0, q, phi, n, re, ie = (table[:, c, k, None, None] for k in range(7))
            flux = flux + cf.brightness_sersic(x0, y0, q, phi, n, re, ie, x, y, k_fn(n))
        return flux

    def clean(self, scenes) -> tuple[torch.Tensor, torch.Tensor]:
        """Noise-free HR (B, H, W) and LR (B, H/s, W/s), the instrument's PSFs applied."""
        cfg = self.cfg
        sky = self.sky(scenes)[:, None]
        kernels = {}
        for band, kind in (("hr", cfg.hr.psf.type), ("lr", cfg.lr.psf.type)):
            ks = [
                band_kernel(sc[1], band, kind=kind, pixel_scale=cfg.hr_pixel_scale) for sc in scenes
            ]
            kernels[band] = pad_kernels(ks)
        # FFT round-off leaves ~1e-13 negatives in empty sky; flux is never negative.
        hr = Degradation(kernels=kernels["hr"], scale=1).blur(sky).clamp_min(0.0)
        lr = Degradation(kernels=kernels["lr"], scale=1).blur(sky).clamp_min(0.0)
        return hr[:, 0], block_mean_torch(lr, cfg.scale)[:, 0]

    def _variant_of(self, seed: int, index: int) -> int:
        """The variant image ``index`` is drawn from: Renderer.render's choice."""
        rng = image_rng(seed, index, 4)
        return int(rng.choice(len(self.parts), p=self.renderer.variant_weights))

    def samples(self, seed: int, indices) -> list[Sample]:
        """Images ``indices`` as :class:`Sample` (numpy), noise by ``Renderer.observe``."""
        if self.parts:  # each variant renders its images as one batch
            which = [self._variant_of(seed, int(i)) for i in indices]
            out: list = [None] * len(which)
            for k in sorted(set(which)):
                pos = [j for j, w in enumerate(which) if w == k]
                rendered = self.parts[k].samples(seed, [indices[j] for j in pos])
                for j, sample in zip(pos, rendered, strict=True):
                    out[j] = sample
            return out
        scenes = self.draw(seed, indices)
        with torch.no_grad():
            hr_clean, lr_clean = self.clean(scenes)
        hr_np = hr_clean.double().cpu().numpy()
        lr_np = lr_clean.double().cpu().numpy()
        out = []
        for b, (i, (label, p, table, *_)) in enumerate(zip(indices, scenes, strict=True)):
            hr, lr = self.renderer.observe(image_rng(seed, int(i), 3), hr_np[b], lr_np[b], p)
            out.append(
                Sample(
                    hr=hr,
                    lr=lr,
                    hr_clean=hr_np[b].astype(np.float32),
                    lr_clean=lr_np[b].astype(np.float32),
                    label=label,
                    params=p,
                    subhalos=table,
                )
            )
        return out

    def render_batch(self, seed: int, indices) -> RenderedBatch:
        """(hr, lr, hr_clean, labels) for images ``indices``: float32 (B, 1, H, W) images
        and int64 labels on ``self.device``."""
        samples = self.samples(seed, indices)

        def stack(key):
            arr = np.stack([getattr(s, key) for s in samples])[:, None]
            return torch.from_numpy(arr).to(self.device)

        labels = torch.tensor([s.label for s in samples], dtype=torch.int64, device=self.device)
        return RenderedBatch(stack("hr"), stack("lr"), stack("hr_clean"), labels)


@lru_cache(maxsize=4)
def _cached(config_json: str, device: str) -> CausticsRenderer:
    return CausticsRenderer(SimConfig.model_validate_json(config_json), device)


def render_batch(
    cfg: SimConfig, seed: int, indices, device: str | torch.device = "cpu"
) -> RenderedBatch:
    """(hr, lr, hr_clean, labels) torch tensors on ``device`` for images ``indices`` of a
    dataset made with ``seed``: the lenstronomy path's scenes, rendered with caustics
    (a named tuple: ``batch.hr`` or ``hr, lr, hr_clean, labels = batch``).

    Example::

        hr, lr, hr_clean, labels = render_batch(load_sim_config("sim"), 0, range(64), "cuda")
    """
    return _cached(cfg.model_dump_json(), str(device)).render_batch(seed, list(indices))


__all__ = ["CausticsRenderer", "RenderedBatch", "render_batch"]
