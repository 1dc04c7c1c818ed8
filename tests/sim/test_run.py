"""Reproducibility, parallelism, sharding, resuming and the HDF5 layout of `simulate`."""

import os
import stat

import numpy as np
import pytest

import lensr.sim.run as run
from lensr.data.store import open_dataset, partial_path
from lensr.data.writer import progress_path
from lensr.errors import LensrError
from lensr.io import Journal, file_lock, lock_path
from lensr.sim.run import merge, simulate

ARRAYS = ("hr", "lr", "hr_clean", "label", "params", "subhalos", "index")


def assert_same_data(a_path, b_path):
    with open_dataset(a_path) as a, open_dataset(b_path) as b:
        for key in ARRAYS:
            assert a.file[key][:].tobytes() == b.file[key][:].tobytes(), key
        assert a.attrs["config"] == b.attrs["config"]


def test_layout_and_provenance(tmp_path, tiny_config):
    out = simulate(tiny_config, n=6, seed=5, out=tmp_path / "d.h5", progress=False)
    with open_dataset(out) as ds:
        assert len(ds) == 6 and ds.hr_shape == (64, 64) and ds.lr_shape == (32, 32)
        assert ds.scale == 2 and ds.class_names == ["none", "cdm", "axion"]
        assert list(ds.labels) == [0, 1, 2, 0, 1, 2]
        assert ds.hr.dtype == np.float32 and ds.hr.chunks == (1, 64, 64)
        assert ds.params["theta_e"].min() >= 0.9 and ds.params["theta_e"].max() <= 1.5
        assert ds.attrs["seed"] == 5 and ds.attrs["lenstronomy_version"]
        assert ds.config["name"] == "classify"
        # Subhalos belong to cdm/axion images only, and the table is complete.
        sub = ds.subhalos()
        assert set(np.unique(sub["image"])) <= {1, 2, 4, 5}
        assert len(ds.subhalos(2)) == 100
        np.testing.assert_allclose(
            [ds.subhalos(i)["mass"].sum() for i in (1, 2)], ds.params["sub_mass"][[1, 2]]
        )
        item = ds[3]
        assert set(item) == {"hr", "lr", "label", "hr_clean"} and item["label"] == 0


def test_same_seed_is_byte_identical_and_other_seed_differs(tmp_path, tiny_config):
    a = simulate(tiny_config, n=4, seed=1, out=tmp_path / "a.h5", progress=False)
    b = simulate(tiny_config, n=4, seed=1, out=tmp_path / "b.h5", progress=False)
    c = simulate(tiny_config, n=4, seed=2, out=tmp_path / "c.h5", progress=False)
    assert_same_data(a, b)
    with open_dataset(a) as da, open_dataset(c) as dc:
        assert not np.array_equal(da.hr[:], dc.hr[:])


@pytest.mark.parametrize("adaptive", [0.0, 1e-3])
def test_parallel_equals_serial(tmp_path, tiny_config, adaptive):
    cfg = tiny_config.model_copy(update={"adaptive_threshold": adaptive})
    serial = simulate(cfg, n=20, seed=0, out=tmp_path / "s.h5", progress=False)
    parallel = simulate(cfg, n=20, seed=0, out=tmp_path / "p.h5", workers=2, progress=False)
    assert_same_data(serial, parallel)


def test_shards_merged_equal_one_run(tmp_path, tiny_config):
    whole = simulate(tiny_config, n=11, seed=3, out=tmp_path / "w.h5", progress=False)
    parts = [
        simulate(
            tiny_config, n=11, seed=3, shard=f"{k}/3", out=tmp_path / f"p{k}.h5", progress=False
        )
        for k in range(3)
    ]
    with open_dataset(parts[1]) as p:
        assert list(p.index) == [3, 4, 5, 6]
    merged = merge([parts[2], parts[0], parts[1]], tmp_path / "m.h5")
    assert_same_data(whole, merged)
    with pytest.raises(LensrError, match="missing"):
        merge(parts[:2], tmp_path / "m2.h5")
    with pytest.raises(LensrError, match="overlaps"):
        merge([parts[0], parts[0]], tmp_path / "m3.h5")
    assert not (tmp_path / "m2.h5").exists() and not partial_path(tmp_path / "m2.h5").exists()


