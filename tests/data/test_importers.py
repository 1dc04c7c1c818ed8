import json

import numpy as np
import pytest
from astropy.io import fits

from lensr.data.import_layouts import LR_SOURCE_BLOCK_MEAN, UNITS
from lensr.data.importers import import_dataset
from lensr.data.store import open_dataset, partial_path
from lensr.errors import LensrError


def _img(shape, seed):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def _make_pairs(
    root,
    n=3,
    *,
    hr=(1, 8, 8),
    lr=(1, 4, 4),
    hr_name="sample{}.npy",
    lr_name="sample{}.npy",
    start=1,
):
    (root / "HR").mkdir(parents=True, exist_ok=True)
    (root / "LR").mkdir(parents=True, exist_ok=True)
    arrays = {}
    for i in range(start, start + n):
        arrays[i] = (_img(hr, i), _img(lr, 1000 + i))
        np.save(root / "HR" / hr_name.format(i), arrays[i][0])
        np.save(root / "LR" / lr_name.format(i), arrays[i][1])
    return arrays


def _make_classes(root, folders=("no", "sphere", "vort"), n=2, size=8):
    arrays = {}
    for k, name in enumerate(folders):
        (root / name).mkdir(parents=True)
        for i in range(n):
            arrays[(name, i)] = _img((1, size, size), 100 * k + i)
            np.save(root / name / f"{i}.npy", arrays[(name, i)])
    return arrays


def _leftovers(tmp_path):
    return sorted(p.name for p in tmp_path.rglob("*.h5*"))


# Pairs --------------------------------------------------------------------------------


def test_pairs_round_trip_in_natural_order(tmp_path):
    src = tmp_path / "src"
    arrays = _make_pairs(src, n=11)  # sample1..sample11: sample2 must precede sample10
    [path] = import_dataset(src, tmp_path / "out.h5", progress=False)
    with open_dataset(path) as ds:
        assert ds.hr.dtype == np.float32 and ds.hr.shape == (11, 8, 8)
        for pos, i in enumerate(range(1, 12)):
            np.testing.assert_array_equal(ds.hr[pos], arrays[i][0][0])
            np.testing.assert_array_equal(ds.lr[pos], arrays[i][1][0])
        assert ds.class_names == ["unknown"] and set(ds.labels) == {0}
        attrs = ds.attrs
        assert attrs["producer"] == "lensr import" and attrs["layout"] == "pairs"
        assert attrs["scale"] == 2 and attrs["units"] == UNITS
        assert "lr_source" not in attrs
        files = json.loads(attrs["source_files"])
        assert files[:3] == [
            ["HR/sample1.npy", "LR/sample1.npy"],
            ["HR/sample2.npy", "LR/sample2.npy"],
            ["HR/sample3.npy", "LR/sample3.npy"],
        ]
    assert not partial_path(path).exists()


def test_pairs_with_folder_prefixes_and_2d_arrays(tmp_path):
    src = tmp_path / "src"
    arrays = _make_pairs(
        src, n=3, hr=(12, 12), lr=(3, 3), hr_name="HR_{}.npy", lr_name="LR_{}.npy", start=0
    )
    [path] = import_dataset(src, tmp_path / "out.h5", progress=False)
    with open_dataset(path) as ds:
        assert ds.scale == 4 and ds.attrs["scale"] == 4
        np.testing.assert_array_equal(ds.hr[2], arrays[2][0])
        np.testing.assert_array_equal(ds.lr[2], arrays[2][1])


def test_fits_pairs_mixed_with_npy(tmp_path):
    src = tmp_path / "src"
    (src / "HR").mkdir(parents=True)
    (src / "LR").mkdir(parents=True)
    hr, lr = _img((8, 8), 1), _img((4, 4), 2)
    fits.PrimaryHDU(hr).writeto(src / "HR" / "a.fits")
    fits.PrimaryHDU(lr[None]).writeto(src / "LR" / "a.fits.gz")
    fits.PrimaryHDU(hr + 1).writeto(src / "HR" / "b.fit")
    np.save(src / "LR" / "b.npy", lr + 1)
    [path] = import_dataset(src, tmp_path / "out.h5", layout="pairs", scale=2, progress=False)
    with open_dataset(path) as ds:
        np.testing.assert_array_equal(ds.hr[:], np.stack([hr, hr + 1]))
        np.testing.assert_array_equal(ds.lr[:], np.stack([lr, lr + 1]))


# Classes ------------------------------------------------------------------------------


