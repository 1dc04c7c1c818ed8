"""The DeepLenseSim presets (Models I-III), the keys they need, and mass compensation.

DeepLenseSim values are written out here from its code (mwt5345/DeepLenseSim,
deeplense/lens.py), so a preset that drifts from them fails.
"""

import hashlib

import numpy as np
import pytest
from astropy import constants, units
from astropy.cosmology import FlatLambdaCDM
from lenstronomy.LightModel.light_model import LightModel
from lenstronomy.Util import param_util

from lensr.errors import LensrError
from lensr.sim.config import SimConfig, load_sim_config, preset_names
from lensr.sim.cosmology import lens_cosmo, point_mass_theta_e
from lensr.sim.render import Renderer

MODELS = ("deeplense-1", "deeplense-2", "deeplense-3")
# (hr_size, hr pixel, HR PSF FWHM, noise on) per model: simple_sim (I), Euclid VIS (II),
# HST WFC3/F160W (III).
INSTRUMENTS = {
    "deeplense-1": (150, 0.05, 0.087, True),
    "deeplense-2": (64, 0.101, 0.16, False),
    "deeplense-3": (64, 0.08, 0.08, False),
}


@pytest.mark.parametrize("name", MODELS)
def test_preset_loads_and_mirrors_deeplensesim(name):
    assert name in preset_names()
    cfg = load_sim_config(name)
    assert cfg.name == name and cfg.classes == ["none", "cdm", "axion"]
    renderer = Renderer(cfg)
    _, p, _, kwargs_lens, sources, light = renderer.draw(seed=0, index=0)
    # kwargs_lens_main e1 0.1, e2 0, centre 0; kwargs_shear gamma1 0.05, gamma2 0.
    main, shear = kwargs_lens
    assert (main["e1"], main["e2"]) == pytest.approx((0.1, 0.0), abs=1e-12)
    assert (main["center_x"], main["center_y"]) == (0.0, 0.0)
    assert (shear["gamma1"], shear["gamma2"]) == pytest.approx((0.05, 0.0), abs=1e-12)
    # make_source_light(_mag): R 0.25, n 1, e1 -0.1, e2 0.1, centre U(-0.35, 0.35).
    (src,) = sources
    assert (src["R_sersic"], src["n_sersic"]) == (0.25, 1.0)
    assert (src["e1"], src["e2"]) == pytest.approx((-0.1, 0.1), abs=1e-12)
    assert cfg.source.center == (-0.35, 0.35) and light is None
    # make_old_cdm: 25 point masses 1e6..1e10, beta -0.9, r U(0.25, 2.0).
    c = cfg.cdm
    assert (c.count, c.n_mean, c.mass, c.slope, c.radius, c.profile) == (
        "fixed",
        25.0,
        (1e6, 1e10),
        -0.9,
        (0.25, 2.0),
        "point_mass",
    )
    # make_vortex(3e10), res 100, m_a = 10^U(-24, -22), half-length 0.06 / (2 m) * 1e-22.
    a = cfg.axion
    assert (a.total_mass, a.n_points, a.log10_mass_ev) == (3e10, 100, (-24.0, -22.0))
    assert a.length_coeff * 1e-22 / 1e-23 == pytest.approx(0.06 / (2 * 1e-23) * 1e-22)
    size, pixel, fwhm, noisy = INSTRUMENTS[name]
    assert (cfg.hr_size, cfg.hr_pixel_scale, cfg.hr.psf.type) == (size, pixel, "gaussian")
    assert cfg.hr.psf.fwhm == (fwhm, fwhm) and cfg.noise.enabled is noisy
    assert cfg.lr_pixel_scale == pytest.approx(2 * pixel) and not cfg.mass_compensation