def test_interrupted_run_leaves_no_file_and_resume_completes_it(tmp_path, tiny_config, monkeypatch):
    out = tmp_path / "r.h5"
    real = run._render_chunk
    calls = {"n": 0}

    def flaky(args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(args)

    monkeypatch.setattr(run, "_render_chunk", flaky)
    with pytest.raises(KeyboardInterrupt):
        simulate(tiny_config, n=40, seed=0, out=out, progress=False)
    assert not out.exists() and partial_path(out).exists()
    records = Journal(progress_path(out)).read()  # images durably done
    assert sum(len(r["done"]) for r in records) == 16
    with pytest.raises(LensrError, match="--resume"):
        simulate(tiny_config, n=40, seed=0, out=out, progress=False)
    with pytest.raises(LensrError, match="different seed"):
        simulate(tiny_config, n=40, seed=9, out=out, resume=True, progress=False)
    monkeypatch.setattr(run, "_render_chunk", real)
    simulate(tiny_config, n=40, seed=0, out=out, resume=True, progress=False)
    assert not partial_path(out).exists()
    reference = simulate(tiny_config, n=40, seed=0, out=tmp_path / "ref.h5", progress=False)
    assert_same_data(reference, out)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n": 0}, "--n must be at least 1"),
        ({"workers": 0}, "--workers"),
        ({"shard": "3/3"}, "0 <= K < N"),
        ({"shard": "a/b"}, "K/N"),
        ({"out": "x.txt"}, "should end in .h5"),
    ],
)
def test_bad_arguments(tmp_path, tiny_config, kwargs, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = {"n": 2, "out": tmp_path / "x.h5", "progress": False, **kwargs}
    with pytest.raises(LensrError, match=message):
        simulate(tiny_config, **args)


def test_output_path_errors(tmp_path, tiny_config):
    existing = tmp_path / "e.h5"
    existing.write_bytes(b"")
    with pytest.raises(LensrError, match="already exists"):
        simulate(tiny_config, n=1, out=existing, progress=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(LensrError, match="not a directory"):
        simulate(tiny_config, n=1, out=tmp_path / "file" / "d.h5", progress=False)
    folder = tmp_path / "folder.h5"
    folder.mkdir()
    with pytest.raises(LensrError, match="is a directory"):
        simulate(tiny_config, n=1, out=folder, progress=False)


def test_a_second_writer_of_the_same_file_is_refused(tmp_path, tiny_config):
    out = tmp_path / "d.h5"
    # e.g. another job of an array writing the same file
    with file_lock(out), pytest.raises(LensrError, match="being written by another run"):
        simulate(tiny_config, n=2, out=out, overwrite=True, progress=False)
    assert not out.exists() and not partial_path(out).exists()
    simulate(tiny_config, n=2, out=out, progress=False)
    assert out.exists() and not lock_path(out).exists()
    mode = stat.S_IMODE(out.stat().st_mode)
    assert mode == 0o666 & ~current_umask()


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_a_mixture_records_no_single_pixel_scale_and_one_variant_is_stored_resolved(tmp_path):
    """A dataset of several variants with different pixel scales has no one pixel scale
    (NaN attrs) and no per-image instrument; a preset narrowed to one variant is stored as
    that variant, so its attrs and instrument are the ones its images were rendered with."""
    from lensr.data.store import open_dataset
    from lensr.instrument.from_dataset import dataset_pixel_scale, has_simulated_instrument
    from lensr.train.streaming import load_preset_spec

    small = {"hr_size": 32}
    ground = load_preset_spec("generalist/ground*").model_copy(update=small)
    hsc = load_preset_spec("generalist/ground-hsc").model_copy(update=small)
    a = simulate(ground, n=2, out=tmp_path / "mix.h5", progress=False)
    b = simulate(hsc, n=2, out=tmp_path / "hsc.h5", progress=False)
    with open_dataset(a) as mix, open_dataset(b) as one:
        assert np.isnan(mix.attrs["lr_pixel_scale"]) and dataset_pixel_scale(mix) is None
        assert not has_simulated_instrument(mix)
        assert dataset_pixel_scale(one) == pytest.approx(0.168)
        assert has_simulated_instrument(one) and not one.config["variants"]
        assert one.config["lr"]["psf"]["type"] == "moffat"
