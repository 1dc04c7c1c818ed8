"""Sources that are not one Sersic: extra Sersic components, star-forming clumps, and
galaxy images used as templates (lenstronomy's INTERPOL profile).

Everything here draws from its own random stream (``image_rng(seed, index, 5)``), so a
preset that switches none of it on renders exactly as before. Magnitudes use the preset's
``flux_zero_point``: a component of magnitude m carries a total flux of
``10**(-0.4 (m - flux_zero_point))`` (the same convention as the main source).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
from lenstronomy.LightModel.light_model import LightModel
from lenstronomy.Util import param_util

from lensr.data.image_files import image_files, read_image
from lensr.errors import LensrError
from lensr.sim.config import Source

_SERSIC = "SERSIC_ELLIPSE"


def light_names(kwargs_list: list[dict]) -> list[str]:
    """lenstronomy profile names of a source's kwargs list (INTERPOL kwargs hold an image)."""
    return ["INTERPOL" if "image" in kw else _SERSIC for kw in kwargs_list]


def is_single_sersic(kwargs_list: list[dict]) -> bool:
    return len(kwargs_list) == 1 and "image" not in kwargs_list[0]


def _flux(magnitude: float, zero_point: float) -> float:
    return 10.0 ** (-0.4 * (magnitude - zero_point))


def _sersic_amp(kwargs: dict, magnitude: float, zero_point: float) -> float:
    unit = LightModel([_SERSIC]).total_flux([{**kwargs, "amp": 1.0}])[0]
    return _flux(magnitude, zero_point) / unit


@lru_cache(maxsize=8)
def load_templates(folder: str) -> tuple[np.ndarray, ...]:
    """Every cutout of ``folder`` as a float64 image with its median (sky) removed, its
    negatives clipped and unit sum; at least one is required."""
    path = Path(folder)
    if not path.is_dir():
        raise LensrError(f"source.templates: {folder} is not a folder of .npy/FITS cutouts")
    out = []
    for f in image_files(path):
        img = np.asarray(read_image(f), dtype=np.float64)
        img = img.reshape(img.shape[-2:]) if img.ndim > 2 and img.shape[0] == 1 else img
        if img.ndim != 2 or min(img.shape) < 8:
            raise LensrError(f"source template {f}: expected a 2-D image of at least 8x8 pixels")
        img = np.clip(img - np.median(img), 0.0, None)
        if img.sum() <= 0:
            raise LensrError(f"source template {f}: nothing above its median (empty image?)")
        out.append(img / img.sum())
    if not out:
        raise LensrError(f"source.templates: {folder} holds no .npy or FITS image")
    return tuple(out)


def template_source(rng, src: Source, p: dict, zero_point: float) -> dict:
    """INTERPOL kwargs for a random template at the main source's centre and magnitude."""
    images = load_templates(str(src.templates))
    img = images[int(rng.integers(len(images)))]
    width = float(rng.uniform(*src.template_size))
    scale = width / max(img.shape)
    amp = _flux(p["source_mag"], zero_point) / (img.sum() * scale**2)
    return {
        "image": img,
        "amp": amp,
        "center_x": p["source_x"],
        "center_y": p["source_y"],
        "phi_G": float(rng.uniform(0, 2 * np.pi)),
        "scale": scale,
    }


def _count(rng, bounds) -> int:
    return int(rng.integers(round(bounds[0]), round(bounds[1]) + 1))


def source_components(rng, src: Source, p: dict, main: dict, zero_point: float) -> list[dict]:
    """The source's kwargs list: ``main`` (or a template in its place), then the extra
    Sersic components and the clumps that ``src`` asks for."""
    first = main
    if src.templates and src.template_probability > 0 and rng.random() < src.template_probability:
        first = template_source(rng, src, p, zero_point)
    out = [first]
    r0, (x0, y0) = p["source_r"], (p["source_x"], p["source_y"])
    for _ in range(_count(rng, src.components) - 1):
        e1, e2 = param_util.phi_q2_ellipticity(rng.uniform(0, np.pi), rng.uniform(*src.q))
        radius, angle = rng.uniform(0, src.r_sersic[1]), rng.uniform(0, 2 * np.pi)
        kw = {
            "R_sersic": r0 * float(rng.uniform(0.3, 1.0)),
            "n_sersic": float(rng.uniform(*src.n_sersic)),
            "e1": e1,
            "e2": e2,
            "center_x": x0 + radius * np.cos(angle),
            "center_y": y0 + radius * np.sin(angle),
        }
        kw["amp"] = _sersic_amp(kw, p["source_mag"] + rng.uniform(0.5, 2.5), zero_point)
        out.append(kw)
    for _ in range(_count(rng, src.clumps)):
        radius, angle = rng.uniform(0, 1.5 * r0), rng.uniform(0, 2 * np.pi)
        kw = {
            "R_sersic": float(rng.uniform(0.02, 0.08)),
            "n_sersic": 1.0,
            "e1": 0.0,
            "e2": 0.0,
            "center_x": x0 + radius * np.cos(angle),
            "center_y": y0 + radius * np.sin(angle),
        }
        kw["amp"] = _sersic_amp(kw, p["source_mag"] + rng.uniform(1.5, 4.0), zero_point)
        out.append(kw)
    return out
