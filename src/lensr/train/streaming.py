"""Streaming training data: HR/LR pairs simulated on the fly, never repeated.

The stream is a global sequence of sample numbers 0, 1, 2, ... Sample ``j`` is a pure
function of ``(seed, j)``: its preset (drawn by weight from ``[seed, j, PRESET_STREAM]``),
its sky (``Renderer.render(seed, j)``, whose random streams are ``[seed, j, purpose]``), and
its crop and flip (``[seed, j, CROP_STREAM]``). The sequence is handed out by
:class:`lensr.data.torch_data.EpochSampler` (``epoch * n + i``, unshuffled: every item is
new anyway), the DataLoader cuts it into batches and gives whole batches to its workers,
and under DDP Lightning splits it across ranks. Hence any number of workers gives the same
batches in the same order, and a run resumed from a checkpoint continues the sequence.
(A map-style dataset over an unbounded index, rather than a torch ``IterableDataset``: the
sampler then *is* the stream, and Lightning's epoch bookkeeping, resume and DDP sharding
apply unchanged.)

Validation is a fixed simulated set per preset, drawn with the disjoint seed
``seed + VAL_SEED_OFFSET`` and cached as HDF5 in the run folder (read by
:class:`lensr.data.torch_data.FullImages`, like a file run's validation split).

Preset specs: a name or YAML path, or ``NAME/GLOB`` to keep only the variants of a mixture
preset whose names match (``generalist/space*``).

Example::

    train_loader, val_loader, scale, provenance = streaming_loaders(
        cfg, ["generalist/space*", "sim"], weights=[3, 1], out_dir="runs/space")
"""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path

import numpy as np
from torch.utils.data import ConcatDataset, DataLoader, Dataset

from lensr.data.store import open_dataset
from lensr.data.torch_data import EpochSampler, FullImages, random_patch
from lensr.errors import LensrError
from lensr.infer.prior import prior_stats
from lensr.io import write_text
from lensr.sim.config import SimConfig, load_sim_config
from lensr.sim.render import Renderer

PRESET_STREAM, CROP_STREAM = 0x9E5, 0xC509
VAL_SEED_OFFSET = 2**32
"""Validation pairs use seed + this; benchmarks use TEST_SEED_OFFSET: never a training pair."""
TEST_SEED_OFFSET = 2**33
DEFAULT_STEPS_PER_EPOCH = 200


def load_preset_spec(spec: str) -> SimConfig:
    """A preset name/path, or ``NAME/GLOB``: the preset with only its matching variants."""
    name, _, pattern = str(spec).partition("/")
    if not pattern or str(spec).endswith((".yaml", ".yml")) or Path(spec).exists():
        return load_sim_config(spec)
    cfg = load_sim_config(name)
    keep = [v for v in cfg.variants if fnmatch.fnmatch(v.name, pattern)]
    if not keep:
        names = ", ".join(v.name for v in cfg.variants) or "none"
        raise LensrError(f"preset {name} has no variant matching {pattern!r} (variants: {names})")
    return cfg.model_copy(update={"variants": keep, "name": f"{cfg.name}/{pattern}"})


def parse_presets(
    presets: str | list[str], weights: str | list[float] | None = None
) -> tuple[list[SimConfig], np.ndarray]:
    """Comma-separated (or listed) preset specs and their weights (default: equal), checked:
    one scale for all, weights positive and one per preset."""
    specs = [p.strip() for p in presets.split(",")] if isinstance(presets, str) else presets
    specs = [s for s in specs if s]
    if not specs:
        raise LensrError("--preset needs at least one preset name")
    if weights is None or weights == "":
        w = np.ones(len(specs))
    else:
        try:
            items = weights.split(",") if isinstance(weights, str) else weights
            w = np.array([float(v) for v in items])
        except ValueError:
            raise LensrError(f"--preset-weights must be numbers, got {weights!r}") from None
    if len(w) != len(specs) or (w <= 0).any() or not np.isfinite(w).all():
        raise LensrError(
            f"--preset-weights needs {len(specs)} positive numbers (one per preset), "
            f"got {weights!r}"
        )
    cfgs = [load_preset_spec(s) for s in specs]
    scales = {c.scale for c in cfgs}
    if len(scales) > 1:
        raise LensrError(f"the presets {', '.join(specs)} mix scales {sorted(scales)}: use one")
    return cfgs, w / w.sum()


