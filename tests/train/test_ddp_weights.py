"""DDP trains one model, not two: after a short run on two CPU processes (gloo) every rank
holds the same weights, and they moved from the start. For `lensr train` (SR),
`lensr train-physics` and `lensr classify train`. Ranks that trained independently on
their halves of the data would end with different weights and fail here."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).with_name("ddp_script.py")


def run_ddp(kind: str, data, out: Path) -> dict[str, dict]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), kind, str(data), str(out)],
        cwd=out.parent, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    dumps = Path(f"{out}-weights")
    return {name: torch.load(dumps / f"{name}.pt") for name in ("init", "rank0", "rank1")}


@pytest.mark.parametrize(
    "kind",
    ["sr", pytest.param("physics", marks=pytest.mark.slow),
     pytest.param("classify", marks=pytest.mark.slow)],
)  # fmt: skip
def test_ranks_end_with_identical_trained_weights(kind, tiny_h5, tmp_path):
    w = run_ddp(kind, tiny_h5, tmp_path / kind)
    assert w["rank0"].keys() == w["rank1"].keys() == w["init"].keys()
    for name in w["rank0"]:
        assert torch.equal(w["rank0"][name], w["rank1"][name]), name
    moved = [n for n in w["init"] if not torch.equal(w["init"][n], w["rank0"][n])]
    assert len(moved) > len(w["init"]) // 2, "training barely changed the weights"
