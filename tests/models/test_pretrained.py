"""Pretrained models shipped by name (lensr/weights/, lensr.models.pretrained)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lensr.cli import app
from lensr.errors import LensrError
from lensr.models import create_model, pretrained
from lensr.models.checkpoint import resolve_model, save_checkpoint

CARD_KEYS = {
    "prior",
    "steps",
    "images_seen",
    "training_time_s",
    "hardware",
    "scores",
    "prior_range",
}


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A weights folder holding one model, `space-x2`, in place of the package's."""
    torch.manual_seed(0)
    card = {"prior": "test", "steps": 7, "images_seen": 112, "prior_range": {"noise_rel": [0, 1]}}
    meta = {"normalization": {"name": "lr-percentile", "percentile": 99.5}, "card": card}
    save_checkpoint(create_model("fsrcnn-tiny"), tmp_path / "space-x2.safetensors", metadata=meta)
    (tmp_path / "orphan.safetensors").write_bytes(b"")  # no sidecar: not a model
    monkeypatch.setattr(pretrained, "weights_dir", lambda: tmp_path)
    return tmp_path


def test_names_and_paths(shipped):
    assert pretrained.pretrained_names() == ["space-x2"]
    assert pretrained.pretrained_path("space-x2") == shipped / "space-x2.safetensors"
    assert pretrained.pretrained_path("ground-x2") is None
    assert pretrained.pretrained_path("x/space-x2") is None


def test_resolve_model_accepts_the_name(shipped):
    model = resolve_model("space-x2")
    assert model.metadata["card"]["steps"] == 7 and model.scale == 2
    with pytest.raises(LensrError, match="neither a baseline"):
        resolve_model("ground-x2")


def test_cli_lists_and_upscales_with_the_name(shipped, tmp_path):
    runner = CliRunner()
    listing = runner.invoke(app, ["models"])
    assert listing.exit_code == 0 and "space-x2" in listing.output
    np.save(tmp_path / "lr.npy", np.random.default_rng(0).random((16, 16), dtype=np.float32))
    res = runner.invoke(
        app,
        [
            "upscale",
            str(tmp_path / "lr.npy"),
            "--model",
            "space-x2",
            "--out",
            str(tmp_path / "sr.npy"),
        ],
    )
    assert res.exit_code == 0, res.output
    assert np.load(tmp_path / "sr.npy").shape == (32, 32)


@pytest.mark.parametrize("name", pretrained.pretrained_names())
def test_shipped_models_are_small_and_carded(name):
    path = pretrained.pretrained_path(name)
    assert path.stat().st_size <= 5 * 2**20
    card = json.loads(path.with_suffix(".json").read_text())["card"]
    assert set(card) >= CARD_KEYS and not card.get("smoke")
    assert name in pretrained.NAMES


def test_a_smoke_run_never_exports_into_the_package(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "pretrain", Path(__file__).resolve().parents[2] / "benchmarks" / "pretrain.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    save_checkpoint(
        create_model("fsrcnn-tiny"), tmp_path / "best.safetensors", metadata={"step": 40}
    )
    (tmp_path / "pretrain_time.json").write_text('{"seconds": 1, "hardware": "cpu"}')
    shipped = pretrained.weights_dir() / "space-x2.safetensors"
    before = shipped.read_bytes() if shipped.exists() else None
    with pytest.raises(LensrError, match="may not ship"):
        module.export("space-x2", tmp_path, pretrained.weights_dir(), n_test=1, smoke=True)
    # A long run below bicubic on its own prior may not ship either (an untrained net).
    save_checkpoint(
        create_model("fsrcnn-tiny"), tmp_path / "best.safetensors", metadata={"step": 9000}
    )
    with pytest.raises(LensrError, match="below bicubic"):
        module.export("space-x2", tmp_path, pretrained.weights_dir(), n_test=2, smoke=False)
    assert (shipped.read_bytes() if shipped.exists() else None) == before


@pytest.mark.parametrize("name", pretrained.pretrained_names())
def test_shipped_models_beat_bicubic_on_held_out_pairs_of_their_prior(name):
    """On 4 pairs of a held-out seed of each preset it trained on, a shipped model beats
    bicubic against the noise-free HR by at least 0.5 dB on average."""
    from lensr.eval.metrics import score_images
    from lensr.infer.arrays import upscale_array
    from lensr.sim.render import Renderer
    from lensr.train.streaming import TEST_SEED_OFFSET, load_preset_spec

    model, bicubic = resolve_model(name), resolve_model("bicubic")
    for spec in pretrained.model_card(name)["card"]["presets"].split(","):
        renderer = Renderer(load_preset_spec(spec))
        pairs = [renderer.render(7 + TEST_SEED_OFFSET, i) for i in range(4)]
        lr = np.stack([p.lr for p in pairs])
        clean = np.stack([p.hr_clean for p in pairs])
        gain = [
            score_images(upscale_array(lr, m), clean)["psnr"].mean() for m in (model, bicubic)
        ]
        assert gain[0] > gain[1] + 0.5, (spec, gain)


@pytest.mark.parametrize("name", pretrained.pretrained_names())
def test_shipped_models_carry_a_sigma_calibration_that_covers(name):
    """`lensr upscale --uncertainty --model NAME` applies the card's calibration: on 4
    pairs of another held-out seed of each preset of its prior, about 68 % of the pixels
    lie within the calibrated 1 sigma of the noise-free HR (the raw dihedral sigma is
    overconfident)."""
    from lensr.infer.uncertainty import calibration, calibration_of, predict_with_uncertainty
    from lensr.sim.render import Renderer
    from lensr.train.streaming import TEST_SEED_OFFSET, load_preset_spec

    model = resolve_model(name)
    fit = calibration_of(model)
    assert fit is not None and fit["terms"] == ["sigma", "lr_noise", "abs_mean"]
    assert 0.63 <= fit["coverage"]["within_1sigma"] <= 0.73
    for spec in pretrained.model_card(name)["card"]["presets"].split(","):
        renderer = Renderer(load_preset_spec(spec).model_copy(update={"hr_size": 64}))
        pairs = [renderer.render(11 + TEST_SEED_OFFSET, i) for i in range(4)]
        lr, clean = np.stack([p.lr for p in pairs]), np.stack([p.hr_clean for p in pairs])
        mean, sigma = predict_with_uncertainty(lr, [model])
        raw = predict_with_uncertainty(lr, [model], calibrate=False)[1]
        cal, unc = calibration(mean, sigma, clean), calibration(mean, raw, clean)
        assert 0.5 <= cal["within_1sigma"] <= 0.85, (spec, cal)
        assert cal["within_1sigma"] > unc["within_1sigma"], (spec, cal, unc)
