"""The data of classifier training: labelled, normalised HR images (dihedral augmentation
drawn from seed, epoch and image), the class-stratified split, and the loaders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from lensr.data.store import dataset_provenance, open_dataset
from lensr.data.torch_data import EpochSampler, H5Images, dihedral, split_indices
from lensr.errors import LensrError
from lensr.eval.classification import normalize_images
from lensr.train.config import ClassifierConfig


class LabelledImages(Dataset):
    """Normalised images of one array (default ``hr``) with their labels: ``(x, y)``.

    ``x`` is float32 (1, H, W), ``y`` an int64 class index. With ``augment`` (default
    True) item ``epoch * n + i`` (see :class:`~lensr.data.torch_data.EpochSampler`) shows
    image ``positions[i]`` under the dihedral map drawn from ``(seed, epoch, position)``.

    Example::

        ds = LabelledImages("classify.h5", [0, 1, 2], augment=False)
        x, y = ds[0]        # (1, 64, 64) float32, class index
    """

    def __init__(self, path, positions, *, seed: int = 0, augment: bool = True, key: str = "hr"):
        self.images = H5Images(path)
        self.positions = np.asarray(positions, dtype=np.int64)
        self.seed, self.augment, self.key = seed, augment, key
        with open_dataset(path) as ds:
            self.labels = ds.labels[self.positions]

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, item: int):
        epoch, i = divmod(int(item), len(self.positions))
        pos = int(self.positions[i])
        image = self.images.file[self.key][pos]
        if self.augment:
            k = int(np.random.default_rng([self.seed, epoch, pos]).integers(0, 8))
            image = dihedral(image, k)
        x = torch.from_numpy(np.ascontiguousarray(normalize_images(image)))[None]
        return x, torch.tensor(self.labels[i], dtype=torch.int64)


def stratified_split(
    labels: np.ndarray, *, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation positions, ``val_fraction`` of every class held out (at least
    one image of each class with two or more images; a class of one trains only).

    Example::

        train_pos, val_pos = stratified_split(ds.labels, val_fraction=0.1, seed=0)
    """
    train, val = [], []
    for k in np.unique(labels):
        members = np.flatnonzero(labels == k)
        if len(members) < 2:
            train.append(members)
            continue
        t, v = split_indices(len(members), val_fraction=val_fraction, seed=seed)
        train.append(members[t])
        val.append(members[v])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(val or [np.zeros(0, int)]))


def dataset_facts(data: Path) -> dict:
    """Class names, labels, attributes and HR image size of ``data``, checked: at least two
    classes, every label one of them."""
    with open_dataset(data) as ds:
        names, labels, attrs = ds.class_names, ds.labels, ds.attrs
        size = list(ds.hr_shape)
    if len(names) < 2:
        raise LensrError(f"{data} names {len(names)} class(es); a classifier needs at least 2")
    bad = labels[(labels < 0) | (labels >= len(names))]
    if len(bad):
        raise LensrError(f"{data}: label {int(bad[0])} is outside the classes {names}")
    return {"names": names, "labels": labels, "attrs": attrs, "size": size}


def classifier_loaders(cfg: ClassifierConfig, data: Path, facts: dict):
    """Training, validation and (optional) BatchNorm calibration loaders of ``data`` for
    ``cfg``'s stratified split, and the data provenance for the sidecars."""
    train_pos, val_pos = stratified_split(
        facts["labels"], val_fraction=cfg.val_fraction, seed=cfg.seed
    )
    if len(val_pos) == 0:
        raise LensrError(f"{data} holds too few images per class to hold out a validation set")
    workers = {"num_workers": cfg.num_workers, "persistent_workers": cfg.num_workers > 0}
    train_set = LabelledImages(data, train_pos, seed=cfg.seed)
    train = DataLoader(
        train_set,
        batch_size=cfg.batch_size,
        sampler=EpochSampler(len(train_set), seed=cfg.seed),
        **workers,
    )
    val = DataLoader(
        LabelledImages(data, val_pos, augment=False), batch_size=cfg.batch_size, **workers
    )
    calibration = None
    if cfg.bn_recalibration_images:
        pick = np.random.default_rng([cfg.seed, 0xB7]).permutation(len(train_pos))
        subset = np.sort(train_pos[pick[: cfg.bn_recalibration_images]])
        calibration = DataLoader(
            LabelledImages(data, subset, augment=False), batch_size=cfg.batch_size
        )
    attrs, labels = facts["attrs"], facts["labels"]
    provenance = dataset_provenance(
        data,
        attrs,
        n_train=len(train_pos),
        n_val=len(val_pos),
        class_counts={n: int((labels == k).sum()) for k, n in enumerate(facts["names"])},
        images="hr",
    )
    return train, val, calibration, provenance
