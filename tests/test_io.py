"""The atomic writer and the output lock (lensr.io)."""

import json
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from lensr.errors import LensrError
from lensr.io import (
    atomic_open,
    atomic_path,
    commit,
    file_lock,
    lock_path,
    temp_path,
    write_bytes,
    write_json,
    write_text,
)


@pytest.fixture
def umask022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_writes_and_replaces(tmp_path):
    path = tmp_path / "sub" / "a.json"
    assert write_json(path, {"x": 1}) == path
    assert json.loads(path.read_text()) == {"x": 1}
    write_text(path, "new")
    assert path.read_text() == "new"
    write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.json"]


def test_json_matches_json_dumps(tmp_path):
    obj = {"b": [1.5, None], "a": "é"}
    write_json(tmp_path / "a.json", obj)
    assert (tmp_path / "a.json").read_text() == json.dumps(obj, indent=2)


def test_crash_mid_write_keeps_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "table.md"
    path.write_text("old")
    with pytest.raises(RuntimeError), atomic_open(path, "w") as f:
        f.write("half of the new")
        f.flush()
        raise RuntimeError("crash")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]


def test_interrupt_by_name_keeps_the_old_file(tmp_path):
    path = tmp_path / "fig.png"
    path.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt), atomic_path(path) as tmp:
        assert tmp.parent == tmp_path and tmp.name.endswith(".png") and tmp.name.startswith(".")
        tmp.write_bytes(b"partial")
        raise KeyboardInterrupt
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fig.png"]


def test_killed_process_leaves_the_old_file_intact(tmp_path):
    # A process that dies mid-write (no cleanup at all) never touches the final name.
    path = tmp_path / "data.bin"
    path.write_bytes(b"old")
    code = textwrap.dedent(
        f"""
        import os
        from lensr.io import atomic_open
        with atomic_open({str(path)!r}) as f:
            f.write(b"new" * 1000)
            f.flush()
            os._exit(3)
        """
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 3
    assert path.read_bytes() == b"old"


def test_nothing_written_is_an_error(tmp_path):
    with pytest.raises(LensrError, match="nothing was written"), atomic_path(tmp_path / "x.txt"):
        pass
    assert list(tmp_path.iterdir()) == []


def test_mode_is_ordinary_under_umask_022(tmp_path, umask022):
    write_bytes(tmp_path / "a.bin", b"1")
    with atomic_path(tmp_path / "b.txt") as tmp:
        tmp.write_text("2")  # the library's own open(): the mode is kept
    for name in ("a.bin", "b.txt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644


def test_mode_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o640


def test_temp_names_are_unique_hidden_and_keep_the_suffixes(tmp_path):
    a, b = temp_path(tmp_path / "cut.fits.gz"), temp_path(tmp_path / "cut.fits.gz")
    assert a != b and a.parent == tmp_path
    assert a.name.startswith(".cut.partial-") and a.name.endswith(".fits.gz")


def test_failure_cleans_only_its_own_temporary(tmp_path):
    path = tmp_path / "out.txt"
    # Another writer's temporary file and a file that merely looks like one.
    other = temp_path(path)
    other.write_text("someone else's")
    lookalike = tmp_path / "out.txt.partial"
    lookalike.write_text("not ours")
    with pytest.raises(ValueError), atomic_open(path, "w") as f:
        f.write("x")
        raise ValueError
    assert other.read_text() == "someone else's" and lookalike.read_text() == "not ours"
    assert not path.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([other.name, lookalike.name])


def test_commit_publishes_a_temporary_file(tmp_path):
    tmp, path = tmp_path / "x.partial", tmp_path / "x"
    tmp.write_text("done")
    assert commit(tmp, path) == path
    assert path.read_text() == "done" and not tmp.exists()


def test_second_locker_is_refused_with_one_line(tmp_path):
    path = tmp_path / "data.h5"
    with file_lock(path):
        assert lock_path(path).exists()
        with pytest.raises(LensrError, match="data.h5 is being written by another") as err:
            file_lock(path).acquire()
        assert "\n" not in str(err.value)
        with pytest.raises(LensrError, match="another run"), atomic_open(path, lock=True):
            pass
    assert not lock_path(path).exists() and not path.exists()
    with file_lock(path):  # free again
        pass


def test_lock_held_by_another_process(tmp_path):
    path = tmp_path / "data.h5"
    code = textwrap.dedent(
        f"""
        import sys
        from lensr.io import file_lock
        with file_lock({str(path)!r}):
            print("locked", flush=True)
            sys.stdin.readline()
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(LensrError, match="another run") as err:
            write_text(path, "x", lock=True)
        assert f"pid {proc.pid}: " in str(err.value)  # names the other run
        assert "\n" not in str(err.value)
        assert not path.exists() and not list(tmp_path.glob(".data.partial*"))
    finally:
        proc.stdin.write("\n")
        proc.stdin.close()
        proc.wait(timeout=30)
    write_text(path, "x", lock=True)
    assert path.read_text() == "x" and not lock_path(path).exists()


def test_stale_lock_file_of_a_dead_process_does_not_block(tmp_path):
    path = tmp_path / "out.txt"
    lock_path(path).write_text("")  # left by a killed process: the file, not the lock
    write_text(path, "x", lock=True)
    assert path.read_text() == "x" and not lock_path(path).exists()


def test_lock_error_on_unwritable_folder(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):  # root ignores modes
            pytest.skip("running as root")
        with pytest.raises(LensrError, match="cannot lock"):
            file_lock(folder / "x").acquire()
    finally:
        folder.chmod(0o700)


def test_a_lock_removes_the_empty_folders_it_created(tmp_path):
    path = tmp_path / "a" / "b" / "out.npy"
    with file_lock(path):
        assert lock_path(path).exists()
    assert list(tmp_path.iterdir()) == []  # a refused or failed run leaves no folders
    with file_lock(path):
        write_bytes(path, b"x")
    assert path.read_bytes() == b"x" and not lock_path(path).exists()  # kept: not empty


def test_stale_temporaries_of_dead_processes_only_are_removed(tmp_path):
    from lensr.io import remove_stale_temps

    path = tmp_path / "my-data.h5"
    dead = tmp_path / ".my-data.partial-999999999-abcd.h5"
    dead.write_bytes(b"x")
    live = temp_path(path)
    live.write_bytes(b"y")
    other = tmp_path / ".other.partial-999999999-abcd.h5"
    other.write_bytes(b"z")
    assert remove_stale_temps(path) == [dead]
    assert live.exists() and other.exists() and not dead.exists()


def test_journal_keeps_whole_records_only(tmp_path):
    from lensr.io import Journal

    j = Journal(tmp_path / "p.progress")
    j.append({"done": [1]})
    with open(j.path, "ab") as f:  # a writer killed mid-append
        f.write(b"12345678 {\"done\": [2")
    assert Journal(j.path).read() == [{"done": [1]}]
    j2 = Journal(j.path)
    j2.append({"done": [3]})  # the torn tail is cut off first
    assert Journal(j.path).read() == [{"done": [1]}, {"done": [3]}]
