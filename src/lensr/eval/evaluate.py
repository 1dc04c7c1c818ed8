"""`lensr evaluate`: score baselines and checkpoints on one dataset, with CIs and figures.

Every model upscales the same LR images; each prediction is scored per image against
the noisy HR and, when the dataset has it, the noise-free HR (``hr_clean``), under the
project convention of :mod:`lensr.eval.metrics`. Summaries (mean, std, 95 % bootstrap
interval) are given overall and per class, and every network's gain over bicubic is
bootstrapped over per-image differences (paired: same images).

Outputs in ``out_dir``, each written to a temporary name and renamed at the very end
(``metrics.json`` last, so its presence means the run finished):

``metrics.json``   summaries, throughput, gains; the schema the report stage reads
``metrics.csv``    one row per (model, target, image); raw per-image values (an exact
                   prediction has PSNR ``inf`` here, capped at 100 dB in the summaries)
``table.md``       a Markdown table per target, best values in bold, gains below
``comparison.png`` LR | models | HR for a few fixed examples, with a zoom
``residuals.png``  model - HR maps of the same examples
``trust.png``      per model, the image its trust measures flag most: SR, LR chi2 map,
                   sigma map (and |error| on simulations)

Trust measures ("Can we trust it?", :mod:`lensr.eval.consistency`,
:mod:`lensr.infer.uncertainty`, :mod:`lensr.infer.projection`): every model's output is
degraded with the LR instrument and compared with the observed LR image (``chi2_lr``, ~1
for a truthful model; simulated datasets carry their instrument, imported ones need
``lr_psf_fwhm``, else it is skipped with a note in ``trust.notes``); with
``uncertainty=True`` (default) the 8 dihedral test-time transforms give a per-pixel
sigma whose ``calibration`` against the noise-free HR is reported (this costs 7 more
upscales per model: 8x the inference time); with ``consistent=True`` each model is also
scored after the consistency projection, as ``"<name>+proj"``.

The run is split by concern: :mod:`lensr.eval.model_runs` (names, loading, the
per-model record), :mod:`lensr.eval.trust_measures`, :mod:`lensr.eval.tables`
(``table.md``), :mod:`lensr.eval.evaluate_outputs` (``metrics.csv`` and the figures) and
:mod:`lensr.eval.output_dir` (all-or-nothing writing); this module holds the entry point
and the scoring loop.

Example::

    from lensr.eval.evaluate import evaluate
    ckpt = "runs/a/models/rcan-tiny/best.safetensors"
    result = evaluate("test.h5", ["bilinear", "bicubic", ckpt], out_dir="eval/")
    result["models"][2]["scores"]["clean"]["overall"]["psnr"]["mean"]
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence

import numpy as np
from tqdm import tqdm

from lensr.data.store import LensDataset, open_dataset
from lensr.errors import LensrError
from lensr.eval.evaluate_outputs import (
    FIGURES,
    TRUST_FIGURE,
    csv_writer,
    example_positions,
    figure_writers,
    trust_figure_writer,
)
from lensr.eval.metrics import PSNR_CAP_DB, summarize_scores
from lensr.eval.model_runs import METRICS, REFERENCE, ModelRun, load_models, model_names
from lensr.eval.output_dir import check_out_dir, json_writer, text_writer, write_all
from lensr.eval.paired import paired_comparisons
from lensr.eval.physics_metrics import PhysicsRecorder
from lensr.eval.stats import bootstrap_summary
from lensr.eval.tables import markdown_tables
from lensr.eval.trust_measures import (
    TrustOptions,
    check_trust,
    measure_trust,
    measure_truth,
    project,
    store_calibrations,
    trust_keys,
    trust_summary,
    with_projections,
)
from lensr.infer.arrays import upscale_array
from lensr.io import file_lock
from lensr.models import count_parameters

TARGETS = ("noisy", "clean")
CHUNK = 256
"""Images read, upscaled and scored at a time: memory stays bounded for any N."""


# Checks ----------------------------------------------------------------------------------


def _check_options(*, models, max_images, batch_size, n_boot, examples) -> None:
    if not models:
        raise LensrError("no models to evaluate: give baselines and/or checkpoint paths")
    if max_images is not None and max_images < 1:
        raise LensrError(f"max_images must be >= 1, got {max_images}")
    if batch_size < 1:
        raise LensrError(f"batch size must be >= 1, got {batch_size}")
    if n_boot < 1:
        raise LensrError(f"n_boot must be >= 1, got {n_boot}")
    if examples < 0:
        raise LensrError(f"examples must be >= 0, got {examples}")


# The run ---------------------------------------------------------------------------------


def _run(
    ds: LensDataset,
    entries: list[ModelRun],
    *,
    n: int,
    targets: list[str],
    positions: list[int],
    batch_size: int,
    device: str,
    progress: bool,
    trust: TrustOptions | None = None,
    physics: PhysicsRecorder | None = None,
) -> None:
    """Upscale and score chunk by chunk; fills each entry's seconds, scores and examples,
    and, with ``trust``, its LR chi2, calibration, flagged image and projected twin."""
    trust = trust or TrustOptions(uncertainty=False)
    for entry in entries:
        entry.scores = {t: {m: [] for m in METRICS} for t in targets}
        if entry.proj is not None:
            entry.proj.scores = {t: {m: [] for m in METRICS} for t in targets}
    wanted = np.asarray(positions, dtype=np.int64)
    with tqdm(total=n * len(entries), unit="img", disable=not progress) as bar:
        for start in range(0, n, CHUNK):
            stop = min(n, start + CHUNK)
            lr = ds.lr[start:stop]
            truth = {"noisy": ds.hr[start:stop]}
            if "clean" in targets:
                truth["clean"] = ds.hr_clean[start:stop]
            here = wanted[(wanted >= start) & (wanted < stop)] - start
            instrument = trust.for_chunk(ds, start, lr)
            measure_truth(trust, lr, truth, instrument)
            if physics is not None:
                physics.chunk(start, truth.get("clean"))
            for entry in entries:
                t0 = time.perf_counter()
                sr = upscale_array(lr, entry.module, batch_size=batch_size, device=device)
                elapsed = time.perf_counter() - t0
                entry.seconds += elapsed
                entry.add_scores(sr, truth)
                if physics is not None:
                    physics.add(entry.name, sr)
                entry.examples.extend(sr[here])
                options = {"batch_size": batch_size, "device": device}
                measure_trust(entry, start, lr, sr, truth, instrument, trust, options)
                if entry.proj is not None:
                    project(entry.proj, lr, sr, truth, instrument, here, elapsed)
                bar.update(stop - start)


def _class_of(labels: np.ndarray, class_names: list[str]) -> list[str]:
    return [class_names[k] if 0 <= k < len(class_names) else str(int(k)) for k in labels.tolist()]


def _class_order(classes: list[str], class_names: list[str]) -> list[str]:
    present = set(classes)
    known = [c for c in class_names if c in present]
    return known + sorted(present - set(known))


def _summaries(
    per_image: dict[str, np.ndarray], classes: np.ndarray, order: list[str], **boot
) -> dict:
    return {
        "overall": summarize_scores(per_image, **boot),
        "per_class": {
            c: summarize_scores({m: v[classes == c] for m, v in per_image.items()}, **boot)
            for c in order
        },
    }


def _gains(entries: list[ModelRun], targets: list[str], **boot) -> dict:
    """Paired per-image differences (model - bicubic) of PSNR and SSIM, bootstrapped."""
    ref = next((e for e in entries if e.spec == REFERENCE), None)
    if ref is None:
        return {}
    out = {}
    for target in targets:
        base = ref.per_image(target)
        out[target] = {}
        for entry in entries:
            if entry is ref:
                continue
            own = entry.per_image(target)
            out[target][entry.name] = {
                # The same cap as summarize_scores, so gains equal differences of the means.
                "psnr": bootstrap_summary(
                    np.minimum(own["psnr"], PSNR_CAP_DB) - np.minimum(base["psnr"], PSNR_CAP_DB),
                    **boot,
                ),
                "ssim": bootstrap_summary(own["ssim"] - base["ssim"], **boot),
            }
    return out


# Entry point ---------------------------------------------------------------------------------


def evaluate(
    data: str | os.PathLike | LensDataset,
    models: Sequence[str],
    *,
    out_dir: str | os.PathLike,
    names: Sequence[str] | None = None,
    max_images: int | None = None,
    batch_size: int = 16,
    n_boot: int = 2000,
    seed: int = 0,
    examples: int = 3,
    device: str = "cpu",
    progress: bool = True,
    uncertainty: bool = True,
    consistent: bool = False,
    lr_psf_fwhm: float | None = None,
    hr_psf_fwhm: float = 0.0,
    pixel_scale: float | None = None,
) -> dict:
    """Score ``models`` on the dataset ``data`` and write metrics, tables and figures.

    ``models`` mixes baseline names ("bilinear", "bicubic") and checkpoint paths; their
    display ``names`` default to :func:`~lensr.eval.model_runs.display_name`,
    deduplicated. The first ``max_images`` images (default None: all) are upscaled
    ``batch_size`` (default 16) at a time on ``device`` (default "cpu"); throughput is
    images / wall time of
    ``upscale_array``. Summaries use ``n_boot`` (default 2000) bootstrap resamples with
    ``seed`` (default 0), so everything but the throughput is deterministic.
    ``examples`` (default 3) evenly spaced images go into the figures. Per-class
    summaries cover the classes present among the evaluated images. ``progress``
    (default True) shows a progress bar.

    Trust measures (see the module docstring): every model's LR chi-square per pixel
    (``chi2_lr``) when the LR instrument is known: stored for simulations, else a
    Gaussian PSF of ``lr_psf_fwhm`` arcsec (default None: skipped, with a note),
    ``hr_psf_fwhm`` (default 0) and ``pixel_scale`` (LR arcsec/pixel, default the
    dataset's). ``uncertainty`` (default True; 8x the inference cost) adds the
    dihedral test-time sigma, its ``calibration`` on simulations and the ``trust.png``
    figure (when ``examples`` > 0). ``consistent`` (default False) also scores every
    model after the consistency projection as ``"<name>+proj"``; it needs the LR
    instrument.

    Every check (dataset, options, models and their scale) runs before any image is
    upscaled, and a failure leaves no new file in ``out_dir``. Returns the content of
    ``metrics.json``: dataset, n, scale, class_names, targets, models (name, spec,
    arch, params, images_per_s, scores, and when measured chi2_lr
    (``{"overall": S, "per_class": {class: S}}``), calibration (the same with
    ``{"within_1sigma": S, "within_2sigma": S}``), projected_from and projection),
    figures, examples (row positions in the file), gains_vs_bicubic (``{target:
    {model: {"psnr": S, "ssim": S}}}``, empty without a bicubic model) and trust
    (lr_instrument, uncertainty, calibration_target, notes, flagged images).

    Example::

        r = evaluate("test.h5", ["bicubic", "runs/a/models/rcan-tiny/best.safetensors"],
                     out_dir="eval", max_images=200)
        r["gains_vs_bicubic"]["clean"]["rcan-tiny"]["psnr"]["mean"]
    """
    if isinstance(models, str | os.PathLike):
        raise LensrError("models must be a list of baseline names or checkpoint paths")
    models = [str(m) for m in models]
    _check_options(
        models=models,
        max_images=max_images,
        batch_size=batch_size,
        n_boot=n_boot,
        examples=examples,
    )
    out = check_out_dir(out_dir)
    trust = TrustOptions(
        uncertainty=uncertainty,
        consistent=consistent,
        lr_psf_fwhm=lr_psf_fwhm,
        hr_psf_fwhm=hr_psf_fwhm,
        pixel_scale=pixel_scale,
    )
    ds = data if isinstance(data, LensDataset) else open_dataset(data)
    try:
        with file_lock(out):  # a second run into `out` is refused, for the whole write
            return _evaluate(
                ds,
                models,
                out=out,
                names=model_names(models, names),
                max_images=max_images,
                batch_size=batch_size,
                boot={"n_boot": n_boot, "seed": seed},
                examples=examples,
                device=device,
                progress=progress,
                trust=trust,
            )
    finally:
        if ds is not data:
            ds.close()


def _evaluate(
    ds, models, *, out, names, max_images, batch_size, boot, examples, device, progress, trust
):
    if len(ds) == 0:
        raise LensrError(f"dataset {ds.path} holds no images")
    n = len(ds) if max_images is None else min(max_images, len(ds))
    entries = load_models(models, names, scale=ds.scale, data=str(ds.path))
    check_trust(ds, trust, names)
    originals = entries
    if trust.consistent:
        entries = with_projections(entries)
    targets = [t for t in TARGETS if t == "noisy" or ds.hr_clean is not None]
    positions = example_positions(n, examples)
    physics = PhysicsRecorder(ds)
    _run(
        ds,
        originals,
        n=n,
        targets=targets,
        positions=positions,
        batch_size=batch_size,
        device=device,
        progress=progress,
        trust=trust,
        physics=physics,
    )
    labels, index = ds.labels[:n], ds.index[:n]
    classes = _class_of(labels, ds.class_names)
    order = _class_order(classes, ds.class_names)
    class_arr = np.asarray(classes, dtype=object)
    result = {
        "dataset": str(ds.path),
        "n": int(n),
        "scale": int(ds.scale),
        "class_names": ds.class_names,
        "targets": targets,
        "models": [
            {
                "name": e.name,
                "spec": e.spec,
                "arch": str(getattr(e.module, "arch", e.module.metadata.get("arch", "?"))),
                "params": int(count_parameters(e.module)),
                "images_per_s": float(n / max(e.seconds, 1e-9)),
                "scores": {
                    t: _summaries(e.per_image(t), class_arr, order, **boot) for t in targets
                },
                **trust_keys(e, class_arr, order, boot),
            }
            for e in entries
        ],
        "figures": dict(FIGURES) if positions else {},
        "examples": positions,
        "gains_vs_bicubic": _gains(entries, targets, **boot),
        "paired": {
            t: paired_comparisons({e.name: e.per_image(t) for e in entries}, **boot)
            for t in targets
        },
        "physics": physics.summary(boot),
        "trust": trust_summary(trust, originals, index, classes, "clean" in targets, boot),
    }
    trust_figures = trust_figure_writer(ds, originals, index, classes) if positions else {}
    if trust_figures:
        result["figures"].update(TRUST_FIGURE)
    example_labels = [f"#{int(index[p])} · {classes[p]}" for p in positions]
    writers = {
        "metrics.csv": csv_writer(entries, targets, index, labels, classes),
        "table.md": text_writer(markdown_tables(result)),
        **figure_writers(ds, entries, positions, example_labels, "clean" in targets),
        **trust_figures,
        "metrics.json": json_writer(result),
    }
    write_all(out, writers)
    store_calibrations(originals, result, ds)
    return result
