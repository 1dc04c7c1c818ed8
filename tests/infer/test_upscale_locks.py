"""`lensr upscale` with other runs around: one writer per OUT, only one's own bytes reported,
never another run's temporary file or folder touched."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from lensr.errors import LensrError
from lensr.infer.upscale import upscale_path
from lensr.io import file_lock, lock_path, temp_path


@pytest.fixture
def lr(tmp_path):
    path = tmp_path / "lr.npy"
    np.save(path, np.random.default_rng(0).random((2, 16, 16), dtype=np.float32))
    return path


@pytest.mark.parametrize("name", ["o.npy", "o.h5", "o.fits", "out"])
def test_a_second_writer_of_one_output_is_refused_naming_the_other(tmp_path, lr, name):
    out = tmp_path / name
    holder = textwrap.dedent(
        f"""
        import sys
        from lensr.io import file_lock
        with file_lock({str(out)!r}):
            print("locked", flush=True)
            sys.stdin.readline()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", holder], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        src = lr
        if name.endswith(".h5"):
            pytest.importorskip("h5py")
            src = _h5(tmp_path)
        elif name.endswith(".fits"):
            from astropy.io import fits

            src = tmp_path / "in.fits"
            fits.writeto(src, np.load(lr)[0])
        elif name == "out":
            src = tmp_path / "folder"
            src.mkdir()
            np.save(src / "a.npy", np.load(lr)[0])
        with pytest.raises(LensrError, match=f"another run \\(pid {proc.pid}: ") as err:
            upscale_path(src, model="bicubic", out=out, progress=False)
        assert "\n" not in str(err.value)
        assert not out.exists()
    finally:
        proc.stdin.write("\n")
        proc.stdin.close()
        proc.wait(timeout=30)


def _h5(tmp_path):
    from lensr.sim.config import load_sim_config
    from lensr.sim.run import simulate

    return simulate(load_sim_config("classify"), n=2, out=tmp_path / "d.h5", progress=False)


def test_npy_output_made_by_another_run_meanwhile_is_not_replaced(tmp_path, lr, monkeypatch):
    out = tmp_path / "o.npy"
    import lensr.infer.upscale as up

    real = up.check_output
    calls = {"n": 0}

    def racing(src, dst, kind, *, overwrite):
        # Another run finishes OUT between our first check and our lock.
        real(src, dst, kind, overwrite=overwrite)
        calls["n"] += 1
        if calls["n"] == 1:
            np.save(out, np.zeros(3))

    monkeypatch.setattr(up, "check_output", racing)
    with pytest.raises(LensrError, match="already exists"):
        upscale_path(lr, model="bicubic", out=out, progress=False)
    assert np.array_equal(np.load(out), np.zeros(3))  # the other run's bytes, untouched


def test_folder_output_leaves_other_runs_partial_folders_alone(tmp_path, lr):
    src = tmp_path / "in"
    src.mkdir()
    np.save(src / "a.npy", np.load(lr)[0])
    out = tmp_path / "out"
    theirs = out.with_name(out.name + ".partial")  # e.g. the user's own folder of that name
    theirs.mkdir()
    (theirs / "keep.txt").write_text("mine")
    live = temp_path(out)  # a live run's temporary folder (this process is alive)
    live.mkdir()
    dead = out.with_name(f".{out.name}.partial-999999999-deadbeef")  # a killed run's
    dead.mkdir()
    upscale_path(src, model="bicubic", out=out, progress=False)
    assert (theirs / "keep.txt").read_text() == "mine" and live.is_dir()
    assert not dead.exists()  # a dead run's leftovers are cleaned
    assert sorted(p.name for p in out.iterdir()) == ["a.npy"]
    assert not lock_path(out).exists()


def test_failure_removes_only_its_own_temporary(tmp_path, lr, monkeypatch):
    out = tmp_path / "o.npy"
    other = temp_path(out)  # another live run's temporary file
    other.write_bytes(b"theirs")
    import lensr.infer.files as files

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(files.np, "save", boom)
    with pytest.raises(RuntimeError):
        upscale_path(lr, model="bicubic", out=out, progress=False)
    assert other.read_bytes() == b"theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["lr.npy", other.name])
    with file_lock(out):  # and the lock was released
        pass
    os.remove(other)