def test_classes_with_splits_write_one_file_per_split(tmp_path):
    src = tmp_path / "src"
    train = _make_classes(src / "train", ("vort", "no", "sphere"), n=3)
    val = _make_classes(src / "val", ("no", "vort"), n=1)
    paths = import_dataset(src, tmp_path / "data" / "cls.h5", progress=False)
    assert [p.name for p in paths] == ["cls-train.h5", "cls-val.h5"]
    with open_dataset(paths[0]) as ds:
        assert ds.class_names == ["none", "cdm", "axion"]
        assert list(ds.labels) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
        np.testing.assert_array_equal(ds.hr[4], train[("sphere", 1)][0])
        assert ds.attrs["lr_source"] == LR_SOURCE_BLOCK_MEAN
        assert ds.attrs["split"] == "train" and ds.attrs["layout"] == "classes"
    with open_dataset(paths[1]) as ds:
        # Same class list in every split, so label 2 is axion everywhere.
        assert ds.class_names == ["none", "cdm", "axion"]
        assert list(ds.labels) == [0, 2]
        np.testing.assert_array_equal(ds.hr[1], val[("vort", 0)][0])


@pytest.mark.parametrize(
    "folders",
    [
        ("no_sub", "cdm", "axion"),
        ("none", "subhalo", "vortex"),
        ("no_substructure", "CDM", "Axion"),
    ],
)
def test_class_aliases_and_block_mean_lr(tmp_path, folders):
    src = tmp_path / "src"
    arrays = _make_classes(src, folders, n=2, size=12)
    [path] = import_dataset(src, tmp_path / "cls.h5", scale=3, progress=False)
    assert path == tmp_path / "cls.h5"
    with open_dataset(path) as ds:
        assert ds.class_names == ["none", "cdm", "axion"]
        assert list(ds.labels) == [0, 0, 1, 1, 2, 2]
        hr = arrays[(folders[1], 1)][0]
        np.testing.assert_array_equal(ds.hr[3], hr)
        expected = hr.astype(np.float64).reshape(4, 3, 4, 3).mean(axis=(1, 3))
        np.testing.assert_allclose(ds.lr[3], expected, rtol=1e-6)
        assert ds.attrs["scale"] == 3 and ds.lr.shape == (6, 4, 4)


def test_only_present_classes_in_lensr_order(tmp_path):
    src = tmp_path / "src"
    _make_classes(src, ("vort", "no"), n=1)
    (src / "__MACOSX" / "no").mkdir(parents=True)  # zip debris is ignored, as are dot files
    (src / "no" / ".DS_Store").write_bytes(b"x")
    [path] = import_dataset(src, tmp_path / "cls.h5", progress=False)
    with open_dataset(path) as ds:
        assert ds.class_names == ["none", "axion"] and list(ds.labels) == [0, 1]
        assert ds.scale == 2


# Errors -------------------------------------------------------------------------------


def _error(src, out, **kwargs) -> str:
    with pytest.raises(LensrError) as info:
        import_dataset(src, out, progress=False, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unpaired_files_are_named_and_counted(tmp_path):
    src = tmp_path / "src"
    _make_pairs(src, n=3)
    for i in (4, 5, 6, 7):
        np.save(src / "HR" / f"sample{i}.npy", _img((1, 8, 8), i))
    np.save(src / "LR" / "extra.npy", _img((1, 4, 4), 0))
    message = _error(src, tmp_path / "out.h5")
    assert "4 file(s)" in message and "sample4.npy, sample5.npy, sample6.npy, ..." in message
    assert "extra.npy" in message and "1 file(s)" in message
    assert _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "bad, needle",
    [
        (np.full((1, 8, 8), np.nan, np.float32), "NaN"),
        (np.full((1, 8, 8), np.inf, np.float32), "infinite"),
        (np.zeros((2, 8, 8), np.float32), "2 planes"),
        (np.zeros((1, 8, 6), np.float32), "differs"),
        (np.zeros((8,), np.float32), "not an image"),
        (np.array(["a"] * 64).reshape(8, 8), "dtype"),
    ],
)
def test_bad_arrays_are_named(tmp_path, bad, needle):
    src = tmp_path / "src"
    _make_pairs(src, n=3)
    np.save(src / "HR" / "sample2.npy", bad)
    message = _error(src, tmp_path / "out.h5")
    assert needle in message and "sample2.npy" in message
    assert _leftovers(tmp_path) == []


