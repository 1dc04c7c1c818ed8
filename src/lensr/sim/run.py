"""Simulate a dataset: parallel, resumable, shardable, byte-reproducible.

Image ``i`` of a run with seed ``S`` depends only on (config, S, i): its random streams are
seeded by ``[S, i, purpose]``. Hence serial == parallel, and the shards of a job array
merged together == one run.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from lensr.data.store import check_output_path, partial_path
from lensr.data.writer import DatasetWriter, UnusablePartial
from lensr.errors import LensrError
from lensr.io import FileLock
from lensr.sim.config import SimConfig, load_sim_config, variant_configs
from lensr.sim.render import PARAM_FIELDS, Renderer

_CHUNK = 8
_worker_renderer = None  # a Renderer, or a CausticsRenderer (config engine: caustics)
REFERENCE_POINT_MASSES = False
"""True: render with lenstronomy's one POINT_MASS profile per subhalo (the old path; same
images within round-off, ~3x slower): benchmarks/simulate.py --reference sets it."""


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"K/N"`` (0 <= K < N) as a tuple, or None."""
    if text is None:
        return None
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise LensrError(f"--shard must look like K/N (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= k < n:
        raise LensrError(f"--shard {text}: need 0 <= K < N (shards are numbered from 0)")
    return k, n


def shard_indices(n: int, shard: tuple[int, int] | None) -> np.ndarray:
    """The contiguous block of image numbers that shard K of N renders."""
    if shard is None:
        return np.arange(n)
    k, parts = shard
    return np.arange(k * n // parts, (k + 1) * n // parts)


def _init_worker(config_json: str, reference: bool = False):
    global _worker_renderer
    cfg = SimConfig.model_validate_json(config_json)
    if cfg.engine == "caustics":
        import torch

        from lensr.sim.caustics_render import CausticsRenderer

        device = "cuda" if torch.cuda.is_available() else "cpu"
        _worker_renderer = CausticsRenderer(cfg, device)
    else:
        _worker_renderer = Renderer(cfg, reference=reference)


def _render_chunk(args):
    seed, indices = args
    if isinstance(_worker_renderer, Renderer):
        return [(i, _worker_renderer.render(seed, int(i))) for i in indices]
    return list(zip(indices, _worker_renderer.samples(seed, indices), strict=True))


def _provenance(cfg: SimConfig, seed: int, n: int, shard) -> dict:
    import lenstronomy

    return {
        "producer": "lensr simulate",
        "lenstronomy_version": lenstronomy.__version__,
        "config": stored_config(cfg),
        "preset": cfg.name,
        "seed": seed,
        "n_total": n,
        "shard": "" if shard is None else f"{shard[0]}/{shard[1]}",
        "scale": cfg.scale,
        # NaN for a mixture whose variants differ: no one pixel scale holds for every image.
        **_pixel_scales(cfg),
        "units": f"surface brightness; 1 = {cfg.flux_zero_point} mag/arcsec^2",
    }


def stored_config(cfg: SimConfig) -> str:
    """The ``config`` attr of a dataset simulated from ``cfg`` (JSON). A preset narrowed to
    one variant (``generalist/ground-hsc``) is stored as that variant's config (the same
    images), so the dataset's instrument is the one it was rendered with."""
    return (variant_configs(cfg)[0][0] if len(cfg.variants) == 1 else cfg).model_dump_json()


def _pixel_scales(cfg: SimConfig) -> dict:
    subs = [c for c, _ in variant_configs(cfg)]
    hr = {c.hr_pixel_scale for c in subs}
    value = hr.pop() if len(hr) == 1 else float("nan")
    return {"hr_pixel_scale": value, "lr_pixel_scale": value * cfg.scale}


def _same_run(attrs, cfg: SimConfig, seed: int, n: int, shard) -> str | None:
    expected = _provenance(cfg, seed, n, shard)
    for key in ("config", "seed", "n_total", "shard"):
        if attrs.get(key) != expected[key]:
            return key
    return None


def simulate(
    preset: str | Path | SimConfig = "sim",
    *,
    n: int,
    out: str | Path,
    seed: int = 0,
    workers: int = 1,
    shard: str | tuple[int, int] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> Path:
    """Simulate ``n`` HR/LR pairs into the HDF5 file ``out`` and return its path.

    >>> simulate("sim", n=100, seed=0, out="data/sim.h5", workers=2)
    """
    cfg = preset if isinstance(preset, SimConfig) else load_sim_config(preset)
    if n < 1:
        raise LensrError(f"--n must be at least 1, got {n}")
    if workers < 1:
        raise LensrError(f"--workers must be at least 1, got {workers}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise LensrError(f"--seed must be a non-negative integer, got {seed}")
    shard = parse_shard(shard) if isinstance(shard, str) or shard is None else shard
    out = check_output_path(out, overwrite=overwrite)
    indices = shard_indices(n, shard)
    if len(indices) == 0:
        raise LensrError(f"shard {shard[0]}/{shard[1]} of {n} images is empty")
    tmp = partial_path(out)
    lock = FileLock(out).acquire()  # before looking at the partial file: it may be live
    try:
        writer = _open_writer(cfg, out, tmp, seed, n, shard, indices, lock, resume, overwrite)
    except BaseException:
        lock.release()
        raise

    with writer:
        todo = indices[~writer.done]
        position = {int(g): p for p, g in enumerate(indices)}
        bar = tqdm(
            total=len(indices),
            initial=len(indices) - len(todo),
            unit="pair",
            desc=f"simulate {cfg.name}",
            disable=not progress,
        )
        chunks = [(seed, todo[i : i + _CHUNK]) for i in range(0, len(todo), _CHUNK)]
        for results in _map(chunks, cfg, workers):
            for i, s in results:
                writer.write(
                    position[int(i)],
                    hr=s.hr,
                    lr=s.lr,
                    hr_clean=s.hr_clean,
                    label=s.label,
                    params=s.params,
                    subhalos=s.subhalos,
                )
            writer.flush()
            bar.update(len(results))
        bar.close()
        return writer.finish()


def _open_writer(cfg, out, tmp, seed, n, shard, indices, lock, resume, overwrite):
    """Continue the partial file (``resume``) or start a fresh one, under ``lock``."""
    if resume and tmp.exists():
        try:
            writer = DatasetWriter.reopen(out, lock=lock)
        except UnusablePartial as exc:  # e.g. killed before it was complete: nothing to keep
            print(f"lensr: {exc}; starting over", file=sys.stderr)
        else:
            bad = _same_run(writer.file.attrs, cfg, seed, n, shard)
            if not bad:
                return writer
            writer.file.close()
            raise LensrError(
                f"cannot resume {tmp}: it was made with a different {bad} "
                "(pass --overwrite to start over)"
            )
    elif tmp.exists() and not overwrite:
        raise LensrError(
            f"{tmp} exists from an interrupted run: pass --resume to continue it or "
            "--overwrite to start over"
        )
    # A fresh partial file; DatasetWriter replaces a stale one (it holds the lock).
    return DatasetWriter(
        out,
        n=len(indices),
        hr_shape=(cfg.hr_size,) * 2,
        lr_shape=(cfg.lr_size,) * 2,
        class_names=cfg.classes,
        attrs=_provenance(cfg, seed, n, shard),
        param_fields=PARAM_FIELDS,
        with_clean=True,
        indices=indices,
        keep_partial=True,
        lock=lock,
    )


def _map(chunks, cfg: SimConfig, workers: int):
    config_json = cfg.model_dump_json()
    if workers == 1 or len(chunks) <= 1:
        _init_worker(config_json, REFERENCE_POINT_MASSES)
        yield from map(_render_chunk, chunks)
        return
    # Spawn, not fork: the parent may hold torch or HDF5 state that must not be duplicated.
    # One BLAS thread per worker: the workers already use every core.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    ctx = mp.get_context("spawn")
    initargs = (config_json, REFERENCE_POINT_MASSES)
    with ctx.Pool(workers, initializer=_init_worker, initargs=initargs) as pool:
        yield from pool.imap(_render_chunk, chunks)


def merge(parts: list[str | Path], out: str | Path, *, overwrite: bool = False) -> Path:
    """Join the shards of one run into a file with the same data as an unsharded run."""
    from lensr.data.store import open_dataset

    if not parts:
        raise LensrError("merge needs at least one input file")
    out = check_output_path(out, overwrite=overwrite)
    datasets = [open_dataset(p) for p in parts]
    try:
        first = datasets[0].attrs
        for ds in datasets:
            for key in ("config", "seed", "n_total"):
                if ds.attrs.get(key) != first.get(key):
                    raise LensrError(
                        f"{ds.path} belongs to a different run ({key} differs "
                        f"from {datasets[0].path})"
                    )
        n = int(first["n_total"])
        owner = np.full(n, -1)
        for k, ds in enumerate(datasets):
            idx = ds.index
            if (owner[idx] >= 0).any():
                raise LensrError(f"{ds.path} overlaps {datasets[owner[idx].max()].path}")
            owner[idx] = k
        if (owner < 0).any():
            raise LensrError(
                f"the parts cover {int((owner >= 0).sum())} of {n} images: "
                f"{int((owner < 0).sum())} are missing (first: {int(np.argmin(owner))})"
            )
        attrs = {
            k: v
            for k, v in first.items()
            if k not in ("kind", "lensr_version", "class_names", "created")
        }
        attrs["shard"] = ""
        attrs["merged_from"] = json.dumps([str(ds.path) for ds in datasets])
        with DatasetWriter(
            out,
            n=n,
            hr_shape=datasets[0].hr_shape,
            lr_shape=datasets[0].lr_shape,
            class_names=datasets[0].class_names,
            attrs=attrs,
            param_fields=datasets[0].params.dtype.names,
            with_clean=True,
        ) as w:
            for ds in datasets:
                sub = ds.subhalos()  # sorted by image
                starts = np.searchsorted(sub["image"], ds.index, side="left")
                stops = np.searchsorted(sub["image"], ds.index, side="right")
                for j, i in enumerate(ds.index):
                    rows = sub[starts[j] : stops[j]]
                    w.write(
                        int(i),
                        hr=ds.hr[j],
                        lr=ds.lr[j],
                        hr_clean=ds.hr_clean[j],
                        label=int(ds.file["label"][j]),
                        params=ds.file["params"][j],
                        subhalos=np.column_stack([rows["x"], rows["y"], rows["mass"]]),
                    )
            return w.finish()
    finally:
        for ds in datasets:
            ds.close()
