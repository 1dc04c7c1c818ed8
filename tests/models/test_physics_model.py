"""PhysicsSR: shapes, the lens operator and its adjoint, lenstronomy agreement, inversion."""

import numpy as np
import pytest
import torch
from lenstronomy.Data.imaging_data import ImageData
from lenstronomy.Data.psf import PSF
from lenstronomy.ImSim.image_model import ImageModel
from lenstronomy.LensModel.lens_model import LensModel
from lenstronomy.LightModel.light_model import LightModel
from lenstronomy.Util import simulation_util
from torch.nn import functional as F

from lensr.eval.metrics import psnr
from lensr.infer.arrays import upscale_array
from lensr.instrument.operators import GaussianInstrument
from lensr.models import create_model, list_models
from lensr.models.checkpoint import load_checkpoint, save_checkpoint
from lensr.models.lens_geometry import (
    LensOperator,
    pixel_grid,
    shear_deflection,
    sie_deflection,
    source_shape,
)
from lensr.models.physics import PhysicsSR
from lensr.models.source_inversion import reconstruct_source

N_PIX, PIXEL = 100, 0.05  # HR grid: 5" field
THETA_E = 1.0  # arcsec
SOURCE = {"amp": 10.0, "sigma": 0.12, "center_x": 0.15, "center_y": -0.08}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def t(value) -> torch.Tensor:
    return torch.tensor(float(value))


def test_registered_as_sr_models():
    names = [i.name for i in list_models("sr")]
    assert "physics" in names and "physics-tiny" in names
    model = create_model("physics-tiny")
    assert isinstance(model, PhysicsSR) and model.arch == "physics-tiny" and model.scale == 2
    assert type(model)(**model.config).config == model.config


@pytest.mark.parametrize(
    ("scale", "size"), [(2, (75, 75)), (2, (37, 37)), (4, (37, 21)), (4, (20, 20))]
)
def test_forward_shapes(scale, size):
    torch.manual_seed(0)
    model = create_model("physics-tiny", scale=scale).eval()
    with torch.no_grad():
        out = model(torch.rand(2, 1, *size))
    assert out.shape == (2, 1, scale * size[0], scale * size[1])
    assert torch.isfinite(out).all()


def test_lens_operator_adjoint_is_exact():
    gen = torch.Generator().manual_seed(0)
    kw = {"generator": gen, "dtype": torch.float64}
    beta_x = torch.rand(2, 30, 34, **kw) * 40 - 20  # some rays leave the grid
    beta_y = torch.rand(2, 30, 34, **kw) * 40 - 20
    lens = LensOperator(beta_x, beta_y, shape=(25, 27), pixel=1.3)
    s, u = torch.rand(2, 3, 25, 27, **kw), torch.rand(2, 3, 30, 34, **kw)
    lhs = (lens(s) * u).sum()
    rhs = (s * lens.adjoint(u)).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-10)


def _lenstronomy_grid():
    kwargs = simulation_util.data_configure_simple(N_PIX, PIXEL)
    # The simulator's grid: ra grows with the column, dec with the row (no flip).
    assert np.allclose(kwargs["transform_pix2angle"], [[PIXEL, 0], [0, PIXEL]])
    return ImageData(**kwargs)


def test_sie_and_shear_match_lenstronomy():
    x, y = pixel_grid(N_PIX, N_PIX, dtype=torch.float64)
    lens = {"theta_E": 1.2, "e1": 0.12, "e2": -0.07, "center_x": 0.06, "center_y": -0.04}
    shear = {"gamma1": 0.03, "gamma2": -0.02, "ra_0": 0.0, "dec_0": 0.0}
    ref_x, ref_y = LensModel(["SIE", "SHEAR"]).alpha(
        (x * PIXEL).numpy().ravel(), (y * PIXEL).numpy().ravel(), [lens, shear]
    )
    ax, ay = sie_deflection(
        x,
        y,
        theta_e=t(1.2 / PIXEL).double(),
        e1=t(0.12).double(),
        e2=t(-0.07).double(),
        center_x=t(0.06 / PIXEL).double(),
        center_y=t(-0.04 / PIXEL).double(),
        core=1e-6,
    )
    sx, sy = shear_deflection(x, y, gamma1=t(0.03).double(), gamma2=t(-0.02).double())
    got = torch.stack(((ax + sx).ravel(), (ay + sy).ravel())).numpy() * PIXEL
    assert np.abs(got - np.stack((ref_x, ref_y))).max() < 1e-5  # arcsec


def _sis_alpha() -> torch.Tensor:
    """SIS deflection (1, 2, H, W) in HR pixels, from the round limit of the SIE."""
    x, y = pixel_grid(N_PIX, N_PIX, dtype=torch.float64)
    zero = t(0.0).double()
    ax, ay = sie_deflection(
        x, y, theta_e=t(THETA_E / PIXEL).double(), e1=zero, e2=zero, center_x=zero,
        center_y=zero, core=1e-6,
    )  # fmt: skip
    return torch.stack((ax, ay))[None]


def _lenstronomy_sis_image() -> np.ndarray:
    """Surface brightness of the lensed Gaussian, no PSF, at the HR pixel centres."""
    model = ImageModel(
        _lenstronomy_grid(),
        PSF(psf_type="NONE"),
        lens_model_class=LensModel(["SIS"]),
        source_model_class=LightModel(["GAUSSIAN"]),
        kwargs_numerics={"supersampling_factor": 1},
    )
    kwargs_lens = [{"theta_E": THETA_E, "center_x": 0.0, "center_y": 0.0}]
    return model.image(kwargs_lens, [SOURCE]) / PIXEL**2


