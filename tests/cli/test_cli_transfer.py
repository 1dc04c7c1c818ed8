"""`lensr finetune` and `lensr adda` as a user runs them."""

import json

import pytest
import torch

from lensr.cli import app
from lensr.errors import LensrError
from lensr.models import create_model
from lensr.models.checkpoint import save_checkpoint

NORM = {"normalization": {"name": "lr-percentile", "percentile": 99.5}}


@pytest.fixture(scope="module")
def target_h5(tmp_path_factory):
    """24 `observed`-preset pairs shrunk to 64 px HR / 32 px LR, like `tiny_h5`."""
    from lensr.sim.config import load_sim_config
    from lensr.sim.run import simulate

    cfg = load_sim_config("observed").model_copy(update={"hr_size": 64, "hr_pixel_scale": 0.08})
    path = tmp_path_factory.mktemp("target") / "observed.h5"
    return simulate(cfg, n=24, seed=1, out=path, progress=False)


@pytest.fixture(scope="module")
def source_ckpt(tmp_path_factory):
    """A small SRResNet with batch norm (random weights stand in for a trained model)."""
    torch.manual_seed(0)
    model = create_model("srresnet-tiny", scale=2, n_feats=8, n_blocks=2)
    path = tmp_path_factory.mktemp("source") / "src.safetensors"
    return save_checkpoint(model, path, metadata={**NORM, "metrics": {"val_psnr": 40.0}})


def test_commands(source_ckpt, tiny_h5, target_h5, tmp_path, runner):
    config = tmp_path / "ft.yaml"
    config.write_text("val_fraction: 0.25\nmax_val_images: 4\nstage2_epochs: 5\n")
    common = ["--model", str(source_ckpt), "--batch-size", "4", "--patch", "16"]
    result = runner.invoke(
        app,
        ["finetune", *common, "--data", str(target_h5), "--out", str(tmp_path / "ft")]
        + ["--config", str(config), "--stage1-epochs", "1", "--stage2-epochs", "0"],
    )
    assert result.exit_code == 0, result.output
    assert "val PSNR" in result.output
    meta = json.loads((tmp_path / "ft" / "best.json").read_text())
    assert meta["finetune"]["stage2_epochs"] == 0 and meta["finetune"]["val_fraction"] == 0.25
    assert set(meta["stages"]) == {"stage1"}

    result = runner.invoke(
        app,
        ["adda", *common, "--source", str(tiny_h5), "--target", str(target_h5)]
        + ["--out", str(tmp_path / "adda"), "--steps", "2", "--no-monitor"],
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "adda" / "best.safetensors").is_file()

    result = runner.invoke(
        app, ["finetune", "--model", "bicubic", "--data", str(target_h5), "--out", str(tmp_path)]
    )
    assert isinstance(result.exception, LensrError)
