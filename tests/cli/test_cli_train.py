"""`lensr train`, `lr-sweep` and `train-physics` as a user runs them, and what every training
command shares: the runtime options and the "YAML file, then options" config merge."""

import json

import pytest

from lensr.cli import app, main
from lensr.cli.options import config_from, parse_devices
from lensr.train.config import TrainConfig

TRAINING = {
    "train": [],
    "lr-sweep": [],
    "train-physics": [],
    "finetune": ["--model", "m.safetensors"],
    "adda": ["--model", "m.safetensors", "--source", "s.h5", "--target", "t.h5"],
    "classify train": [],
}


def test_train_passes_options_over_the_yaml(tiny_h5, tmp_path, runner):
    config = tmp_path / "t.yaml"
    config.write_text("model: fsrcnn-tiny\nval_fraction: 0.25\nmax_val_images: 4\nseed: 5\n")
    args = ["train", "--data", str(tiny_h5), "--out", str(tmp_path / "run"), "--config"]
    args += [str(config), "--epochs", "1", "--batch-size", "4", "--patch", "16"]
    result = runner.invoke(app, [*args, "--seed", "3", "--devices", "1", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert "best:" in result.output and "val PSNR" in result.output
    saved = json.loads((tmp_path / "run" / "train_config.json").read_text())
    assert saved["seed"] == 3 and saved["devices"] == 1 and saved["val_fraction"] == 0.25
    assert saved["model"] == "fsrcnn-tiny" and saved["max_epochs"] == 1


def test_train_physics(tiny_h5, tmp_path, runner):
    config = tmp_path / "c.yaml"
    config.write_text(
        "batch_size: 4\nmax_val_images: 4\nval_fraction: 0.25\n"
        "model_kwargs: {n_feats: 16, n_blocks: 2, cg_iters: 4}\n"
    )
    args = ["train-physics", "--data", str(tiny_h5), "--out", str(tmp_path / "run")]
    args += ["--config", str(config), "--epochs", "1", "--refine-steps", "0"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "best:" in result.output and "LR chi2" in result.output
    assert (tmp_path / "run" / "best.safetensors").is_file()


@pytest.mark.parametrize("command", list(TRAINING))
@pytest.mark.parametrize("text", ["- 1\n- 2\n", "just words\n"])
def test_a_config_that_is_not_a_mapping_is_one_line_naming_the_file(
    tmp_path, monkeypatch, capsys, command, text
):
    config = tmp_path / "bad.yaml"
    config.write_text(text)
    args = [*command.split(), "--data", "d.h5", "--out", str(tmp_path / "o")]
    if command == "adda":
        args = args[:1] + args[3:]  # adda has --source/--target, not --data
    monkeypatch.setattr("sys.argv", ["lensr", *args, *TRAINING[command], "--config", str(config)])
    with pytest.raises(SystemExit) as info:
        main()
    err = capsys.readouterr().err
    assert info.value.code == 2
    assert f"{config}: expected a mapping of keys to values" in err and err.count("\n") == 1


def test_config_merge_and_devices(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    cfg = config_from(TrainConfig, empty, {"lr": 1e-3, "seed": None})
    assert cfg.lr == 1e-3 and cfg.seed == 0  # an empty file is an empty mapping
    assert config_from(TrainConfig, None, {"devices": 2}).devices == 2
    assert parse_devices("2") == 2 and parse_devices(" 0,1 ") == "0,1"
    assert parse_devices(None) is None
