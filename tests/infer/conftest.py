"""Fixtures shared by the inference tests: one torch thread, one tiny checkpoint."""

import pytest
import torch

from lensr.data.normalize import SPEC
from lensr.models import create_model
from lensr.models.checkpoint import save_checkpoint


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """Every test of this folder runs on one torch thread (tests/conftest.py)."""


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> str:
    """An untrained fsrcnn-tiny checkpoint (seed 0) with the project's normalisation."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "m.safetensors"
    save_checkpoint(create_model("fsrcnn-tiny"), path, metadata={"normalization": SPEC})
    return str(path)