def test_theta_e_is_the_einstein_radius_of_a_1e12_msun_halo():
    # theta_E = sqrt(4 G M / c^2 D_ls / (D_l D_s)) with angular-diameter distances.
    cosmo = FlatLambdaCDM(H0=70, Om0=0.3)
    d_l, d_s = cosmo.angular_diameter_distance(0.5), cosmo.angular_diameter_distance(1.0)
    d_ls = cosmo.angular_diameter_distance(0.5, 1.0)
    mass = 1e12 * constants.M_sun
    theta = np.sqrt(4 * constants.G * mass / constants.c**2 * d_ls / (d_l * d_s)).decompose()
    expected = float(theta) * (1 * units.rad).to_value(units.arcsec)
    assert expected == pytest.approx(1.6645, abs=1e-4)
    # lensr (lenstronomy's LensCosmo) uses M_sun 1.9891e30 kg, astropy 1.98841e30: +1.4e-4.
    lensr_value = float(point_mass_theta_e(1e12, lens_cosmo(0.5, 1.0)))
    assert lensr_value == pytest.approx(expected, rel=2e-4)
    for name in MODELS:
        assert load_sim_config(name).lens.theta_e == pytest.approx((lensr_value,) * 2, 1e-5)


def test_model_i_amp_20_is_the_preset_magnitude():
    # Model I's source has amp 20 (e-/s per arcsec^2 at R_sersic); with zero point 25 the
    # preset's magnitude must give the same total flux in e-/s.
    cfg = load_sim_config("deeplense-1")
    assert cfg.hr.zero_point == cfg.flux_zero_point == 25.0
    kwargs = {"R_sersic": 0.25, "n_sersic": 1, "e1": -0.1, "e2": 0.1}
    flux = LightModel(["SERSIC_ELLIPSE"]).total_flux([{**kwargs, "amp": 20.0}])[0]
    assert 10 ** (-0.4 * (cfg.source.magnitude[0] - 25.0)) == pytest.approx(flux, 1e-6)
    for name in ("deeplense-2", "deeplense-3"):  # make_source_light_mag: magnitude 20
        assert load_sim_config(name).source.magnitude == (20.0, 20.0)


def test_fixed_count_gives_exactly_25_subhalos_and_poisson_varies():
    fixed = Renderer(load_sim_config("deeplense-2"))
    counts = {fixed.draw(seed=1, index=i, label=1)[1]["n_sub"] for i in range(30)}
    assert counts == {25.0}
    cfg = load_sim_config("deeplense-2")
    cfg.cdm.count = "poisson"
    poisson = Renderer(cfg)
    assert len({poisson.draw(seed=1, index=i, label=1)[1]["n_sub"] for i in range(30)}) > 3


@pytest.mark.parametrize("name", ["deeplense-2", "deeplense-3"])
def test_noise_switch(name):
    cfg = load_sim_config(name)
    off = Renderer(cfg).render(seed=2, index=1)
    assert np.array_equal(off.hr, off.hr_clean) and np.array_equal(off.lr, off.lr_clean)
    assert off.params["lr_exposure"] == cfg.lr.exposure_time
    assert np.isinf(off.params["peak_snr_hr"]) and np.isinf(off.params["peak_snr_lr"])
    cfg.noise.enabled = True
    on = Renderer(cfg).render(seed=2, index=1)
    assert np.array_equal(on.hr_clean, off.hr_clean) and not np.array_equal(on.hr, on.hr_clean)
    assert 0 < on.params["peak_snr_hr"] < np.inf


def test_noise_free_dataset_is_summarised_as_noise_free(tmp_path):
    """A noise-free preset has no S/N: inspect says so instead of reporting S/N 0."""
    import json

    from lensr.data.inspect import summarize
    from lensr.data.store import open_dataset
    from lensr.sim.run import simulate

    cfg = load_sim_config("deeplense-3")
    simulate(cfg, n=3, seed=0, out=tmp_path / "d.h5", workers=1, progress=False)
    with open_dataset(tmp_path / "d.h5") as ds:
        summary = summarize(ds)
    assert summary["snr"] == {"how": "noise-free", "hr": None, "lr": None}
    json.dumps(summary, allow_nan=False)  # strict JSON: no Infinity


