"""`lensr upscale` as a user runs it: files, ensembles with uncertainty, --consistent."""

from pathlib import Path

import numpy as np

from lensr.cli import app
from lensr.data.store import open_dataset
from lensr.errors import LensrError


def lenses(n: int = 2, h: int = 20, w: int = 20, *, seed: int = 0) -> np.ndarray:
    """Positive blobs on a faint noisy background, float32 (n, h, w)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:h, :w]
    cy, cx = rng.uniform(0.3, 0.7, (2, n, 1, 1)) * np.array([h, w])[:, None, None, None]
    blob = np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * (0.15 * min(h, w)) ** 2))
    return (blob + 0.01 * rng.random((n, h, w))).astype(np.float32)


def test_upscale_writes_and_reports(tmp_path, runner):
    np.save(tmp_path / "lr.npy", lenses(2))
    args = ["upscale", str(tmp_path / "lr.npy"), "--model", "bicubic", "--out"]
    result = runner.invoke(app, [*args, str(tmp_path / "sr.npy"), "--batch-size", "1"])
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and "sr.npy" in result.output
    assert np.load(tmp_path / "sr.npy").shape == (2, 40, 40)
    result = runner.invoke(app, [*args, str(tmp_path / "sr.npy")])
    assert isinstance(result.exception, LensrError) and "already exists" in str(result.exception)
    help_text = runner.invoke(app, ["upscale", "--help"]).output
    assert "flux-per-pixel" in help_text and "--overwrite" in help_text


def test_repeated_model_is_an_ensemble(tmp_path, sr_ckpts, runner):
    np.save(tmp_path / "lr.npy", lenses(2))
    args = ["upscale", str(tmp_path / "lr.npy"), "--model", sr_ckpts[0], "--model", sr_ckpts[1]]
    result = runner.invoke(app, [*args, "--uncertainty", "--out", str(tmp_path / "sr.npy")])
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "sr_sigma.npy").shape == (2, 40, 40)


def test_consistent_needs_the_psf_of_plain_files(tiny_h5, tmp_path, runner):
    with open_dataset(tiny_h5) as ds:
        np.save(tmp_path / "lr.npy", ds.lr[:2])
    args = ["upscale", str(tmp_path / "lr.npy"), "--model", "bicubic", "--consistent"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "a.npy")])
    assert isinstance(result.exception, LensrError)
    more = ["--lr-psf-fwhm", "0.2", "--pixel-scale", "0.16", "--out", str(tmp_path / "b.npy")]
    result = runner.invoke(app, [*args, *more])
    assert result.exit_code == 0, result.output
    assert np.load(tmp_path / "b.npy").shape == (2, 64, 64)


def test_uncertainty_writes_the_calibrated_sigma(tmp_path, sr_ckpts, runner):
    """With a ``sigma_calibration`` in the sidecar, sigma = a * raw + b * LR p99.5 per image;
    without one, the raw dihedral sigma."""
    import json
    import shutil

    from lensr.infer.uncertainty import image_scale

    lr = lenses(2, seed=3)
    np.save(tmp_path / "lr.npy", lr)
    ckpt = tmp_path / "m" / "best.safetensors"
    ckpt.parent.mkdir()
    shutil.copy(sr_ckpts[0], ckpt)
    info = json.loads(Path(str(sr_ckpts[0]).replace(".safetensors", ".json")).read_text())
    info.pop("sigma_calibration", None)  # an earlier `evaluate` of the shared fixture adds one
    ckpt.with_suffix(".json").write_text(json.dumps(info))

    def sigma(name: str) -> np.ndarray:
        args = ["upscale", str(tmp_path / "lr.npy"), "--model", str(ckpt), "--uncertainty"]
        result = runner.invoke(app, [*args, "--out", str(tmp_path / f"{name}.npy")])
        assert result.exit_code == 0, result.output
        return np.load(tmp_path / f"{name}_sigma.npy").astype(np.float64)

    raw = sigma("raw")
    assert raw.shape == (2, 40, 40) and raw.max() > 0  # an untrained CNN is not equivariant
    info = json.loads(ckpt.with_suffix(".json").read_text())
    info["sigma_calibration"] = [{"a": 2.5, "b": 0.03, "scale": "lr-p99.5", "preset": "x"}]
    ckpt.with_suffix(".json").write_text(json.dumps(info))
    calibrated = sigma("cal")
    floor = 0.03 * image_scale(lr)[:, None, None]
    np.testing.assert_allclose(calibrated, 2.5 * raw + floor, rtol=1e-5, atol=1e-7)
    assert np.all(calibrated >= floor - 1e-7) and not np.allclose(calibrated, raw)
