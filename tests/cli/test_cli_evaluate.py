"""`lensr evaluate` as a user runs it."""

import json

from lensr.cli import app
from lensr.cli.evaluate import model_specs
from lensr.errors import LensrError


def test_model_specs():
    assert model_specs("bilinear, bicubic", ["m.safetensors"]) == [
        "bilinear", "bicubic", "m.safetensors",
    ]  # fmt: skip
    assert model_specs("", []) == []


def test_cli_prints_the_table_and_writes_the_folder(tiny_h5, sr_ckpts, tmp_path, runner):
    out = tmp_path / "cli"
    args = ["evaluate", "--data", str(tiny_h5), "--baselines", "bicubic"]
    args += ["--models", sr_ckpts[0], "--models", "bilinear", "--out", str(out)]
    result = runner.invoke(app, [*args, "--max-images", "6", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "Against the noise-free HR" in result.output and "fsrcnn-tiny" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert [m["name"] for m in metrics["models"]] == ["bicubic", "fsrcnn-tiny", "bilinear"]
    assert metrics["n"] == 6 and metrics["examples"] == [1, 3, 5]


def test_cli_without_models_is_a_user_error(tiny_h5, tmp_path, runner):
    args = ["evaluate", "--data", str(tiny_h5), "--baselines", "", "--out", str(tmp_path)]
    result = runner.invoke(app, args)
    assert isinstance(result.exception, LensrError)
    assert "no models to evaluate" in str(result.exception)