def test_model_i_noise_is_deeplense_background_and_exposure():
    cfg = load_sim_config("deeplense-1")
    renderer = Renderer(cfg)
    stds, exposures = [], []
    for i in range(6):
        s = renderer.render(seed=3, index=i)
        exposures.append(s.params["hr_exposure"])
        corner = (s.hr - s.hr_clean)[:20, :20]  # empty sky: background only
        stds.append(corner.std())
    assert all(1e3 <= t <= 10**3.5 for t in exposures) and len(set(exposures)) == 6
    # background_rms 0.01 e-/s per 0.05" pixel = 4 e-/s per arcsec^2 = 4 pixel units.
    assert np.mean(stds) == pytest.approx(0.01 / cfg.hr_pixel_scale**2, rel=0.05)


def ring_radius(image: np.ndarray, pixel_scale: float) -> float:
    """Flux-weighted mean distance of the light from the lens centre, in arcsec."""
    n = image.shape[0]
    y, x = np.mgrid[:n, :n]
    r = np.hypot(x - (n - 1) / 2, y - (n - 1) / 2) * pixel_scale
    return float((image * r).sum() / image.sum())


def ring_shift(cfg: SimConfig, label: int, n: int = 100) -> float:
    """Mean ring-radius change of ``label`` vs the same lens and source without
    substructure (same seed and index: macro and source draws are shared)."""
    renderer = Renderer(cfg)

    def radius(index, lab):
        return ring_radius(renderer.render(11, index, label=lab).hr_clean, cfg.hr_pixel_scale)

    return float(np.mean([radius(i, label) - radius(i, 0) for i in range(n)]))


@pytest.mark.parametrize("label", [1, 2], ids=["cdm", "axion"])
def test_mass_compensation_keeps_the_ring_radius(label):
    cfg = load_sim_config("deeplense-2")
    # Measured over 200 pairs: +0.046" (cdm and axion) without, -0.004" / +0.001" with.
    assert ring_shift(cfg, label) > 0.03
    cfg.mass_compensation = True
    assert abs(ring_shift(cfg, label)) < 0.01


def test_mass_compensation_leaves_none_alone_and_lowers_theta_e():
    cfg = load_sim_config("deeplense-2").model_copy(update={"mass_compensation": True})
    renderer = Renderer(cfg)
    assert renderer.draw(seed=0, index=0, label=0)[1]["theta_e"] == cfg.lens.theta_e[0]
    assert renderer.draw(seed=0, index=0, label=2)[1]["theta_e"] < cfg.lens.theta_e[0]


# sha256 (first 32 hex) of hr, lr, hr_clean, lr_clean of images 0-2 (none, cdm, axion) with
# seed 7, rendered by the code before the DeepLense keys existed (commit c175ba1).
BEFORE = {
    "sim": "ea108e0fd552e427ed5353ee91030f2c",
    "ground": "7c54172c6cefc18ab30dde05661643d1",
    "observed": "bd276cc84d28b03e1f557674901d487e",
    "classify": "2124a745e1fe63d5280897c83f194dc0",
}


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_existing_presets_render_the_same_bytes(name):
    renderer = Renderer(load_sim_config(name))
    digest = hashlib.sha256()
    for index in range(3):
        s = renderer.render(seed=7, index=index)
        for image in (s.hr, s.lr, s.hr_clean, s.lr_clean):
            digest.update(np.ascontiguousarray(image).tobytes())
    assert digest.hexdigest()[:32] == BEFORE[name]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cdm": {"count": "fixed", "n_mean": 2.5}}, "'cdm': count fixed needs a whole n_mean"),
        ({"noise": {"snr": 40, "log10_exposure": [3, 3.5]}}, "set snr or log10_exposure"),
        ({"hr": {"background_rms": -1}}, "hr.background_rms"),
        ({"lens": {"phi": [1.0, 0.5]}}, "lens.phi"),
    ],
)
def test_bad_new_keys_are_one_line_errors(tmp_path, change, message):
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({"name": "bad", **change}))
    with pytest.raises(LensrError) as err:
        load_sim_config(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_ellipticity_angles_round_trip():
    # The presets' phi/q are DeepLenseSim's e1/e2 written as angles.
    for e1, e2 in ((0.1, 0.0), (-0.1, 0.1)):
        phi, q = param_util.ellipticity2phi_q(e1, e2)
        assert param_util.phi_q2_ellipticity(phi, q) == pytest.approx((e1, e2), abs=1e-15)
