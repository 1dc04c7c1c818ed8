"""The physics-informed training's data: LR images only, with their noise and kernel.

Training items hold the LR image, its noise variance and its HR-to-LR kernel, looked up in
an :class:`~lensr.instrument.from_dataset.LRInstrumentTable`; the HDF5 file is read through
:class:`LROnly`, which refuses the HR images. Validation items (:class:`ValImages`) add the
HR images, for PSNR/SSIM only.

Example::

    table = LRInstrumentTable("sim.h5", positions, noise="auto", psf_fwhm=(3.2, 1.74))
    lr, var, kernel = LRImages("sim.h5", positions, instrument=table)[0]
"""

from __future__ import annotations

import h5py
import numpy as np
import torch

from lensr.data.normalize import lr_scale_np
from lensr.data.torch_data import FullImages, H5Images, dihedral
from lensr.instrument.from_dataset import LRInstrumentTable

HR_KEYS = ("hr", "hr_clean")


class LROnly:
    """An open HDF5 file that hands out the LR images and refuses the HR ones."""

    def __init__(self, file: h5py.File):
        self._file = file

    def __getitem__(self, key: str):
        if key in HR_KEYS:
            raise PermissionError(f"physics training must not read {key!r}")
        return self._file[key]


class LRImages(torch.utils.data.Dataset):
    """Training items ``(lr, var, kernel)`` for the images ``positions``: the normalised
    LR image (1, h, w), its noise variance in the same units (1, h, w) and its HR-to-LR
    kernel (k, k), under one seeded dihedral transform per (epoch, image) when
    ``augment``. Items are indexed ``epoch * n + i`` (:class:`EpochSampler`).

    The HDF5 file is read through :class:`LROnly`: HR images cannot be read from here.
    """

    def __init__(
        self, path, positions, *, instrument: LRInstrumentTable, seed: int = 0, augment=True
    ):
        self.images = H5Images(path)
        self.positions = np.asarray(positions)
        self.instrument, self.seed, self.augment = instrument, seed, augment

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, item: int):
        epoch, i = divmod(int(item), len(self.positions))
        pos = int(self.positions[i])
        lr = LROnly(self.images.file)["lr"][pos]
        norm = lr_scale_np(lr)
        var = self.instrument.variance(pos, lr) / norm**2
        kernel = self.instrument.kernel(pos)
        if self.augment:
            k = int(np.random.default_rng([self.seed, epoch, pos, 7]).integers(0, 8))
            lr, var, kernel = dihedral(lr, k), dihedral(var, k), dihedral(kernel, k)
        as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
        return as_t(lr / norm)[None], as_t(var)[None], as_t(kernel)


class ValImages(FullImages):
    """:class:`FullImages` items plus the LR noise variance and kernel, for val_chi2."""

    def __init__(self, path, positions, *, instrument: LRInstrumentTable):
        super().__init__(path, positions)
        self.instrument = instrument

    def __getitem__(self, i: int):
        lr, hr, clean, norm, label = super().__getitem__(i)
        pos = int(self.positions[i])
        raw = lr[0].numpy() * float(norm)
        var = self.instrument.variance(pos, raw) / float(norm) ** 2
        kernel = torch.from_numpy(self.instrument.kernel(pos))
        return lr, hr, clean, norm, label, torch.from_numpy(var.astype(np.float32))[None], kernel