def _true_source(shape, pixel_hr: float) -> torch.Tensor:
    """The Gaussian source sampled at the source-grid pixel centres."""
    x, y = pixel_grid(*shape, dtype=torch.float64)
    ra, dec = x * pixel_hr * PIXEL, y * pixel_hr * PIXEL
    sb = LightModel(["GAUSSIAN"]).surface_brightness(ra.numpy(), dec.numpy(), [SOURCE])
    return torch.from_numpy(sb)[None, None]


def _rel_err(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b))


@pytest.mark.parametrize(("pixel", "tolerance"), [(1.0, 0.03), (0.5, 0.01)])
def test_relensing_reproduces_lenstronomy(pixel, tolerance):
    """Known SIS deflection + known off-centre source -> lenstronomy's image, a few %
    (bilinear interpolation of the source grid; less with finer source pixels)."""
    alpha = _sis_alpha()
    x, y = pixel_grid(N_PIX, N_PIX, dtype=torch.float64)
    shape = source_shape((N_PIX, N_PIX), fov=1.0, pixel=pixel)
    lens = LensOperator(x - alpha[:, 0], y - alpha[:, 1], shape=shape, pixel=pixel)
    ours = lens(_true_source(shape, pixel))[0, 0].numpy()
    reference = _lenstronomy_sis_image()
    assert _rel_err(ours, reference) < tolerance
    # A mirrored source (the sign convention of ra) would be far off.
    assert _rel_err(ours[:, ::-1], reference) > 0.5


def test_inversion_with_the_true_lens_beats_bicubic():
    """Noise-free LR of the SIS lens: the source inversion with the true deflection,
    re-lensed, is closer to the HR sky than bicubic upsampling is."""
    sky = torch.from_numpy(_lenstronomy_sis_image()).float()[None, None]
    ins = GaussianInstrument(fwhm=3.2, scale=2)
    lr = ins(sky)
    alpha = _sis_alpha().float()
    x, y = pixel_grid(N_PIX, N_PIX)
    shape = source_shape((N_PIX, N_PIX), fov=1.0, pixel=1.0)
    lens = LensOperator(x - alpha[:, 0], y - alpha[:, 1], shape=shape, pixel=1.0)
    source = reconstruct_source(lr, lens, ins, reg=1e-3, iters=30)
    relensed = lens(source)
    bicubic = F.interpolate(lr, scale_factor=2, mode="bicubic", align_corners=False)
    peak = float(sky.max())
    ours = psnr((relensed / peak)[0, 0].numpy(), (sky / peak)[0, 0].numpy())
    base = psnr((bicubic / peak)[0, 0].numpy(), (sky / peak)[0, 0].numpy())
    assert ours > base + 3, (ours, base)
    assert _rel_err(source[0, 0].numpy(), _true_source(shape, 1.0)[0, 0].numpy()) < 0.3


def test_refinement_runs_under_inference_mode_and_lowers_the_misfit():
    torch.manual_seed(0)
    model = create_model("physics-tiny", scale=2, refine_steps=5).eval()
    sky = torch.from_numpy(_lenstronomy_sis_image()).float()[None, None]
    lr = model.lr_instrument(sky) / sky.max()
    with torch.inference_mode():
        feats = model.encode(lr)
        raw = model.macro_raw(feats)
        refined = model.refine_macro(lr, raw, model.residual_field(feats))
        out = model(lr)
    assert out.shape == (1, 1, N_PIX, N_PIX) and torch.isfinite(out).all()
    with torch.no_grad():
        residual = model.residual_field(feats)
        before = model.misfit(lr, raw, residual)
        after = model.misfit(lr, refined, residual)
    assert after < before
    assert not any(p.grad is not None for p in model.parameters())


def test_upscale_array_and_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    model = create_model("physics-tiny", lr_psf_fwhm=2.5, hr_psf_fwhm=1.2).eval()
    lr = np.random.default_rng(0).random((3, 21, 19)).astype(np.float32)
    first = upscale_array(lr, model, batch_size=2)  # channels_last, inference mode
    assert first.shape == (3, 42, 38) and np.isfinite(first).all()
    path = save_checkpoint(model, tmp_path / "p.safetensors", metadata={"note": "test"})
    loaded, meta = load_checkpoint(path)
    assert meta["kwargs"]["lr_psf_fwhm"] == 2.5 and isinstance(loaded, PhysicsSR)
    np.testing.assert_allclose(upscale_array(lr, loaded, batch_size=2), first, rtol=1e-5)


def test_switches_change_the_parameters_and_prefixes():
    plain = create_model("physics-tiny")
    assert plain.upsampler_prefixes == ("macro_head",)
    full = create_model("physics-tiny", residual_deflection=True, correction=True)
    assert full.upsampler_prefixes == ("macro_head", "deflection_head", "correction")
    assert "correction.gain" in dict(full.named_parameters())
    x = torch.rand(1, 1, 12, 12)
    with torch.no_grad():  # the correction starts at zero: same output as without it
        torch.manual_seed(0)
        a = create_model("physics-tiny")
        torch.manual_seed(0)
        b = create_model("physics-tiny", correction=True)
        assert torch.allclose(a(x), b(x), atol=1e-6)
