"""The many-device path without GPUs: DDP with two CPU processes (gloo), through the CLI
as a user launches it (Lightning re-runs the command for rank 1)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lensr.models.checkpoint import load_checkpoint

DDP = ["--accelerator", "cpu", "--devices", "2", "--strategy", "ddp", "--threads", "1"]


def lensr(*args: str, cwd) -> subprocess.CompletedProcess:
    # The installed console script: Lightning starts rank 1 by re-running the same command.
    script = Path(sys.executable).parent / "lensr"
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [str(script), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def sr_run(tiny_h5, tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp") / "sr"
    args = ["train", "--data", str(tiny_h5), "--out", str(out), "--model", "fsrcnn-tiny"]
    done = lensr(*args, "--epochs", "2", "--patch", "16", *DDP, cwd=out.parent)
    return out, done


def test_sr_training_runs_on_two_processes_and_reports_once(sr_run):
    out, done = sr_run
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("best: ") == 1  # rank 1 trains but does not report
    model, meta = load_checkpoint(out / "best.safetensors")
    assert meta["training"]["strategy"] == "ddp" and meta["training"]["devices"] == 2
    assert meta["epoch"] == 1
    assert (out / "lightning" / "last.ckpt").is_file()  # the state for --resume


def test_finetune_and_adda_run_on_two_processes(sr_run, tiny_h5, tmp_path):
    source = sr_run[0] / "best.safetensors"
    ft = lensr(
        "finetune", "--model", str(source), "--data", str(tiny_h5), "--out", str(tmp_path / "ft"),
        "--stage1-epochs", "1", "--stage2-epochs", "1", "--patch", "16", *DDP, cwd=tmp_path,
    )  # fmt: skip
    assert ft.returncode == 0, ft.stderr[-2000:]
    assert ft.stdout.count("wrote ") == 1
    meta = json.loads((tmp_path / "ft" / "best.json").read_text())
    assert set(meta["stages"]) == {"stage1", "stage2"}
    adda = lensr(
        "adda", "--model", str(source), "--source", str(tiny_h5), "--target", str(tiny_h5),
        "--out", str(tmp_path / "adda"), "--steps", "4", "--patch", "16", *DDP, cwd=tmp_path,
    )  # fmt: skip
    assert adda.returncode == 0, adda.stderr[-2000:]
    assert (tmp_path / "adda" / "best.safetensors").is_file()
