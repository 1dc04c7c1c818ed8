"""benchmarks/generalisation.py: which presets a model saw, and one tiny end-to-end table
(a checkpoint, bicubic and the noise floor scored on held-out pairs of one preset)."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

from lensr.models import create_model
from lensr.models.checkpoint import save_checkpoint

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "generalisation.py"


@pytest.fixture(scope="module")
def gen():
    saved = list(sys.path)
    spec = importlib.util.spec_from_file_location("generalisation", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    sys.path[:] = saved


def test_seen_follows_the_prior_globs(gen):
    prior = ["generalist/space*"]
    assert gen.seen_in("generalist/space-hst", prior)
    assert not gen.seen_in("generalist/ground-hsc", prior)
    assert not gen.seen_in("sim", prior)
    assert gen.seen_in("hsc-hst", ["generalist/ground*", "hsc-hst"])
    assert gen.seen_in("sim", ["sim"]) and gen.seen_in("generalist/x", ["generalist"])


def test_one_preset_table_end_to_end(gen, tmp_path, capsys):
    torch.manual_seed(0)
    meta = {"data": {"presets": ["generalist/space*"]}}
    ckpt = save_checkpoint(create_model("fsrcnn-tiny"), tmp_path / "m.safetensors", metadata=meta)
    out = tmp_path / "gen.json"
    argv = ["--checkpoint", str(ckpt), "--presets", "sim", "--n", "2", "--size", "32"]
    assert gen.main([*argv, "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert [r["model"] for r in rows] == ["bicubic", str(ckpt), "noise floor (clean HR)"]
    mine = rows[1]
    assert mine["seen"] is False and rows[0]["seen"] is None
    assert all(0 < mine[k] < 100 for k in ("psnr_clean", "psnr_noisy"))
    assert "| sim | bicubic |" in capsys.readouterr().out
