"""Shared fixtures: tiny simulation configs that render in milliseconds, and one torch thread."""

import pytest
import torch

from lensr.sim.config import SimConfig, load_sim_config


@pytest.fixture
def tiny_config() -> SimConfig:
    """The classify preset (64 px HR) with white noise: fast and physically complete."""
    return load_sim_config("classify")


@pytest.fixture
def observed_tiny() -> SimConfig:
    """The observed preset shrunk to 64 px HR: every nuisance (Moffat PSF, lens light,
    offsets, correlated noise, cosmic rays) switched on, quickly."""
    cfg = load_sim_config("observed")
    return cfg.model_copy(update={"hr_size": 64, "hr_pixel_scale": 0.08})


@pytest.fixture
def one_thread():
    """One torch thread for the test: with both cores busy (CI, parallel jobs) torch's
    default threads make small convolutions crawl. Modules opt in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``, folders with an autouse
    fixture that requests it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
