"""Wide priors: mixture variants of a preset, multi-component sources, clumps, templates."""

import numpy as np
import pytest
from lenstronomy.LightModel.light_model import LightModel

from lensr.errors import LensrError
from lensr.sim.config import Variant, load_sim_config, variant_configs
from lensr.sim.render import Renderer


@pytest.fixture
def small():
    return load_sim_config("classify").model_copy(update={"hr_size": 32})


def with_source(cfg, **kw):
    return cfg.model_copy(update={"source": cfg.source.model_copy(update=kw)})


def test_extra_components_leave_every_other_draw_alone(small):
    rich = with_source(small, components=(3, 3), clumps=(2, 2))
    _, p0, _, _, src0, _ = Renderer(small).draw(0, 4)
    _, p1, _, _, src1, _ = Renderer(rich).draw(0, 4)
    assert p0 == p1 and src1[0] == src0[0] and len(src1) == 5
    a, b = Renderer(small).render(0, 4), Renderer(rich).render(0, 4)
    assert b.hr_clean.sum() > a.hr_clean.sum()


def test_templates_carry_the_source_magnitude(small, tmp_path):
    y, x = np.mgrid[:24, :24] - 12
    for k, width in enumerate((2.0, 4.0)):
        np.save(tmp_path / f"g{k}.npy", np.exp(-(x**2 + (y / 2) ** 2) / width**2))
    cfg = with_source(small, templates=str(tmp_path), template_probability=1.0)
    _, p, _, _, src, _ = Renderer(cfg).draw(0, 1)
    assert "image" in src[0]
    flux = LightModel(["INTERPOL"]).total_flux([src[0]])[0]
    assert flux == pytest.approx(10 ** (-0.4 * (p["source_mag"] - cfg.flux_zero_point)), 1e-6)
    assert Renderer(cfg).render(0, 1).hr_clean.max() > 0
    with pytest.raises(LensrError, match="not a folder"):
        Renderer(
            with_source(small, templates=str(tmp_path / "no"), template_probability=1.0)
        ).render(0, 1)


def test_variants_mix_by_weight(small):
    ground = {"hr_pixel_scale": 0.1, "lr": {"psf": {"fwhm": [0.7, 0.9]}}}
    cfg = small.model_copy(
        update={
            "variants": [
                Variant(name="space", weight=3),
                Variant(name="ground", weight=1, overrides=ground),
            ]
        }
    )
    parts = variant_configs(cfg)
    assert [c.hr_pixel_scale for c, _ in parts] == [small.hr_pixel_scale, 0.1]
    r = Renderer(cfg)
    fwhm = np.array([r.render(0, i).params["lr_fwhm"] for i in range(40)])
    assert 0.1 < np.mean(fwhm >= 0.7) < 0.45  # ~1/4 ground
    bad = small.model_copy(update={"variants": [Variant(overrides={"hr_size": 64})]})
    with pytest.raises(LensrError, match="may not change hr_size"):
        variant_configs(bad)


def test_generalist_and_hsc_hst_presets_render():
    for name in ("generalist", "hsc-hst"):
        cfg = load_sim_config(name).model_copy(update={"hr_size": 32})
        s = Renderer(cfg).render(0, 0)
        assert s.lr.shape == (16, 16) and np.isfinite(s.hr).all()
    assert load_sim_config("hsc-hst").lr_pixel_scale == pytest.approx(0.168)