class StreamingPairs(Dataset):
    """Item ``j`` (the global sample number) is a fresh simulated pair, as a normalised
    ``(lr, hr)`` patch exactly like :class:`lensr.data.torch_data.PairPatches` makes from a
    file. ``len`` is one epoch of the stream; renderers are built lazily per process."""

    def __init__(
        self,
        cfgs: list[SimConfig],
        weights,
        *,
        seed: int = 0,
        patch: int = 32,
        augment: bool = True,
        epoch_size: int = 3200,
        device: str = "cpu",
        reuse: int = 1,
    ):
        if reuse < 1:
            raise LensrError(f"reuse must be at least 1, got {reuse}")
        self.reuse, self._last = reuse, (None, None)
        self.cfgs, self.weights = list(cfgs), np.asarray(weights, dtype=float)
        self.seed, self.patch, self.augment, self.n = seed, patch, augment, epoch_size
        self.scale, self.device = cfgs[0].scale, device
        too_small = [c.name for c in cfgs if c.lr_size < patch]
        if too_small:
            raise LensrError(f"patch {patch} is larger than the LR images of {too_small[0]}")
        self._renderers: list[Renderer] | None = None

    def __getstate__(self):
        return {**self.__dict__, "_renderers": None, "_last": (None, None)}

    def __len__(self) -> int:
        return self.n

    def preset_of(self, j: int) -> int:
        """Which preset image ``j`` of the stream comes from."""
        if len(self.cfgs) == 1:
            return 0
        rng = np.random.default_rng([self.seed, j, PRESET_STREAM])
        return int(rng.choice(len(self.cfgs), p=self.weights))

    def pair(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        """The whole (lr, hr) images of sample ``j``, in surface brightness: image
        ``j // reuse`` of the stream (``reuse`` consecutive samples crop one image)."""
        image = j // self.reuse
        if self._last[0] == image:
            return self._last[1]
        if self._renderers is None:
            self._renderers = [Renderer(c) for c in self.cfgs]
        sample = self._renderers[self.preset_of(image)].render(self.seed, image)
        self._last = (image, (sample.lr, sample.hr))
        return sample.lr, sample.hr

    def _item(self, j: int, lr: np.ndarray, hr: np.ndarray):
        rng = np.random.default_rng([self.seed, j, CROP_STREAM])
        return random_patch(rng, lr, lambda sl: hr[sl], self.patch, self.scale, self.augment)

    def __getitem__(self, item: int):
        j = int(item)
        return self._item(j, *self.pair(j))

    def __getitems__(self, items: list[int]):
        """A batch: on a CUDA device with the batched caustics renderer, rendered per preset
        in one call; otherwise one lenstronomy render per item."""
        batch_render = _batch_renderer(self.device)
        if batch_render is None:
            return [self[i] for i in items]
        js = [int(i) for i in items]
        images = sorted({j // self.reuse for j in js})
        pairs: dict[int, tuple] = {}
        for k in sorted({self.preset_of(i) for i in images}):
            group = [i for i in images if self.preset_of(i) == k]
            rendered = batch_render(self.cfgs[k], self.seed, group, self.device)
            lrs, hrs = _as_numpy(rendered, "lr"), _as_numpy(rendered, "hr")
            pairs.update({i: (lrs[n], hrs[n]) for n, i in enumerate(group)})
        return [self._item(j, *pairs[j // self.reuse]) for j in js]


def _batch_renderer(device: str):
    """caustics' ``render_batch`` when the device is CUDA and it imports, else None."""
    if not str(device).startswith("cuda"):
        return None
    try:
        from lensr.sim.caustics_render import render_batch
    except ImportError:
        return None
    return render_batch


def _as_numpy(rendered, key: str) -> np.ndarray:
    value = rendered[key] if isinstance(rendered, dict) else getattr(rendered, key)
    value = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
    return value.reshape(len(value), *value.shape[-2:]).astype(np.float32)


def _lr_images(path: Path) -> np.ndarray:
    with open_dataset(path) as ds:
        return ds.lr[:]


class SimulatedValidation(ConcatDataset):
    """The fixed validation images of every preset (FullImages of cached HDF5 files)."""

    has_clean = True


def validation_files(cfgs, *, seed: int, n_per_preset: int, folder: Path) -> list[Path]:
    """Simulate (or reuse, when made by the same config and seed) ``n_per_preset`` pairs of
    each preset with seed ``seed + VAL_SEED_OFFSET`` into ``folder``."""
    from lensr.sim.run import simulate, stored_config

    paths = []
    val_seed = seed + VAL_SEED_OFFSET
    for k, cfg in enumerate(cfgs):
        path = folder / f"val_{k}.h5"
        if path.exists():
            with open_dataset(path) as ds:
                same = (
                    ds.attrs.get("config") == stored_config(cfg)
                    and int(ds.attrs.get("seed", -1)) == val_seed
                    and len(ds) == n_per_preset
                )
            if same:
                paths.append(path)
                continue
        paths.append(
            simulate(cfg, n=n_per_preset, out=path, seed=val_seed, overwrite=True, progress=False)
        )
    return paths


class _ByFile:
    """Batch sampler over a ConcatDataset that never mixes files (their sizes differ)."""

    def __init__(self, sizes: list[int], batch: int):
        self.batches, start = [], 0
        for n in sizes:
            self.batches += [
                list(range(start + i, start + min(i + batch, n))) for i in range(0, n, batch)
            ]
            start += n

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


def streaming_loaders(
    cfg,
    presets: str | list[str],
    *,
    weights=None,
    out_dir: str | Path,
    device: str = "cpu",
    reuse: int = 1,
    resume: bool = False,
):
    """Training (streamed patches) and validation (fixed simulated images) loaders for a
    :class:`lensr.train.config.TrainConfig`, its scale, and the data provenance: the same
    tuple as :func:`lensr.train.fit.sr_loaders`. One epoch is ``cfg.val_check_interval``
    (default 200) steps of the stream; validation holds ``cfg.max_val_images`` images split
    across the presets. ``reuse`` patches are cut from every simulated image (the simulator
    is the bottleneck on CPU). The stream's definition is saved as ``stream.json``; a resumed
    run must match it."""
    cfgs, w = parse_presets(presets, weights)
    if cfg.scale is not None and cfg.scale != cfgs[0].scale:
        raise LensrError(f"config asks for scale {cfg.scale}, but the presets have {cfgs[0].scale}")
    if cfg.classes is not None:
        raise LensrError("classes: streaming trains on every class of its presets")
    steps = cfg.val_check_interval or DEFAULT_STEPS_PER_EPOCH
    stream = {
        "presets": [json.loads(c.model_dump_json()) for c in cfgs],
        "weights": [float(v) for v in w],
        "reuse": reuse,
        "seed": cfg.seed,
    }
    stream_file = Path(out_dir) / "stream.json"
    if resume and stream_file.is_file() and json.loads(stream_file.read_text()) != stream:
        raise LensrError(f"cannot resume: the presets, weights or reuse differ from {stream_file}")
    write_text(stream_file, json.dumps(stream, indent=1))
    train_set = StreamingPairs(
        cfgs,
        w,
        seed=cfg.seed,
        patch=cfg.patch,
        epoch_size=steps * cfg.batch_size,
        device=device,
        reuse=reuse,
    )
    n_val = max(1, cfg.max_val_images // len(cfgs))
    folder = Path(out_dir) / "validation"
    folder.mkdir(parents=True, exist_ok=True)
    files = validation_files(cfgs, seed=cfg.seed, n_per_preset=n_val, folder=folder)
    val_set = SimulatedValidation([FullImages(f, np.arange(n_val)) for f in files])
    workers = {"num_workers": cfg.num_workers, "persistent_workers": cfg.num_workers > 0}
    prior = prior_stats([_lr_images(f) for f in files], cfgs)
    train = DataLoader(
        train_set,
        batch_size=cfg.batch_size,
        sampler=EpochSampler(len(train_set), seed=cfg.seed, shuffle=False),
        **workers,
    )
    val = DataLoader(val_set, batch_sampler=_ByFile([n_val] * len(files), 8), **workers)
    provenance = {
        "kind": "streaming",
        "presets": [c.name for c in cfgs],
        "preset_weights": [float(v) for v in w],
        "preset_configs": [json.loads(c.model_dump_json()) for c in cfgs],
        "seed": cfg.seed,
        "reuse": reuse,
        "validation_seed": cfg.seed + VAL_SEED_OFFSET,
        "n_val": n_val * len(files),
        "scale": cfgs[0].scale,
        "prior_range": prior,
    }
    return train, val, cfgs[0].scale, provenance
