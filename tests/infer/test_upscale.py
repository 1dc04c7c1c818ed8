"""lensr upscale: every input kind, units, WCS, and every user error leaving nothing."""

import json
import pickle

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from astropy.io import fits
from astropy.wcs import WCS

from lensr.data.writer import DatasetWriter
from lensr.errors import LensrError
from lensr.infer import runner
from lensr.infer.arrays import upscale_array
from lensr.infer.upscale import upscale_path
from lensr.models import create_model
from lensr.models.checkpoint import resolve_model, save_checkpoint


@pytest.fixture(params=["bicubic", "ckpt"])
def model_spec(request, ckpt) -> str:
    return ckpt if request.param == "ckpt" else "bicubic"


def lenses(n: int = 2, h: int = 20, w: int = 20, *, seed: int = 0) -> np.ndarray:
    """Positive blobs on a faint noisy background, float32 (n, h, w)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:h, :w]
    cy, cx = rng.uniform(0.3, 0.7, (2, n, 1, 1)) * np.array([h, w])[:, None, None, None]
    blob = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * (0.15 * min(h, w)) ** 2))
    return (blob + 0.01 * rng.random((n, h, w))).astype(np.float32)


def reference(images: np.ndarray, spec: str) -> np.ndarray:
    return upscale_array(images, resolve_model(spec))


def listing(folder) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


# Input kinds ---------------------------------------------------------------------------

LAYOUTS = [(20, 20), (1, 20, 20), (4, 20, 20), (4, 1, 20, 20)]


@pytest.mark.parametrize("shape", LAYOUTS, ids=lambda s: "x".join(map(str, s)))
def test_npy_keeps_its_layout_at_twice_the_size(tmp_path, model_spec, shape):
    n = shape[0] if len(shape) > 2 else 1
    lr = lenses(n).reshape(shape)
    np.save(tmp_path / "lr.npy", lr)
    out = upscale_path(
        tmp_path / "lr.npy", model=model_spec, out=tmp_path / "sr.npy", progress=False
    )
    sr = np.load(out, allow_pickle=False)
    assert sr.shape == (*shape[:-2], 40, 40) and sr.dtype == np.float32
    np.testing.assert_allclose(sr.reshape(n, 40, 40), reference(lenses(n), model_spec), atol=1e-6)


def test_bicubic_output_is_bicubic_interpolation(tmp_path):
    lr = lenses(2)
    np.save(tmp_path / "lr.npy", lr)
    sr = np.load(upscale_path(tmp_path / "lr.npy", model="bicubic", out=tmp_path / "sr.npy"))
    expected = F.interpolate(torch.from_numpy(lr)[:, None], scale_factor=2, mode="bicubic")
    np.testing.assert_allclose(sr, expected[:, 0].numpy(), atol=1e-5)


def _fits_header(h: int = 20, w: int = 20) -> fits.Header:
    wcs = WCS(naxis=2)
    wcs.wcs.crpix = [10.5, 12.0]
    wcs.wcs.cdelt = [-0.1 / 3600, 0.1 / 3600]
    wcs.wcs.crval = [150.1, 2.2]
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    header = wcs.to_header()
    header["OBJECT"] = "SDSSJ0946+1006"
    header["BUNIT"] = "nJy/arcsec2"
    return header


def test_folder_of_npy_and_fits_keeps_names_sizes_and_headers(tmp_path, model_spec):
    src = tmp_path / "in"
    src.mkdir()
    a, b, c = lenses(1, seed=1)[0], lenses(2, 24, 16, seed=2), lenses(1, seed=3)[0]
    np.save(src / "a.npy", a)
    np.save(src / "b.npy", b)  # a stack, another size
    fits.writeto(src / "c.fits", c, _fits_header())
    out = upscale_path(src, model=model_spec, out=tmp_path / "out", progress=False)
    assert sorted(p.name for p in out.iterdir()) == ["a.npy", "b.npy", "c.fits"]
    np.testing.assert_allclose(np.load(out / "a.npy"), reference(a[None], model_spec)[0], atol=1e-6)
    np.testing.assert_allclose(np.load(out / "b.npy"), reference(b, model_spec), atol=1e-6)
    with fits.open(out / "c.fits") as hdul:
        np.testing.assert_allclose(hdul[0].data, reference(c[None], model_spec)[0], atol=1e-6)
        assert hdul[0].header["OBJECT"] == "SDSSJ0946+1006"
        assert hdul[0].header["NAXIS1"] == 40
    assert not (tmp_path / "out.partial").exists()


def _dataset(path, lr: np.ndarray) -> None:
    n, h, w = lr.shape
    attrs = {"scale": 2, "units": "surface brightness (test)"}
    with DatasetWriter(
        path,
        n=n,
        hr_shape=(2 * h, 2 * w),
        lr_shape=(h, w),
        class_names=["none", "cdm", "axion"],
        attrs=attrs,
        indices=np.arange(10, 10 + n),
    ) as writer:
        for i in range(n):
            writer.write(i, hr=np.zeros((2 * h, 2 * w)), lr=lr[i], label=i % 3)
        writer.finish()


def test_hdf5_dataset_gives_sr_labels_index_and_provenance(tmp_path, model_spec):
    lr = lenses(5)
    _dataset(tmp_path / "sim.h5", lr)
    out = upscale_path(
        tmp_path / "sim.h5", model=model_spec, out=tmp_path / "sr.h5", batch_size=2, progress=False
    )
    with h5py.File(out, "r") as f:
        np.testing.assert_allclose(f["sr"][:], reference(lr, model_spec), atol=1e-6)
        assert f["sr"].dtype == np.float32
        assert f["label"][:].tolist() == [0, 1, 2, 0, 1]
        assert f["index"][:].tolist() == [10, 11, 12, 13, 14]
        assert f.attrs["source"] == str((tmp_path / "sim.h5").resolve())
        assert f.attrs["model"] == model_spec and f.attrs["scale"] == 2
        meta = json.loads(f.attrs["model_metadata"])
        assert meta.get("arch") == ("fsrcnn-tiny" if model_spec.endswith("safetensors") else None)
        assert list(f.attrs["class_names"]) == ["none", "cdm", "axion"]


def test_fits_wcs_maps_old_pixel_centres_to_the_same_sky(tmp_path):
    image = lenses(1, 20, 30)[0]
    header = _fits_header(20, 30)
    fits.writeto(tmp_path / "cut.fits", image, header)
    out = upscale_path(tmp_path / "cut.fits", model="bicubic", out=tmp_path / "cut_x2.fits.gz")
    with fits.open(out) as hdul:
        new_header, data = hdul[0].header, hdul[0].data
    assert data.shape == (40, 60)
    assert new_header["OBJECT"] == "SDSSJ0946+1006" and new_header["BUNIT"] == "nJy/arcsec2"
    old, new = WCS(header), WCS(new_header)
    y, x = np.mgrid[:20, :30].astype(float)
    ra0, dec0 = old.pixel_to_world_values(x, y)
    ra1, dec1 = new.pixel_to_world_values(2 * (x + 0.5) - 0.5, 2 * (y + 0.5) - 0.5)
    np.testing.assert_allclose(ra1, ra0, atol=1e-10)
    np.testing.assert_allclose(dec1, dec0, atol=1e-10)


# Units and normalisation ---------------------------------------------------------------


def test_flux_per_pixel_output_conserves_total_flux(tmp_path):
    lr = lenses(2, 40, 40) - 0.005  # background-subtracted: blobs well inside the frame
    np.save(tmp_path / "lr.npy", lr)
    sb = np.load(upscale_path(tmp_path / "lr.npy", model="bicubic", out=tmp_path / "sb.npy"))
    flux_path = upscale_path(
        tmp_path / "lr.npy", model="bicubic", out=tmp_path / "flux.npy", units="flux-per-pixel"
    )
    flux = np.load(flux_path)
    np.testing.assert_allclose(flux, sb / 4, rtol=1e-6)
    np.testing.assert_allclose(flux.sum(axis=(1, 2)), lr.sum(axis=(1, 2)), rtol=2e-3)
    # Surface brightness: same units, so the mean (not the sum) is kept.
    np.testing.assert_allclose(sb.mean(axis=(1, 2)), lr.mean(axis=(1, 2)), rtol=2e-3)


def test_output_keeps_the_input_units(tmp_path, model_spec):
    lr = lenses(4)
    np.save(tmp_path / "a.npy", lr)
    np.save(tmp_path / "b.npy", lr * 1000)
    a = np.load(upscale_path(tmp_path / "a.npy", model=model_spec, out=tmp_path / "sa.npy"))
    b = np.load(upscale_path(tmp_path / "b.npy", model=model_spec, out=tmp_path / "sb.npy"))
    assert np.abs(b - 1000 * a).max() <= 1e-4 * np.abs(1000 * a).max()


# Errors: one line, naming the problem, nothing left behind -------------------------------


def _bad_npy(tmp_path, kind: str):
    path = tmp_path / "bad.npy"
    good = lenses(2)
    if kind == "nan":
        good[0, 1, :3] = np.nan
        np.save(path, good)
    elif kind == "inf":
        good[1, 2, 2] = -np.inf
        np.save(path, good)
    elif kind == "chw":
        np.save(path, np.zeros((3, 20, 20), np.float32))
    elif kind == "nchw":
        np.save(path, np.zeros((2, 3, 20, 20), np.float32))
    elif kind == "hwc":
        np.save(path, np.zeros((20, 20, 3), np.float32))
    elif kind == "truncated":
        np.save(path, good)
        path.write_bytes(path.read_bytes()[:200])
    elif kind == "garbage":
        path.write_bytes(b"not numpy at all" * 10)
    elif kind == "pickle":
        np.save(path, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    elif kind == "5d":
        np.save(path, np.zeros((2, 1, 1, 20, 20), np.float32))
    elif kind == "strings":
        np.save(path, np.array(["a", "b"]))
    return path


@pytest.mark.parametrize(
    "kind, message",
    [
        ("nan", "contains 3 NaN pixels"),
        ("inf", "contains 1 infinite pixels"),
        ("chw", "has 3 channels"),
        ("nchw", "has 3 channels"),
        ("hwc", "has 3 channels"),
        ("truncated", "corrupt or truncated"),
        ("garbage", "not a .npy file"),
        ("pickle", "pickled Python objects"),
        ("5d", "not an image stack"),
        ("strings", "dtype"),
    ],
)
def test_bad_npy_is_one_line_naming_the_file_and_writes_nothing(tmp_path, kind, message):
    path = _bad_npy(tmp_path, kind)
    before = listing(tmp_path)
    with pytest.raises(LensrError, match=message) as err:
        upscale_path(path, model="bicubic", out=tmp_path / "out" / "sr.npy")
    assert str(path) in str(err.value) and "\n" not in str(err.value)
    assert listing(tmp_path) == before


def _error(tmp_path, src, *, match: str, **kwargs):
    before = listing(tmp_path)
    kwargs.setdefault("model", "bicubic")
    with pytest.raises(LensrError, match=match) as err:
        upscale_path(src, progress=False, **kwargs)
    assert "\n" not in str(err.value)
    assert listing(tmp_path) == before
    return str(err.value)


def test_model_errors_write_nothing(tmp_path, ckpt):
    np.save(tmp_path / "lr.npy", lenses(1))
    out = tmp_path / "sr.npy"
    _error(tmp_path, tmp_path / "lr.npy", out=out, model="bicubc", match="neither a baseline")
    _error(tmp_path, tmp_path / "lr.npy", out=out, model="rcan", match="untrained architecture")
    _error(tmp_path, tmp_path / "lr.npy", out=out, model=ckpt, scale=4, match="is for scale 2")


def test_checkpoint_with_another_normalisation_is_refused(tmp_path):
    save_checkpoint(
        create_model("fsrcnn-tiny"), tmp_path / "m.safetensors", metadata={"normalization": "max"}
    )
    np.save(tmp_path / "lr.npy", lenses(1))
    _error(
        tmp_path,
        tmp_path / "lr.npy",
        out=tmp_path / "sr.npy",
        model=str(tmp_path / "m.safetensors"),
        match="trained with normalisation",
    )


def test_path_and_option_errors_write_nothing(tmp_path):
    lr = tmp_path / "lr.npy"
    np.save(lr, lenses(1))
    (tmp_path / "img.png").write_bytes(b"\x89PNG")
    (tmp_path / "empty").mkdir()
    _error(tmp_path, tmp_path / "missing.npy", out=tmp_path / "o.npy", match="no such file")
    _error(tmp_path, tmp_path / "img.png", out=tmp_path / "o.png", match="unsupported file type")
    _error(tmp_path, tmp_path / "empty", out=tmp_path / "o", match="empty folder")
    _error(tmp_path, lr, out=tmp_path / "o.fits", match="must end in .npy")
    _error(tmp_path, tmp_path / "empty", out=tmp_path / "o.npy", match="must be a folder")
    _error(tmp_path, lr, out=lr, overwrite=True, match="is the input")
    _error(tmp_path, lr, out=tmp_path / "o.npy", units="counts", match="unknown units")
    _error(tmp_path, lr, out=tmp_path / "o.npy", batch_size=0, match="batch size")
    _error(tmp_path, lr, out=tmp_path / "o.npy", tile=8, overlap=8, match="overlap < tile")
    _error(tmp_path, lr, out=tmp_path / "o.npy", device="tpu9", match="unknown device")


def test_existing_output_needs_overwrite(tmp_path):
    lr = tmp_path / "lr.npy"
    np.save(lr, lenses(1)[0])
    np.save(tmp_path / "sr.npy", np.zeros(3))
    _error(tmp_path, lr, out=tmp_path / "sr.npy", match="already exists")
    assert np.load(tmp_path / "sr.npy").shape == (3,)
    upscale_path(lr, model="bicubic", out=tmp_path / "sr.npy", overwrite=True, progress=False)
    assert np.load(tmp_path / "sr.npy").shape == (40, 40)


@pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning")
def test_bad_fits_and_fits_cube(tmp_path):
    (tmp_path / "bad.fits").write_bytes(b"SIMPLE  =                    T" + b" " * 50)
    fits.writeto(tmp_path / "cube.fits", np.zeros((3, 20, 20), np.float32))
    inf = lenses(1)[0]
    inf[0, 0] = np.inf
    fits.writeto(tmp_path / "inf.fits", inf)
    msg = _error(tmp_path, tmp_path / "bad.fits", out=tmp_path / "o.fits", match="corrupt")
    assert "bad.fits" in msg
    _error(tmp_path, tmp_path / "cube.fits", out=tmp_path / "o.fits", match="single-band")
    _error(tmp_path, tmp_path / "inf.fits", out=tmp_path / "o.fits", match="1 infinite")


def test_one_bad_file_in_a_folder_fails_before_any_work(tmp_path, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        np.save(src / f"s{i}.npy", lenses(1, seed=i)[0])
    bad = lenses(1)[0]
    bad[3, 3] = np.nan
    np.save(src / "s9.npy", bad)
    calls = []
    monkeypatch.setattr(runner, "upscale_array", lambda *a, **k: calls.append(1))
    msg = _error(tmp_path, src, out=tmp_path / "out", match="contains 1 NaN pixels")
    assert "s9.npy" in msg and calls == []
    (src / "s9.npy").unlink()
    (src / "notes.txt").write_text("hi")
    _error(tmp_path, src, out=tmp_path / "out", match="not an image file")


def test_a_failure_mid_run_removes_partial_outputs(tmp_path, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    for i in range(3):
        np.save(src / f"s{i}.npy", lenses(1, seed=i)[0])
    _dataset(tmp_path / "sim.h5", lenses(3))
    real, calls = runner.upscale_array, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            raise LensrError("boom")
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "upscale_array", flaky)
    _error(tmp_path, src, out=tmp_path / "out", batch_size=1, match="boom")
    calls.clear()
    _error(tmp_path, tmp_path / "sim.h5", out=tmp_path / "sr.h5", batch_size=1, match="boom")


def test_hdf5_errors(tmp_path):
    lr = lenses(3)
    lr[2, 0, 0] = np.nan
    _dataset(tmp_path / "nan.h5", lr)
    (tmp_path / "junk.h5").write_bytes(b"junk")
    _error(tmp_path, tmp_path / "nan.h5", out=tmp_path / "sr.h5", match="lr contains 1 NaN")
    _error(tmp_path, tmp_path / "junk.h5", out=tmp_path / "sr.h5", match="not a readable HDF5")
    _error(tmp_path, tmp_path / "nan.h5", out=tmp_path / "sr.npy", match="must end in .h5")


def test_folder_overwrite_replaces_only_earlier_outputs(tmp_path):
    src, dst = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    np.save(src / "a.npy", lenses(1)[0])
    upscale_path(src, model="bicubic", out=dst, progress=False)
    np.save(dst / "stale.npy", np.zeros(2))
    upscale_path(src, model="bicubic", out=dst, overwrite=True, progress=False)
    assert sorted(p.name for p in dst.iterdir()) == ["a.npy"]
    (dst / "thesis.tex").write_text("precious")
    _error(tmp_path, src, out=dst, overwrite=True, match="not images")
    _error(tmp_path, src, out=src / "x2", match="inside the input folder")


def test_pickle_is_never_loaded(tmp_path, monkeypatch):
    monkeypatch.setattr(pickle, "load", lambda *a, **k: pytest.fail("unpickled"))
    path = _bad_npy(tmp_path, "pickle")
    with pytest.raises(LensrError):
        upscale_path(path, model="bicubic", out=tmp_path / "o.npy")
