"""LR-consistency: chi2 of the truth ~1, larger for wrong outputs; its place in `lensr evaluate`."""

import csv
import json
import shutil

import h5py
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from lensr.data.store import open_dataset
from lensr.errors import LensrError
from lensr.eval.consistency import lr_chi2
from lensr.eval.evaluate import evaluate
from lensr.instrument.from_dataset import gaussian_degradation, instrument_for, lr_instrument
from lensr.models import create_model
from lensr.models.checkpoint import save_checkpoint
from lensr.sim.config import load_sim_config
from lensr.sim.run import simulate

torch.set_num_threads(1)

N = 12
FAST = {"n_boot": 100, "progress": False}


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """12 classify images (64 px HR, Gaussian PSFs 0.1"/0.2", 0.08"/px), a tiny network,
    and the same data without simulation parameters (as if imported)."""
    root = tmp_path_factory.mktemp("consistency")
    data = simulate(load_sim_config("classify"), n=N, seed=0, out=root / "d.h5", progress=False)
    torch.manual_seed(0)
    meta = {"normalization": {"name": "lr-percentile", "percentile": 99.5}}
    ckpt = save_checkpoint(
        create_model("fsrcnn-tiny"), root / "m/fsrcnn-tiny/best.safetensors", metadata=meta
    )
    imported = root / "imported.h5"
    shutil.copy(data, imported)
    with h5py.File(imported, "r+") as f:
        del f["params"]
        for key in ("config", "lr_pixel_scale", "hr_pixel_scale"):
            del f.attrs[key]
    return {"root": root, "data": data, "ckpt": str(ckpt), "imported": imported}


@pytest.fixture(scope="module")
def sim(files):
    with open_dataset(files["data"]) as ds:
        D, variance = instrument_for(ds, np.arange(N))
        return {"D": D, "var": variance, "lr": ds.lr[:], "clean": ds.hr_clean[:], "hr": ds.hr[:]}


def test_the_noise_free_hr_scores_about_one(sim):
    chi2, maps = lr_chi2(sim["clean"], sim["lr"], sim["D"], sim["var"])
    assert chi2.shape == (N,) and maps.shape == sim["lr"].shape
    np.testing.assert_allclose(maps.mean(axis=(1, 2)), chi2)
    # 1024 LR pixels per image: the per-image spread is ~sqrt(2/1024) = 0.04.
    assert abs(chi2.mean() - 1.0) < 0.08
    assert np.all((chi2 > 0.75) & (chi2 < 1.25))


def test_wrong_outputs_score_more(sim):
    truth, _ = lr_chi2(sim["clean"], sim["lr"], sim["D"], sim["var"])
    smooth = gaussian_filter(sim["clean"], sigma=(0, 2, 2))
    over_smoothed, _ = lr_chi2(smooth, sim["lr"], sim["D"], sim["var"])
    assert np.all(over_smoothed > 2 * truth)
    # An invented clump: a bright compact blob far from the arcs lights up the chi2 map there.
    fake = sim["clean"].copy()
    peak = fake.max(axis=(1, 2))
    fake[:, 6:9, 6:9] += peak[:, None, None]
    invented, maps = lr_chi2(fake, sim["lr"], sim["D"], sim["var"])
    assert np.all(invented > truth + 0.5)
    hot = np.unravel_index(maps[0].argmax(), maps[0].shape)
    assert max(abs(hot[0] - 3.5), abs(hot[1] - 3.5)) <= 2.5  # LR pixels of the clump


def test_copying_the_noise_scores_less_than_one(sim):
    # The noisy HR carries its own noise, but the block mean averages it down: D(noisy HR)
    # is closer to LR than chance only if it shares the LR noise, which it does not.
    noisy, _ = lr_chi2(sim["hr"], sim["lr"], sim["D"], sim["var"])
    assert noisy.mean() > 1.0
    # An "SR" equal to the LR image repeated copies the LR noise exactly: chi2 well below 1.
    copy = sim["lr"].repeat(2, axis=1).repeat(2, axis=2)
    D = gaussian_degradation(lr_fwhm=0.0, pixel_scale=0.16, scale=2)
    copied, _ = lr_chi2(copy, sim["lr"], D, sim["var"])
    assert copied.max() < 1e-6


def test_imported_data_need_a_psf(files, sim, tmp_path):
    with open_dataset(files["imported"]) as ds:
        lr = ds.lr[:]
        with pytest.raises(LensrError, match="--lr-psf-fwhm") as info:
            lr_instrument(ds, range(N), lr=lr)
        assert "\n" not in str(info.value)
        with pytest.raises(LensrError, match="--pixel-scale"):
            lr_instrument(ds, range(N), lr=lr, lr_psf_fwhm=0.2)
        inst = lr_instrument(
            ds, range(N), lr=lr, lr_psf_fwhm=0.2, hr_psf_fwhm=0.1, pixel_scale=0.16
        )
    assert inst.source == "gaussian"
    recorded = shutil.copy(files["imported"], tmp_path / "with_scale.h5")
    with h5py.File(recorded, "r+") as f:
        f.attrs["lr_pixel_scale"] = 0.16
    with open_dataset(recorded) as ds:  # the dataset's pixel scale is the default
        kernels = lr_instrument(ds, [0], lr=lr[:1], lr_psf_fwhm=0.2, hr_psf_fwhm=0.1).D.kernels
    np.testing.assert_array_equal(kernels, inst.D.kernels)
    truth, _ = lr_chi2(sim["clean"], lr, inst.D, inst.variance)
    smooth, _ = lr_chi2(gaussian_filter(sim["clean"], (0, 2, 2)), lr, inst.D, inst.variance)
    # One noise level per image is crude (on these small, ring-filled cutouts the arcs
    # inflate the MAD, so chi2 of the truth is 0.06-1.1), but it still ranks outputs.
    assert np.all(truth < 1.5) and np.all(smooth > 3 * truth)


