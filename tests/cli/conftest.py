"""Fixtures of the CLI tests: a tiny simulated dataset, tiny checkpoints, a Typer runner."""

import pytest
import torch
from typer.testing import CliRunner

from lensr.models import create_model
from lensr.models.checkpoint import save_checkpoint

META = {"normalization": {"name": "lr-percentile", "percentile": 99.5}}
"""Checkpoint metadata: the normalisation lensr's SR models train with."""


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test of this folder runs on one torch thread (tests/conftest.py)."""


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


@pytest.fixture(scope="session")
def tiny_h5(tmp_path_factory):
    """24 classify-preset pairs (64 px HR, 32 px LR), classes cycling none/cdm/axion."""
    from lensr.sim.config import load_sim_config
    from lensr.sim.run import simulate

    path = tmp_path_factory.mktemp("data") / "tiny.h5"
    return simulate(load_sim_config("classify"), n=24, seed=0, out=path, progress=False)


@pytest.fixture(scope="session")
def sr_ckpts(tmp_path_factory) -> list[str]:
    """Two untrained x2 fsrcnn-tiny checkpoints (seeds 0 and 1), in run folders so that
    their display names are ``fsrcnn-tiny`` and ``other``."""
    root = tmp_path_factory.mktemp("ckpts")
    out = []
    for seed, name in ((0, "fsrcnn-tiny"), (1, "other")):
        torch.manual_seed(seed)
        path = root / "runs" / "a" / "models" / name / "best.safetensors"
        out.append(str(save_checkpoint(create_model("fsrcnn-tiny"), path, metadata=META)))
    return out
