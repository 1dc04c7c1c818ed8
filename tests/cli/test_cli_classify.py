"""`lensr classify train|eval|audit` as a user runs them."""

import json

import pytest
import torch
import yaml

from lensr.cli import app
from lensr.cli.classify import parse_sr_specs
from lensr.errors import LensrError
from lensr.models import create_model
from lensr.models.checkpoint import save_checkpoint

NAMES = ["none", "cdm", "axion"]


def test_parse_sr_specs():
    assert parse_sr_specs(["a=x.safetensors", "bilinear"]) == {
        "a": "x.safetensors",
        "bilinear": "bilinear",
    }
    with pytest.raises(LensrError, match="given twice"):
        parse_sr_specs(["a=x", "a=y"])
    with pytest.raises(LensrError, match="expected NAME=SPEC"):
        parse_sr_specs(["=x"])


def test_commands(tiny_h5, tmp_path, runner):
    config = tmp_path / "clf.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "model_kwargs": {"small_input": False},
                "max_steps": 1,
                "val_fraction": 0.25,
                "bn_recalibration_images": 8,
            }
        )
    )
    args = ["classify", "train", "--data", str(tiny_h5), "--out", str(tmp_path / "clf")]
    args += ["--config", str(config), "--batch-size", "8", "--seed", "1"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "validation accuracy" in result.output
    saved = json.loads((tmp_path / "clf" / "train_config.json").read_text())
    assert saved["batch_size"] == 8 and saved["seed"] == 1 and saved["max_steps"] == 1
    classifier = str(tmp_path / "clf" / "best.safetensors")

    torch.manual_seed(0)
    sr_all, sr_cdm = (
        save_checkpoint(
            create_model("fsrcnn-tiny"), tmp_path / f"{name}.safetensors", metadata={"data": data}
        )
        for name, data in (("sr", {"classes": NAMES}), ("cdm", {"classes": ["cdm"]}))
    )
    args = ["classify", "eval", "--data", str(tiny_h5), "--classifier", classifier]
    args += ["--sr", f"tiny={sr_all}", "--out", str(tmp_path / "e"), "--max-images", "6"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "SR: tiny" in result.output
    assert json.loads((tmp_path / "e" / "classification.json").read_text())["n"] == 6

    args = ["classify", "audit", "--data", str(tiny_h5), "--classifier", classifier]
    args += ["--sr-all", str(sr_all), "--sr-cdm-only", str(sr_cdm)]
    result = runner.invoke(app, args + ["--out", str(tmp_path / "a"), "--max-images", "6"])
    assert result.exit_code == 0, result.output
    assert "images change class" in result.output
    assert (tmp_path / "a" / "hallucination.png").is_file()

    args = ["classify", "train", "--data", str(tiny_h5), "--out", str(tmp_path / "b")]
    bad = runner.invoke(app, [*args, "--config", str(tmp_path / "none.yaml")])
    assert isinstance(bad.exception, LensrError) and "does not exist" in str(bad.exception)


def test_classify_without_a_subcommand_shows_its_help(runner):
    result = runner.invoke(app, ["classify"])
    assert "train" in result.output and "audit" in result.output