def test_pickled_truncated_and_garbage_files(tmp_path):
    src = tmp_path / "src"
    _make_pairs(src, n=3)
    np.save(src / "HR" / "sample1.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    assert "pickled" in _error(src, tmp_path / "out.h5")
    _make_pairs(src, n=3)
    data = (src / "LR" / "sample3.npy").read_bytes()
    (src / "LR" / "sample3.npy").write_bytes(data[:-7])
    message = _error(src, tmp_path / "out.h5")
    assert "LR/sample3.npy" in message and "truncated" in message
    (src / "LR" / "sample3.npy").write_bytes(b"not numpy")
    assert "sample3.npy: not a .npy file" in _error(src, tmp_path / "out.h5")
    assert _leftovers(tmp_path) == []


@pytest.mark.filterwarnings("ignore:File may have been truncated")
def test_truncated_fits_is_named(tmp_path):
    src = tmp_path / "src"
    _make_pairs(src, n=2)
    fits.PrimaryHDU(_img((8, 8), 0)).writeto(src / "HR" / "sample3.fits")
    np.save(src / "LR" / "sample3.npy", _img((4, 4), 0))
    data = (src / "HR" / "sample3.fits").read_bytes()
    (src / "HR" / "sample3.fits").write_bytes(data[:3000])
    assert "sample3.fits" in _error(src, tmp_path / "out.h5")


def test_scale_mismatch_with_given_scale(tmp_path):
    src = tmp_path / "src"
    _make_pairs(src, n=2)
    message = _error(src, tmp_path / "out.h5", scale=4)
    assert "sample1.npy" in message and "scale 4" in message


def test_non_integer_ratio(tmp_path):
    src = tmp_path / "src"
    _make_pairs(src, n=2, hr=(9, 9), lr=(4, 4))
    assert "not LR size times one integer scale" in _error(src, tmp_path / "out.h5")


def test_failure_in_the_middle_leaves_no_output(tmp_path):
    src = tmp_path / "src"
    _make_pairs(src, n=8)
    bad = _img((1, 8, 8), 5)
    bad[0, 3, 3] = np.nan  # found only when pixels are read, i.e. while writing
    np.save(src / "HR" / "sample5.npy", bad)
    out = tmp_path / "out.h5"
    assert "sample5.npy" in _error(src, out)
    assert not out.exists() and not partial_path(out).exists()


def test_failure_in_a_later_split_removes_earlier_splits(tmp_path):
    src = tmp_path / "src"
    _make_classes(src / "train")
    _make_classes(src / "val")
    np.save(src / "val" / "vort" / "1.npy", np.full((1, 8, 8), np.inf, np.float32))
    assert "val/vort/1.npy" in _error(src, tmp_path / "cls.h5")
    assert _leftovers(tmp_path) == []


def test_existing_output_needs_overwrite(tmp_path):
    src = tmp_path / "src"
    _make_pairs(src, n=2)
    out = tmp_path / "out.h5"
    import_dataset(src, out, progress=False)
    assert "already exists" in _error(src, out)
    assert import_dataset(src, out, overwrite=True, progress=False) == [out]


@pytest.mark.parametrize(
    "setup, needle",
    [
        (lambda s: (s / "HR").mkdir(parents=True) or (s / "LR").mkdir(), "empty folder"),
        (lambda s: (s / "HR").mkdir(parents=True), "no LR/ folder"),
        (lambda s: (s / "misc").mkdir(parents=True), "unknown layout"),
        (lambda s: s.mkdir(), "unknown layout"),
        (lambda s: (s / "train" / "no").mkdir(parents=True), "empty folder"),
        (lambda s: (s / "no").mkdir(parents=True) or (s / "images").mkdir(), "images"),
        (lambda s: (s / "no").mkdir(parents=True) or (s / "none").mkdir(), "class 'none'"),
        (
            lambda s: (
                (s / "HR").mkdir(parents=True)
                or (s / "LR").mkdir()
                or (s / "HR" / "notes.txt").write_text("x")
            ),
            "HR/notes.txt: not an image file",
        ),
    ],
)
def test_layout_problems(tmp_path, setup, needle):
    src = tmp_path / "src"
    setup(src)
    assert needle in _error(src, tmp_path / "out.h5")


def test_bad_arguments(tmp_path):
    src = tmp_path / "src"
    _make_pairs(src, n=1)
    assert "expected one of auto, pairs, classes" in _error(src, tmp_path / "o.h5", layout="grid")
    assert "no HR/ folder" not in _error(src, tmp_path / "o.h5", layout="classes")
    assert "does not exist" in _error(tmp_path / "nope", tmp_path / "o.h5")
    assert "integer >= 2" in _error(src, tmp_path / "o.h5", scale=1)
    assert ".h5" in _error(src, tmp_path / "o.txt")


def test_classes_size_not_divisible_by_scale(tmp_path):
    src = tmp_path / "src"
    _make_classes(src, size=10)
    message = _error(src, tmp_path / "cls.h5", scale=3)
    assert "not divisible by scale 3" in message and "0.npy" in message