# `lensr evaluate` --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run(files):
    out = files["root"] / "eval"
    result = evaluate(
        files["data"], ["bicubic", files["ckpt"]], out_dir=out, consistent=True, **FAST
    )
    return result, out


def test_evaluate_reports_chi2_calibration_and_projection(run, files):
    result, out = run
    names = [m["name"] for m in result["models"]]
    assert names == ["bicubic", "fsrcnn-tiny", "bicubic+proj", "fsrcnn-tiny+proj"]
    for m in result["models"]:
        chi2 = m["chi2_lr"]
        assert set(chi2) == {"overall", "per_class"}
        assert set(chi2["per_class"]) == {"none", "cdm", "axion"}
        assert chi2["overall"]["n"] == N and chi2["overall"]["mean"] > 0
    for m in result["models"][:2]:
        calib = m["calibration"]["overall"]
        assert 0 <= calib["within_1sigma"]["mean"] <= calib["within_2sigma"]["mean"] <= 1
        assert "projected_from" not in m
    for m in result["models"][2:]:
        assert m["projected_from"] == m["name"].removesuffix("+proj")
        assert "calibration" not in m and m["projection"]["iterations"]["n"] == N
    trust = result["trust"]
    assert trust["lr_instrument"] == "simulation" and trust["uncertainty"] == "dihedral-tta-8"
    assert trust["calibration_target"] == "clean" and trust["notes"] == []
    assert set(trust["flagged"]) == {"bicubic", "fsrcnn-tiny"}
    assert result["figures"]["trust"] == "trust.png"
    assert (out / "trust.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "metrics.json").read_text()) == result
    # The flagged image is the one with the highest chi2.
    with open(out / "metrics.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["target"] == "clean"]
    for name, flag in trust["flagged"].items():
        chi2 = [float(r["chi2_lr"]) for r in rows if r["model"] == name]
        assert flag["position"] == int(np.argmax(chi2))
        assert flag["chi2_lr"] == pytest.approx(max(chi2))


def test_projection_never_raises_chi2_per_image(run):
    out = run[1]
    with open(out / "metrics.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["target"] == "clean"]
    for name in ("bicubic", "fsrcnn-tiny"):
        before = np.array([float(r["chi2_lr"]) for r in rows if r["model"] == name])
        after = np.array([float(r["chi2_lr"]) for r in rows if r["model"] == f"{name}+proj"])
        # Fixed weights from D(sr) make the projection a descent; the variance re-evaluated
        # on D(projected) moves chi2 by far less than the noise.
        assert np.all(after <= np.maximum(before, 1.0) * 1.01)
        assert np.all((before <= 1.0) | (after < before))
    calib = [r["within_1sigma"] for r in rows if r["model"] == "bicubic"]
    assert all(v != "" for v in calib)


def test_table_md_has_the_trust_section(run):
    text = (run[1] / "table.md").read_text()
    assert "## Can we trust it?" in text
    assert "| model | χ²/pixel (LR) [95 % CI] | within 1σ (0.683) | within 2σ (0.954) |" in text
    assert "| fsrcnn-tiny+proj |" in text


def test_imported_data_skip_lr_consistency_with_a_note(files, tmp_path):
    result = evaluate(
        files["imported"], ["bicubic"], out_dir=tmp_path / "a", examples=0, uncertainty=False,
        **FAST,
    )  # fmt: skip
    assert "chi2_lr" not in result["models"][0] and "calibration" not in result["models"][0]
    assert result["trust"]["lr_instrument"] is None
    assert "LR-consistency skipped" in result["trust"]["notes"][0]
    assert "Note: LR-consistency skipped" in (tmp_path / "a" / "table.md").read_text()
    result = evaluate(
        files["imported"], ["bicubic"], out_dir=tmp_path / "b", examples=0, uncertainty=False,
        lr_psf_fwhm=0.2, hr_psf_fwhm=0.1, pixel_scale=0.16, **FAST,
    )  # fmt: skip
    assert result["trust"]["lr_instrument"] == "gaussian"
    assert result["models"][0]["chi2_lr"]["overall"]["n"] == N


def test_projection_without_an_instrument_is_a_user_error(files, tmp_path):
    with pytest.raises(LensrError, match="needs the LR instrument") as info:
        evaluate(files["imported"], ["bicubic"], out_dir=tmp_path / "o", consistent=True, **FAST)
    assert "\n" not in str(info.value) and not (tmp_path / "o").exists()
    with pytest.raises(LensrError, match="is taken"):
        evaluate(
            files["data"], ["bicubic", "bilinear"], names=["a", "a+proj"], out_dir=tmp_path / "p",
            consistent=True, **FAST,
        )  # fmt: skip


def test_uncertainty_off_gives_no_calibration(files, tmp_path):
    result = evaluate(files["data"], ["bicubic"], out_dir=tmp_path, uncertainty=False, **FAST)
    m = result["models"][0]
    assert "calibration" not in m and "chi2_lr" in m
    assert result["trust"]["uncertainty"] is None
    assert result["trust"]["flagged"]["bicubic"]["sigma_mean"] is None
