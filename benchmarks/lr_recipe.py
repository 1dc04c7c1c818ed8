"""How far each way of making the noise-free LR image is from the LR sky rendered directly.

    python benchmarks/lr_recipe.py              # 8 lenses of the default (sim-like) config
    python benchmarks/lr_recipe.py --n 20 --supersampling 3

Reference: lenstronomy renders the LR grid itself, 6x supersampled, with its own Gaussian
PSF convolution (as tests/sim/test_physics.py). Compared, as relative L2 errors:

* lensr's recipe: the sky ray-traced on the HR grid, the LR PSF applied there, then the
  s x s block mean (what the simulator does);
* naive binning: the s x s block mean of the noise-free HR image (HR PSF, not LR);
* bicubic resizing: the noise-free HR image downsized by 1/s with bicubic interpolation
  (``torch.nn.functional.interpolate``, ``align_corners=False``, with and without
  antialiasing).

Prints one row per lens, the range and the median; the README's numbers (``--n 20``: naive
3-18 %, median 10 %; bicubic 4-26 %, median 14 %) are these rows.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from lenstronomy.Data.imaging_data import ImageData  # noqa: E402
from lenstronomy.Data.psf import PSF  # noqa: E402
from lenstronomy.ImSim.image_model import ImageModel  # noqa: E402
from lenstronomy.LensModel.lens_model import LensModel  # noqa: E402
from lenstronomy.Util import simulation_util  # noqa: E402

from lensr.instrument.binning import block_mean  # noqa: E402
from lensr.sim.config import SimConfig  # noqa: E402
from lensr.sim.render import Renderer  # noqa: E402


def direct_lr(cfg: SimConfig, renderer: Renderer, index: int, seed: int) -> np.ndarray:
    """The LR sky rendered by lenstronomy on the LR grid (6x supersampled, Gaussian PSF)."""
    _, _, _, kwargs_lens, kwargs_source, _ = renderer.draw(seed=seed, index=index)
    data = ImageData(**simulation_util.data_configure_simple(cfg.lr_size, cfg.lr_pixel_scale))
    model = ImageModel(
        data,
        PSF(psf_type="GAUSSIAN", fwhm=cfg.lr.psf.fwhm[0], truncation=6),
        lens_model_class=LensModel(["SIE", "SHEAR"]),
        source_model_class=renderer.source_model,
        kwargs_numerics={"supersampling_factor": 6, "supersampling_convolution": True},
    )
    return model.image(kwargs_lens, kwargs_source) / cfg.lr_pixel_scale**2


def bicubic_down(hr: np.ndarray, scale: int, antialias: bool) -> np.ndarray:
    t = torch.from_numpy(np.asarray(hr, dtype=np.float64))[None, None]
    out = torch.nn.functional.interpolate(
        t, scale_factor=1 / scale, mode="bicubic", align_corners=False, antialias=antialias
    )
    return out[0, 0].numpy()


def errors(cfg: SimConfig, index: int, seed: int = 3) -> dict[str, float]:
    """Relative L2 errors of each LR recipe for lens ``index`` (class ``none``)."""
    renderer = Renderer(cfg)
    s = renderer.render(seed=seed, index=index)
    ref = direct_lr(cfg, renderer, index, seed)

    def rel(x):
        return float(np.linalg.norm(x - ref) / np.linalg.norm(ref))

    return {
        "lensr": rel(s.lr_clean),
        "naive": rel(block_mean(s.hr_clean, cfg.scale)),
        "bicubic": rel(bicubic_down(s.hr_clean, cfg.scale, antialias=False)),
        "bicubic_aa": rel(bicubic_down(s.hr_clean, cfg.scale, antialias=True)),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="lenses")
    parser.add_argument("--supersampling", type=int, default=3)
    args = parser.parse_args()
    cfg = SimConfig(classes=["none"], supersampling=args.supersampling)
    rows = [errors(cfg, i) for i in range(args.n)]
    keys = list(rows[0])
    print(f'{cfg.hr_size} px HR at {cfg.hr_pixel_scale}", x{cfg.scale}; relative L2 vs direct LR')
    print("lens  " + "  ".join(f"{k:>10}" for k in keys))
    for i, r in enumerate(rows):
        print(f"{i:4d}  " + "  ".join(f"{100 * r[k]:9.2f}%" for k in keys))
    lo = {k: min(r[k] for r in rows) for k in keys}
    hi = {k: max(r[k] for r in rows) for k in keys}
    print("range " + "  ".join(f"{100 * lo[k]:4.1f}-{100 * hi[k]:4.1f}%" for k in keys))
    med = {k: float(np.median([r[k] for r in rows])) for k in keys}
    print("median" + "  ".join(f"{100 * med[k]:9.2f}%" for k in keys))


if __name__ == "__main__":
    main()
