"""One writer per output: while another run holds the lock of a command's output, the
command exits 2 with one line naming that run and leaves the output as it was.

Covers `lensr evaluate`, `classify eval|audit|train`, `report`, `finetune` and `adda`
(simulate, upscale and train have their own lock tests)."""

from __future__ import annotations

import json
import os

import pytest
import torch

from lensr.cli import main
from lensr.io import FileLock
from lensr.models import create_model
from lensr.models.checkpoint import save_checkpoint

NORM = {"normalization": {"name": "lr-percentile", "percentile": 99.5}}


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """8 classify-preset pairs, a classifier trained for one step, and SR checkpoints."""
    from lensr.sim.config import load_sim_config
    from lensr.sim.run import simulate
    from lensr.train.classifier import ClassifierConfig, train_classifier

    root = tmp_path_factory.mktemp("lock_inputs")
    data = simulate(load_sim_config("classify"), n=8, seed=0, out=root / "d.h5", progress=False)
    torch.set_num_threads(1)
    cfg = ClassifierConfig(
        model_kwargs={"small_input": False},
        batch_size=4,
        max_steps=1,
        val_fraction=0.25,
        bn_recalibration_images=4,
    )
    clf = train_classifier(cfg, data=data, out_dir=root / "clf", progress=False).best
    torch.manual_seed(0)
    sr = save_checkpoint(create_model("fsrcnn-tiny"), root / "sr.safetensors", metadata={**NORM})
    src = save_checkpoint(
        create_model("srresnet-tiny", scale=2, n_feats=8, n_blocks=2),
        root / "src.safetensors",
        metadata={**NORM, "metrics": {"val_psnr": 40.0}},
    )
    run = root / "run"
    run.mkdir()
    (run / "environment.json").write_text(json.dumps({"python": "3.11"}))
    return {"data": str(data), "clf": str(clf), "sr": str(sr), "src": str(src), "run": run}


def _command(name: str, inp: dict, out) -> list[str]:
    d, clf, sr, src = inp["data"], inp["clf"], inp["sr"], inp["src"]
    sr_args = ["--batch-size", "4", "--patch", "16"]
    return {
        "evaluate": ["evaluate", "--data", d, "--baselines", "bicubic", "--out", str(out)],
        "classify eval": ["classify", "eval", "--data", d, "--classifier", clf]
        + ["--sr", f"tiny={sr}", "--out", str(out)],
        "classify audit": ["classify", "audit", "--data", d, "--classifier", clf]
        + ["--sr-all", sr, "--sr-cdm-only", sr, "--out", str(out)],
        "classify train": ["classify", "train", "--data", d, "--out", str(out)],
        "report": ["report", str(inp["run"]), "--out", str(out)],
        "finetune": ["finetune", "--model", src, *sr_args, "--data", d, "--out", str(out)],
        "adda": ["adda", "--model", src, *sr_args, "--source", d, "--target", d]
        + ["--out", str(out), "--steps", "1", "--no-monitor"],
    }[name]


def _tree(root) -> dict[str, bytes | None]:
    """Every path under ``root`` with its bytes (None for folders)."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


@pytest.mark.parametrize(
    "name",
    [
        "evaluate",
        "classify eval",
        "classify audit",
        "classify train",
        "report",
        "finetune",
        "adda",
    ],
)
def test_a_locked_output_is_refused_naming_its_writer(name, inputs, tmp_path, monkeypatch, capsys):
    out = tmp_path / ("report.html" if name == "report" else "out")
    if name == "report":
        out.write_text("an earlier report")  # must survive
    lock = FileLock(out).acquire()  # another run writing `out` (this process, its own fd)
    try:
        before = _tree(tmp_path)
        monkeypatch.setattr("sys.argv", ["lensr", *_command(name, inputs, out)])
        with pytest.raises(SystemExit) as info:
            main()
        err = capsys.readouterr().err.strip()
        assert info.value.code == 2, err
        assert "\n" not in err
        assert f"{out} is being written by another run (pid {os.getpid()}: " in err
        assert _tree(tmp_path) == before
    finally:
        lock.release()
    assert not any(tmp_path.glob("*.lock"))
