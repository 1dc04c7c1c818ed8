"""Torch datasets: aligned patches, dihedral symmetry, normalisation, seeded split."""

import numpy as np
import pytest
import torch

from lensr.data.normalize import lr_scale_np
from lensr.data.store import open_dataset
from lensr.data.torch_data import EpochSampler, FullImages, PairPatches, dihedral, split_indices
from lensr.errors import LensrError
from lensr.sim.run import simulate


@pytest.fixture(scope="module")
def h5(tmp_path_factory, request):
    from lensr.sim.config import load_sim_config

    out = tmp_path_factory.mktemp("td") / "d.h5"
    return simulate(load_sim_config("classify"), n=6, seed=0, out=out, progress=False)


def test_the_eight_dihedral_transforms_are_distinct_and_a_group():
    a = np.arange(12.0).reshape(3, 4)
    images = [dihedral(a, k) for k in range(8)]
    assert len({im.tobytes() + bytes(im.shape) for im in images}) == 8
    # The group written out by hand: four rotations, and four of the mirror image.
    by_hand = [np.rot90(a, k) for k in range(4)] + [np.rot90(a[:, ::-1], k) for k in range(4)]
    assert {im.tobytes() + bytes(im.shape) for im in images} == {
        im.tobytes() + bytes(im.shape) for im in by_hand
    }
    for k in range(8):  # every transform has an inverse among the eight
        assert any(np.array_equal(dihedral(images[k], j), a) for j in range(8))


def test_patches_are_aligned_and_normalised(h5):
    data = PairPatches(h5, np.arange(6), patch=8, augment=False, seed=4)
    with open_dataset(h5) as ds:
        for item in (0, 7, 11):
            lr, hr = data[item]
            assert lr.shape == (1, 8, 8) and hr.shape == (1, 16, 16)
            epoch, pos = divmod(item, 6)
            rng = np.random.default_rng([4, epoch, pos])  # the documented crop stream
            y, x = int(rng.integers(0, 25)), int(rng.integers(0, 25))
            norm = lr_scale_np(ds.lr[pos])
            np.testing.assert_allclose(
                lr[0].numpy(), ds.lr[pos, y : y + 8, x : x + 8] / norm, rtol=1e-6
            )
            # The HR patch covers the same sky: s x the LR offsets and size.
            np.testing.assert_allclose(
                hr[0].numpy(), ds.hr[pos, 2 * y : 2 * y + 16, 2 * x : 2 * x + 16] / norm, rtol=1e-6
            )


def test_augmentation_applies_the_same_transform_to_both(h5):
    data = PairPatches(h5, np.arange(6), patch=32, augment=True)  # whole image: crop is fixed
    plain = PairPatches(h5, np.arange(6), patch=32, augment=False)
    for item in range(12):
        (lr, hr), (lr0, hr0) = data[item], plain[item]
        k = next(k for k in range(8) if np.array_equal(dihedral(lr0[0].numpy(), k), lr[0].numpy()))
        np.testing.assert_array_equal(dihedral(hr0[0].numpy(), k), hr[0].numpy())


def test_items_depend_only_on_seed_epoch_and_image(h5):
    a, b = (
        PairPatches(h5, np.arange(6), patch=8, seed=1),
        PairPatches(h5, np.arange(6), patch=8, seed=1),
    )
    assert torch.equal(a[9][0], b[9][0])
    assert not torch.equal(a[3][0], a[9][0])  # same image, next epoch: a new crop


def test_epoch_sampler_shuffles_per_epoch_and_encodes_it():
    s = EpochSampler(5, seed=0)
    first = list(s)
    s.set_epoch(1)
    second = list(s)
    assert sorted(first) == list(range(5)) and sorted(second) == list(range(5, 10))
    s.set_epoch(0)
    assert list(s) == first


def test_split_is_seeded_disjoint_and_complete():
    train, val = split_indices(100, val_fraction=0.1, seed=3)
    assert len(val) == 10 and not set(train) & set(val) and len(train) + len(val) == 100
    assert np.array_equal(val, split_indices(100, val_fraction=0.1, seed=3)[1])
    assert not np.array_equal(val, split_indices(100, val_fraction=0.1, seed=4)[1])
    with pytest.raises(LensrError, match="too few"):
        split_indices(1, val_fraction=0.5, seed=0)


def test_full_images_carry_the_noise_free_target(h5):
    lr, hr, clean, norm, label = FullImages(h5, [2])[0]
    assert lr.shape == (1, 32, 32) and hr.shape == clean.shape == (1, 64, 64)
    with open_dataset(h5) as ds:
        want = {"lr": ds.lr[2], "hr": ds.hr[2], "hr_clean": ds.hr_clean[2]}
    # One scale from the LR image alone (its 99.5th percentile), applied to all three.
    assert float(norm) == pytest.approx(np.percentile(want["lr"], 99.5), rel=1e-6)
    for got, key in ((lr, "lr"), (hr, "hr"), (clean, "hr_clean")):
        np.testing.assert_allclose(got[0].numpy() * float(norm), want[key], rtol=1e-5, atol=1e-6)
    assert not np.allclose(want["hr"], want["hr_clean"])  # the noise-free target, not the noisy
    assert label == 2
