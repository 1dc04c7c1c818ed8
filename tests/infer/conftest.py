"""Fixtures shared by the inference tests: one torch thread, one tiny checkpoint."""

import pytest
import torch

from lensr.data.normalize import SPEC
from lensr.models import create_model
from lensr.models.checkpoint import save_checkpoint


@pytest.fixture(autouse=True)
def one_thread():
    # Others share the two cores: torch's default 2 threads would make convs crawl.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> str:
    """An untrained fsrcnn-tiny checkpoint (seed 0) with the project's normalisation."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "m.safetensors"
    save_checkpoint(create_model("fsrcnn-tiny"), path, metadata={"normalization": SPEC})
    return str(path)
