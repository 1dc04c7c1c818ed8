"""Shared fixtures: tiny simulation configs that render in milliseconds."""

import pytest

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
