"""The compiled path of the array core (lensr.infer.compiled): the same outputs as eager
mode within 1e-5, one compiled shape per run, fresh weights honoured, the switch (option,
environment), the provenance record, and a one-line error when it cannot run."""

import numpy as np
import pytest
import torch
from astropy.io import fits
from typer.testing import CliRunner

from lensr.cli import app
from lensr.errors import LensrError
from lensr.infer import compiled
from lensr.infer.arrays import upscale_array
from lensr.infer.upscale import upscale_path
from lensr.models import create_model
from lensr.models.checkpoint import resolve_model, save_checkpoint

META = {"normalization": {"name": "lr-percentile", "percentile": 99.5}}


pytestmark = pytest.mark.usefixtures("one_thread")


def lenses(n: int, size: int = 16) -> np.ndarray:
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:size, :size]
    blob = np.exp(-((y - size / 2) ** 2 + (x - size / 2) ** 2) / (2 * (0.2 * size) ** 2))
    return (5.0 * blob + 0.05 * rng.random((n, size, size))).astype(np.float32)


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return create_model("fsrcnn-tiny")


def test_compiled_matches_eager_and_reuses_one_shape(net):
    lr = lenses(5)  # batches of 2, 2, 1: the short one is padded, not compiled again
    eager = upscale_array(lr, net, batch_size=2, compile=False)
    fast = upscale_array(lr, net, batch_size=2, compile=True)
    scale = np.percentile(lr, 99.5, axis=(1, 2))[:, None, None]  # normalised units
    assert np.abs((fast - eager) / scale).max() <= 1e-5
    shapes = compiled.compiled_forward(net, device=torch.device("cpu")).shapes
    assert shapes == {(2, 1, 16, 16)}


def test_weights_changed_after_compiling_are_used(net):
    lr = lenses(2)
    upscale_array(lr, net, batch_size=2, compile=True)
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(1.5)  # in place: dynamo's cache does not see it, lensr's must
    eager = upscale_array(lr, net, batch_size=2, compile=False)
    fast = upscale_array(lr, net, batch_size=2, compile=True)
    assert np.abs(fast - eager).max() <= 1e-5 * np.abs(eager).max()


def test_switch_option_then_environment(monkeypatch, net):
    bicubic = resolve_model("bicubic", scale=2)
    monkeypatch.delenv(compiled.COMPILE_ENV, raising=False)
    assert not compiled.uses_compile(net, None)
    monkeypatch.setenv(compiled.COMPILE_ENV, "1")
    assert compiled.uses_compile(net, None) and not compiled.uses_compile(net, False)
    assert not compiled.uses_compile(bicubic, True)  # nothing to compile
    monkeypatch.setenv(compiled.COMPILE_ENV, "maybe")
    with pytest.raises(LensrError, match="LENSR_COMPILE='maybe'"):
        compiled.uses_compile(net, None)


def test_without_a_compiler_it_is_a_one_line_error_and_nothing_is_written(tmp_path, net):
    from torch._inductor import config

    ckpt = tmp_path / "net.safetensors"
    save_checkpoint(net, ckpt, metadata=META)
    np.save(tmp_path / "lr.npy", lenses(2))
    out = tmp_path / "sr.npy"
    with config.patch({"cpp.cxx": ("no-such-c++-compiler",)}):
        with pytest.raises(LensrError, match="needs a C\\+\\+ compiler") as err:
            upscale_path(tmp_path / "lr.npy", model=str(ckpt), out=out, compile=True)
        assert "\n" not in str(err.value)
        assert not out.exists()
        upscale_path(tmp_path / "lr.npy", model="bicubic", out=out, compile=True)  # no weights


def test_cli_records_whether_it_compiled(tmp_path, net):
    ckpt = tmp_path / "net.safetensors"
    save_checkpoint(net, ckpt, metadata=META)
    fits.writeto(tmp_path / "cut.fits", lenses(1)[0])
    runner = CliRunner()
    for flag, word in (("--no-compile", "no"), ("--compile", "yes")):
        out = tmp_path / f"cut_{word}.fits"
        args = ["upscale", str(tmp_path / "cut.fits"), "--model", str(ckpt), "--out", str(out)]
        result = runner.invoke(app, [*args, flag])
        assert result.exit_code == 0, result.output
        history = str(fits.getheader(out).get("HISTORY"))
        assert f"compiled={word}" in history
    a, b = fits.getdata(tmp_path / "cut_no.fits"), fits.getdata(tmp_path / "cut_yes.fits")
    assert np.abs(a - b).max() <= 1e-5 * np.abs(a).max()
