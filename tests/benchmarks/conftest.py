"""The benchmark scripts, loaded as modules (they are scripts, not a package)."""

import importlib.util
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@contextmanager
def _load(name: str):
    """``benchmarks/<name>.py`` as a module named ``name``, for the duration of the block
    (``sys.path`` and ``sys.modules`` restored after)."""
    saved = list(sys.path)
    spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path[:] = saved
        sys.modules.pop(name, None)


@pytest.fixture(scope="session")
def benchmark_script():
    """``with benchmark_script("generalisation") as module: ...``"""
    return _load
