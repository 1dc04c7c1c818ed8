"""PyTorch datasets over the HDF5 store: aligned LR/HR patches, dihedral augmentation,
the project normalisation, and a validation split fixed by seed.

Randomness is a pure function of (seed, epoch, image): the sampler yields
``epoch * n + position`` and the dataset derives its crop and flip from that, so a run
resumed from a checkpoint sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from lensr.data.normalize import lr_scale_np
from lensr.data.store import open_dataset
from lensr.errors import LensrError


def split_indices(n: int, *, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation image positions: a seeded permutation, validation first."""
    if not 0 < val_fraction < 1:
        raise LensrError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    n_val = max(1, round(n * val_fraction))
    if n - n_val < 1:
        raise LensrError(f"{n} images are too few to split off {val_fraction:.0%} for validation")
    order = np.random.default_rng([seed, 0x5A1]).permutation(n)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def dihedral(a: np.ndarray, k: int) -> np.ndarray:
    """The k-th of the 8 symmetries of the square (k in 0..7) applied to the last two axes."""
    if k >= 4:
        a = a[..., ::-1]
    return np.rot90(a, k % 4, axes=(-2, -1))


class H5Images:
    """Lazily opened per process: h5py handles must not cross DataLoader worker forks."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._file = None

    @property
    def file(self) -> h5py.File:
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        return self._file

    def __getstate__(self):
        return {"path": self.path, "_file": None}


class PairPatches(Dataset):
    """Random aligned patches: LR ``patch`` x ``patch`` and HR ``s*patch`` squared.

    Items are ``(lr, hr)`` float32 tensors of shape (1, p, p) and (1, s p, s p), divided by
    the scale of the *whole* LR image (as at inference). Every item index is
    ``epoch * len(positions) + i`` (see :class:`EpochSampler`).
    """

    def __init__(self, path, positions, *, patch: int = 48, seed: int = 0, augment: bool = True):
        self.images = H5Images(path)
        self.positions = np.asarray(positions)
        self.patch, self.seed, self.augment = patch, seed, augment
        with open_dataset(path) as ds:
            self.scale = ds.scale
            h, w = ds.lr_shape
        if patch > min(h, w):
            raise LensrError(f"patch {patch} is larger than the LR images ({h}x{w})")

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, item: int):
        epoch, i = divmod(int(item), len(self.positions))
        pos = int(self.positions[i])
        rng = np.random.default_rng([self.seed, epoch, pos])
        f = self.images.file
        lr = f["lr"][pos]
        return random_patch(
            rng, lr, lambda sl: f["hr"][(pos, *sl)], self.patch, self.scale, self.augment
        )


def random_patch(rng, lr: np.ndarray, hr_crop, patch: int, scale: int, augment: bool):
    """One training item from a whole LR image: a random ``patch`` crop, the HR crop of the
    same sky (``hr_crop((rows, cols))`` returns it: an HDF5 read or an array slice), an
    optional random dihedral transform, both divided by the whole LR image's scale."""
    norm = lr_scale_np(lr)
    p, s = patch, scale
    y = int(rng.integers(0, lr.shape[0] - p + 1))
    x = int(rng.integers(0, lr.shape[1] - p + 1))
    lr_patch = lr[y : y + p, x : x + p]
    hr_patch = hr_crop((slice(s * y, s * (y + p)), slice(s * x, s * (x + p))))
    if augment:
        k = int(rng.integers(0, 8))
        lr_patch, hr_patch = dihedral(lr_patch, k), dihedral(hr_patch, k)
    return (
        torch.from_numpy(np.ascontiguousarray(lr_patch / norm, dtype=np.float32))[None],
        torch.from_numpy(np.ascontiguousarray(hr_patch / norm, dtype=np.float32))[None],
    )


class FullImages(Dataset):
    """Whole normalised images for validation: ``(lr, hr, hr_clean, scale, label)``.

    ``hr_clean`` is all zeros when the dataset has none (imported data); check ``has_clean``.
    """

    def __init__(self, path, positions):
        self.images = H5Images(path)
        self.positions = np.asarray(positions)
        with open_dataset(path) as ds:
            self.has_clean = ds.hr_clean is not None

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, i: int):
        pos = int(self.positions[i])
        f = self.images.file
        lr, hr = f["lr"][pos], f["hr"][pos]
        clean = f["hr_clean"][pos] if self.has_clean else np.zeros_like(hr)
        norm = np.float32(lr_scale_np(lr))
        as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a / norm, dtype=np.float32))[None]  # noqa: E731
        return as_t(lr), as_t(hr), as_t(clean), torch.tensor(norm), int(f["label"][pos])


class EpochSampler(Sampler[int]):
    """A seeded shuffle per epoch, yielding ``epoch * n + i`` so items know their epoch.

    Lightning calls :meth:`set_epoch` before every epoch (also when resuming), and wraps
    this sampler for distributed training, giving each rank a disjoint part. A run resumed
    mid-epoch calls :meth:`skip_next` so that the epoch goes on where it stopped (see
    :class:`lensr.train.fit.ResumeMidEpoch`).
    """

    def __init__(self, n: int, *, seed: int = 0, shuffle: bool = True):
        self.n, self.seed, self.shuffle, self.epoch = n, seed, shuffle, 0
        self._skip = 0

    def skip_next(self, count: int) -> None:
        """Leave out the first ``count`` items of the next iteration only."""
        self._skip = int(count)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        order = (
            np.random.default_rng([self.seed, self.epoch]).permutation(self.n)
            if self.shuffle
            else np.arange(self.n)
        )
        skip, self._skip = self._skip, 0
        return iter((self.epoch * self.n + order[skip:]).tolist())
