"""The Python API (``import lensr``): lazy and torch-free on import, exactly the public names,
documented, and the same numbers as the command line it shares its functions with."""

from __future__ import annotations

import dataclasses
import inspect
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import lensr
from lensr.api_inputs import arrays_to_dataset
from lensr.api_results import EvalResult, StudyResult
from lensr.models import create_model
from lensr.models.checkpoint import save_checkpoint

PUBLIC = [
    "LensrError",
    "__version__",
    "classify",
    "evaluate",
    "load_model",
    "open_dataset",
    "run_study",
    "simulate",
    "train",
    "upscale",
]
FUNCTIONS = [n for n in PUBLIC if n not in ("LensrError", "__version__")]
META = {"normalization": {"name": "lr-percentile", "percentile": 99.5}}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def pairs():
    """12 smooth random HR images (32 px, two blobs each), their 2x2 block means as LR,
    noisy copies as the observed images; classes cycle 0, 1, 2."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:32, :32]
    clean = np.zeros((12, 32, 32), np.float32)
    for img in clean:
        for _ in range(2):
            cy, cx, w = rng.uniform(8, 24), rng.uniform(8, 24), rng.uniform(2, 5)
            img += np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * w**2))
    hr = clean + rng.normal(0, 0.02, clean.shape).astype(np.float32)
    lr = clean.reshape(12, 16, 2, 16, 2).mean((2, 4))
    lr = lr + rng.normal(0, 0.02, lr.shape).astype(np.float32)
    return lr, hr, clean, np.arange(12) % 3


@pytest.fixture(scope="module")
def dataset(pairs, tmp_path_factory):
    lr, hr, clean, labels = pairs
    folder = tmp_path_factory.mktemp("data")
    return arrays_to_dataset(folder, lr, hr, clean, labels, ["none", "cdm", "axion"])


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "runs" / "models" / "fsrcnn-tiny" / "best.safetensors"
    return save_checkpoint(create_model("fsrcnn-tiny"), path, metadata=META)


# The face of the package ----------------------------------------------------------------------


def test_import_is_torch_free_and_shows_exactly_the_public_names():
    code = (
        "import sys, lensr; heavy = [m for m in sys.modules if m.split('.')[0] in "
        "('torch', 'lightning', 'lenstronomy', 'h5py', 'lensr.api')]; "
        "print(heavy, dir(lensr), sorted(lensr.__all__))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"[] {PUBLIC} {PUBLIC}"


def test_train_is_the_function_even_after_its_subpackage_is_imported():
    code = (
        "import lensr.train.fit, lensr; from lensr.train.config import TrainConfig; "
        "print(lensr.train.__module__, lensr.train.__name__, TrainConfig.__module__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["lensr.api", "train", "lensr.train.config"]


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'upscale_all'"):
        lensr.upscale_all  # noqa: B018


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_function_is_typed_and_shows_a_three_line_example(name):
    fn = getattr(lensr, name)
    assert fn.__module__ == "lensr.api"
    sig = inspect.signature(fn)
    assert sig.return_annotation is not inspect.Signature.empty
    assert all(p.annotation is not inspect.Parameter.empty for p in sig.parameters.values())
    doc = inspect.getdoc(fn)
    example = doc.split("Example::", 1)[1].strip().splitlines()
    assert example[0] == "import lensr" and len(example) == 3, example
    assert f"lensr.{name}(" in "\n".join(example)


# upscale ---------------------------------------------------------------------------------------


def test_upscale_keeps_any_leading_shape_and_the_units(pairs):
    lr = pairs[0][:6]
    flat = lensr.upscale(lr)
    assert flat.shape == (6, 32, 32) and flat.dtype == np.float32
    nested = lensr.upscale(lr.reshape(2, 3, 16, 16))
    np.testing.assert_array_equal(nested.reshape(6, 32, 32), flat)
    assert lensr.upscale(lr[0]).shape == (32, 32)
    # Units kept: the input in other units gives the output in those units.
    np.testing.assert_allclose(lensr.upscale(lr * 1e3), flat * 1e3, rtol=1e-5, atol=1e-3)
    per_pixel = lensr.upscale(lr, units="flux-per-pixel")
    np.testing.assert_allclose(per_pixel, flat / 4, rtol=1e-6)


def test_upscale_equals_the_cli_on_a_file_and_a_loaded_model(pairs, ckpt, tmp_path):
    from lensr.cli import app

    lr = pairs[0][:4]
    np.save(tmp_path / "lr.npy", lr)
    result = CliRunner().invoke(
        app,
        [
            "upscale",
            str(tmp_path / "lr.npy"),
            "--model",
            str(ckpt),
            "--out",
            str(tmp_path / "sr.npy"),
        ],
    )
    assert result.exit_code == 0, result.output
    cli = np.load(tmp_path / "sr.npy")
    np.testing.assert_array_equal(lensr.upscale(lr, model=ckpt), cli)
    np.testing.assert_array_equal(lensr.upscale(lr, model=lensr.load_model(ckpt)), cli)
    np.testing.assert_array_equal(lensr.upscale(tmp_path / "lr.npy", model=ckpt), cli)
    out = lensr.upscale(tmp_path / "lr.npy", model=ckpt, out=tmp_path / "api.npy")
    np.testing.assert_array_equal(np.load(out), cli)


def test_upscale_uncertainty_and_consistency(pairs, ckpt):
    lr = pairs[0][:2]
    sr, sigma = lensr.upscale(lr.reshape(1, 2, 16, 16), model=ckpt, uncertainty=True)
    assert sr.shape == sigma.shape == (1, 2, 32, 32) and (sigma >= 0).all() and sigma.max() > 0
    sr2, _ = lensr.upscale(lr, model=[ckpt, "bicubic"], uncertainty=True)
    assert sr2.shape == (2, 32, 32)
    proj = lensr.upscale(lr, consistent=True, lr_psf_fwhm=0.2, pixel_scale=0.1)
    assert proj.shape == (2, 32, 32) and not np.allclose(proj, lensr.upscale(lr))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"images": np.ones(5)}, r"shape \(\.\.\., H, W\)"),
        ({"images": np.full((4, 4), np.nan)}, "1 NaN|16 NaN"),
        ({"model": ["bicubic", "bilinear"]}, "pass uncertainty=True"),
        ({"consistent": True}, "lr-psf-fwhm"),
        ({"units": "jansky"}, "unknown units"),
        ({"model": "no-such-model"}, "neither a baseline"),
    ],
)
def test_upscale_bad_input_is_one_line(kwargs, message):
    kwargs = {"images": np.ones((4, 4), np.float32), **kwargs}
    with pytest.raises(lensr.LensrError, match=message) as err:
        lensr.upscale(**kwargs)
    assert "\n" not in str(err.value)


def test_load_model_baselines_checkpoints_and_errors(ckpt):
    assert lensr.load_model("bicubic", scale=4).scale == 4
    net = lensr.load_model(ckpt)
    assert net.metadata["arch"] == "fsrcnn-tiny" and not net.training
    with pytest.raises(lensr.LensrError, match="untrained architecture"):
        lensr.load_model("rcan-tiny")


# evaluate ---------------------------------------------------------------------------------


def test_evaluate_gives_the_cli_numbers_and_table(dataset, pairs, ckpt, tmp_path):
    from lensr.cli import app

    args = [
        "evaluate",
        "--data",
        str(dataset),
        "--models",
        str(ckpt),
        "--out",
        str(tmp_path / "cli"),
        "--no-uncertainty",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    cli = EvalResult.load(tmp_path / "cli")
    api = lensr.evaluate(dataset, ["bilinear", "bicubic", ckpt], uncertainty=False, progress=False)
    assert api.out_dir is None
    assert (tmp_path / "cli" / "table.md").read_text() == cli.markdown()
    for a, c in zip(api.metrics["models"], cli.metrics["models"], strict=True):
        assert a["name"] == c["name"] and a["scores"] == c["scores"]
    assert api.metrics["gains_vs_bicubic"] == cli.metrics["gains_vs_bicubic"]
    rows = {r.model: r for r in api.table("clean")}
    assert list(rows) == ["bilinear", "bicubic", "fsrcnn-tiny"]
    clean = api.metrics["models"][0]["scores"]["clean"]["overall"]
    assert rows["bilinear"].psnr == clean["psnr"]["mean"]
    assert rows["bicubic"].gain_psnr is None and rows["bilinear"].gain_psnr is not None
    # Arrays in: the same numbers as the dataset they came from.
    lr, hr, clean_hr, labels = pairs
    arrays = lensr.evaluate(
        lr,
        ["bilinear", "bicubic"],
        hr=hr,
        hr_clean=clean_hr,
        labels=labels,
        class_names=["none", "cdm", "axion"],
        uncertainty=False,
        progress=False,
        out=tmp_path / "arr",
    )

    def no_speed(rows):
        return [dataclasses.replace(r, images_per_s=0.0) for r in rows]

    assert no_speed(arrays.table()) == no_speed(api.table())[:2]
    assert (tmp_path / "arr" / "metrics.json").is_file()


def test_evaluate_bad_arrays_are_one_line(pairs):
    lr, hr = pairs[0], pairs[1]
    with pytest.raises(lensr.LensrError, match="needs hr="):
        lensr.evaluate(lr)
    with pytest.raises(lensr.LensrError, match="same leading shape"):
        lensr.evaluate(lr, hr=hr[:5])


def test_study_result_reads_a_run_folder(dataset, tmp_path):
    lensr.evaluate(
        dataset, out=tmp_path / "run" / "eval" / "sim-test", uncertainty=False, progress=False
    )
    study = StudyResult.load(tmp_path / "run")
    assert list(study.evaluations) == ["sim-test"] and study.report is None
    assert [r.model for r in study.table()] == ["bilinear", "bicubic"]
    assert "## Against the noise-free HR" in study._repr_markdown_()
    with pytest.raises(lensr.LensrError, match="no evaluation 'x'"):
        study.table("x")


# classify and train ---------------------------------------------------------------------------


def test_classify_arrays_and_a_dataset(dataset, pairs, tmp_path):
    torch.manual_seed(0)
    meta = {
        **META,
        "task": "classification",
        "class_names": ["none", "cdm", "axion"],
        "input_size": [32, 32],
    }
    clf = save_checkpoint(create_model("resnet18"), tmp_path / "clf.safetensors", metadata=meta)
    probs = lensr.classify(pairs[1][:6].reshape(2, 3, 32, 32), clf)
    assert probs.shape == (2, 3, 3)
    np.testing.assert_allclose(probs.sum(-1), 1, rtol=1e-6)
    result = lensr.classify(dataset, clf, sr=["bilinear"], progress=False, out=tmp_path / "c")
    assert [r.variant for r in result.table()] == ["HR", "LR (bicubic)", "SR: bilinear"]
    saved = json.loads((tmp_path / "c" / "classification.json").read_text())
    assert saved == result.metrics


def test_train_returns_the_run_and_checks_its_options(dataset, tmp_path):
    run = lensr.train(
        dataset,
        out=tmp_path / "run",
        model="fsrcnn-tiny",
        max_steps=2,
        val_check_interval=2,
        patch=8,
        batch_size=4,
        max_val_images=2,
        progress=False,
    )
    assert run.best.is_file() and "val_psnr" in run.best_metrics["metrics"]
    assert lensr.upscale(np.ones((16, 16), np.float32), model=run.best).shape == (32, 32)
    with pytest.raises(lensr.LensrError, match="unknown key 'paatch'"):
        lensr.train(dataset, out=tmp_path / "x", model="fsrcnn-tiny", paatch=8)
    with pytest.raises(lensr.LensrError, match="unknown model"):
        lensr.train(dataset, out=tmp_path / "y", model="no-such-net")
