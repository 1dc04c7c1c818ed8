"""`lensr upscale` as a user runs it: files, ensembles with uncertainty, --consistent."""

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
