"""kill -9 of a running `lensr simulate` at random instants, then --resume: the result must
hold exactly the arrays of an uninterrupted run (real subprocesses, real SIGKILLs)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from lensr.data.store import open_dataset, partial_path
from lensr.data.writer import progress_path

ARRAYS = ("hr", "lr", "hr_clean", "label", "params", "subhalos", "index")


def _command(out: Path, n: int, workers: int, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "lensr.cli", "simulate", "--preset", "classify", "--n", str(n),
        "--seed", "7", "--workers", str(workers), "--out", str(out), *extra,
    ]  # fmt: skip


def _started(out: Path) -> bool:
    # The partial file, or the temporary file it is built in, exists.
    return any(p.name.startswith((out.name, f".{out.stem}.")) for p in out.parent.iterdir())


def _run_killed(out: Path, n: int, workers: int, rng: random.Random, env: dict) -> bool:
    """Start (or resume) the run and SIGKILL its process group at a random instant once it
    writes; True if it finished before the kill."""
    proc = subprocess.Popen(
        _command(out, n, workers, "--resume"),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    deadline = time.monotonic() + 120
    while not _started(out) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(rng.uniform(0.0, 0.6) if rng.random() < 0.8 else rng.uniform(0.0, 0.03))
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    err = proc.stderr.read().decode()
    proc.stderr.close()
    if proc.returncode == 0:
        return True
    assert proc.returncode == -signal.SIGKILL, err  # killed, never a failure of its own
    return False


def _kill_and_resume(tmp_path: Path, *, n: int, kills: int, workers: int, seed: int) -> int:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    ref = tmp_path / "ref.h5"
    subprocess.run(_command(ref, n, workers), check=True, capture_output=True, env=env)
    out = tmp_path / "killed" / "k.h5"
    out.parent.mkdir()
    rng = random.Random(seed)
    done_kills = 0
    for _ in range(kills):
        if _run_killed(out, n, workers, rng, env):
            break
        done_kills += 1
    result = subprocess.run(_command(out, n, workers, "--resume"), capture_output=True, env=env)
    assert result.returncode == 0, result.stderr.decode()
    with open_dataset(ref) as a, open_dataset(out) as b:
        for key in ARRAYS:
            assert a.file[key][:].tobytes() == b.file[key][:].tobytes(), key
        assert np.all(np.abs(b.hr[:]).reshape(n, -1).max(axis=1) > 0)  # no zero images
    # Nothing left behind: no partial file, journal, lock or half-built temporary.
    assert sorted(p.name for p in out.parent.iterdir()) == ["k.h5"]
    assert not partial_path(out).exists() and not progress_path(out).exists()
    return done_kills


# A kill at exactly the dangerous instants, injected in a real subprocess: SIGKILL of itself
# on the k-th call of the named step.
_INJECT = """
import os, signal, sys
import h5py
from lensr.data import writer as W
from lensr.io import Journal
point, k, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
calls = [0]
def die():
    os.kill(os.getpid(), signal.SIGKILL)
def before(owner, name):
    real = getattr(owner, name)
    def wrapped(*a, **kw):
        calls[0] += 1
        if calls[0] == k:
            die()
        return real(*a, **kw)
    setattr(owner, name, wrapped)
if point == "h5flush":      # pixels written, not yet flushed out of HDF5's caches
    before(h5py.File, "flush")
elif point == "journal":    # pixels durable, record not yet written
    before(Journal, "append")
elif point == "commit":     # partial built but not yet renamed; or finished, not published
    before(W, "commit")
elif point == "torn":       # half a record on disk
    real = Journal.append
    def torn(self, record):
        calls[0] += 1
        if calls[0] == k:
            with open(self.path, "ab") as f:
                f.write(b"0badc0de {\\"done\\": [1, 2")
            die()
        return real(self, record)
    Journal.append = torn
elif point == "journaled":  # right after a record is durable
    real = Journal.append
    def journaled(self, record):
        real(self, record)
        calls[0] += 1
        if calls[0] == k:
            die()
    Journal.append = journaled
elif point == "finishing":  # the finish started modifying the partial file
    real = Journal.append
    def finishing(self, record):
        real(self, record)
        if record.get("finishing"):
            die()
    Journal.append = finishing
sys.argv = ["lensr", *argv]
from lensr.cli import main
main()
"""


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    ref = tmp_path_factory.mktemp("ref") / "ref.h5"
    subprocess.run(_command(ref, 24, 1), check=True, capture_output=True)
    return ref


_SLOW = pytest.mark.slow


@pytest.mark.parametrize(
    ("point", "k"),
    [("h5flush", 2), ("journaled", 2), ("torn", 3), ("finishing", 1),
     pytest.param("h5flush", 3, marks=_SLOW), pytest.param("journal", 2, marks=_SLOW),
     pytest.param("commit", 1, marks=_SLOW), pytest.param("commit", 2, marks=_SLOW)],
)  # fmt: skip
def test_kill_at_each_dangerous_step_then_resume(tmp_path, reference, point, k):
    n, ref, out = 24, reference, tmp_path / "k" / "k.h5"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    out.parent.mkdir()
    args = _command(out, n, 1)[3:]
    killed = subprocess.run(
        [sys.executable, "-c", _INJECT, point, str(k), *args], capture_output=True, env=env
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert not out.exists() or point == "finishing"
    if partial_path(out).exists():  # a plain rerun points to --resume, which works
        plain = subprocess.run(_command(out, n, 1), capture_output=True, env=env)
        assert plain.returncode == 2 and b"--resume" in plain.stderr
    result = subprocess.run(_command(out, n, 1, "--resume"), capture_output=True, env=env)
    assert result.returncode == 0, result.stderr.decode()
    with open_dataset(ref) as a, open_dataset(out) as b:
        for key in ARRAYS:
            assert a.file[key][:].tobytes() == b.file[key][:].tobytes(), key
    assert sorted(p.name for p in out.parent.iterdir()) == ["k.h5"]


def test_kill_9_then_resume_gives_the_uninterrupted_arrays(tmp_path):
    kills = _kill_and_resume(tmp_path, n=48, kills=3, workers=2, seed=1)
    assert kills >= 1


@pytest.mark.slow
def test_fifty_kills_then_resume_gives_the_uninterrupted_arrays(tmp_path):
    kills = _kill_and_resume(tmp_path, n=400, kills=60, workers=2, seed=2)
    assert kills >= 50


def test_same_seed_gives_byte_identical_files(tmp_path, monkeypatch):
    from lensr.sim.config import load_sim_config
    from lensr.sim.run import simulate

    cfg = load_sim_config("classify")
    a, b = (simulate(cfg, n=3, seed=4, out=tmp_path / f"{k}.h5", progress=False) for k in "ab")
    assert a.read_bytes() == b.read_bytes()  # no creation time, sorted attributes
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    c = simulate(cfg, n=3, seed=4, out=tmp_path / "c.h5", progress=False)
    with open_dataset(c) as ds:
        assert ds.attrs["created"] == "2023-11-14T22:13:20+00:00"
