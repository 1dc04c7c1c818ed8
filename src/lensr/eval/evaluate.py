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

Example::

    from lensr.eval.evaluate import evaluate
    ckpt = "runs/a/models/rcan-tiny/best.safetensors"
    result = evaluate("test.h5", ["bilinear", "bicubic", ckpt], out_dir="eval/")
    result["models"][2]["scores"]["clean"]["overall"]["psnr"]["mean"]
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn
from tqdm import tqdm

from lensr.data.store import LensDataset, open_dataset
from lensr.errors import LensrError
from lensr.eval.figures import comparison_figure, residual_figure
from lensr.eval.metrics import PSNR_CAP_DB, score_images, summarize_scores
from lensr.eval.stats import summarize
from lensr.infer.upscale import upscale_array
from lensr.models import count_parameters, list_models
from lensr.models.checkpoint import resolve_model

METRICS = ("mse", "psnr", "ssim")
TARGETS = ("noisy", "clean")
REFERENCE = "bicubic"
"""Gains are reported over the model whose spec is this baseline."""
CHUNK = 256
"""Images read, upscaled and scored at a time: memory stays bounded for any N."""
FIGURES = {"comparison": "comparison.png", "residuals": "residuals.png"}
_TARGET_TITLES = {"noisy": "noisy HR", "clean": "noise-free HR"}


@dataclass
class _Model:
    """One model to evaluate and what its run produced."""

    name: str
    spec: str
    module: nn.Module
    seconds: float = 0.0
    scores: dict[str, dict[str, list[np.ndarray]]] = field(default_factory=dict)
    examples: list[np.ndarray] = field(default_factory=list)

    def per_image(self, target: str) -> dict[str, np.ndarray]:
        return {m: np.concatenate(self.scores[target][m]) for m in METRICS}


# Names and models ----------------------------------------------------------------------


def display_name(spec: str) -> str:
    """A model's default display name: the baseline name, or a checkpoint's run folder.

    ``runs/x/models/rcan-tiny/best.safetensors`` -> ``rcan-tiny`` (a trainer run
    folder); ``.../rcan-tiny/last.safetensors`` -> ``rcan-tiny-last``; any other
    checkpoint file -> its stem (``ckpts/rcan_v2.safetensors`` -> ``rcan_v2``).

    Example::

        display_name("bicubic"), display_name("runs/a/models/edsr/best.safetensors")
        # ('bicubic', 'edsr')
    """
    path = Path(spec)
    if path.suffix not in (".safetensors", ".json"):
        return spec
    folder = path.resolve().parent.name
    if path.stem == "best" and folder:
        return folder
    if path.stem == "last" and folder:
        return f"{folder}-last"
    return path.stem


def unique_names(names: Sequence[str]) -> list[str]:
    """Deduplicate by appending ``-2``, ``-3``, ...: ``[a, a, b]`` -> ``[a, a-2, b]``.

    Example::

        unique_names(["rcan", "rcan"])   # ['rcan', 'rcan-2']
    """
    out: list[str] = []
    for name in names:
        candidate, k = name, 2
        while candidate in out:
            candidate, k = f"{name}-{k}", k + 1
        out.append(candidate)
    return out


def _names(models: Sequence[str], names: Sequence[str] | None) -> list[str]:
    if names is None:
        return unique_names([display_name(m) for m in models])
    names = [str(n) for n in names]
    if len(names) != len(models):
        raise LensrError(f"got {len(names)} names for {len(models)} models")
    dup = next((n for n in names if names.count(n) > 1), None)
    if dup is not None:
        raise LensrError(f"model name {dup!r} is given twice; names must be unique")
    if any(not n.strip() for n in names):
        raise LensrError("model names must not be empty")
    return names


def _load_models(models: Sequence[str], names: list[str], *, scale: int, data: str) -> list[_Model]:
    """Resolve every spec and check its scale, before any image is upscaled."""
    baselines = {info.name for info in list_models("baseline")}
    out = []
    for spec, name in zip(models, names, strict=True):
        spec = str(spec)
        module = resolve_model(spec, scale=scale if spec in baselines else None)
        if module.scale != scale:
            raise LensrError(
                f"model {spec} upscales x{module.scale}, but dataset {data} is x{scale} "
                f"(HR/LR); evaluate it on a x{module.scale} dataset"
            )
        out.append(_Model(name=name, spec=spec, module=module))
    return out


def example_positions(n: int, k: int) -> list[int]:
    """``k`` evenly spaced image positions out of ``n`` (centres of k equal bins).

    Example::

        example_positions(12, 3)   # [2, 6, 10]
    """
    k = max(0, min(k, n))
    return [int((i + 0.5) * n / k) for i in range(k)]


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


def _check_out_dir(out_dir) -> Path:
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise LensrError(f"output {out} exists and is not a folder")
    parent = out
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        raise LensrError(f"cannot write into {out}: {parent} is not a writable folder")
    return out


# The run ---------------------------------------------------------------------------------


def _run(
    ds: LensDataset,
    entries: list[_Model],
    *,
    n: int,
    targets: list[str],
    positions: list[int],
    batch_size: int,
    device: str,
    progress: bool,
) -> None:
    """Upscale and score chunk by chunk; fills each entry's seconds, scores and examples."""
    for entry in entries:
        entry.scores = {t: {m: [] for m in METRICS} for t in targets}
    wanted = np.asarray(positions, dtype=np.int64)
    with tqdm(total=n * len(entries), unit="img", disable=not progress) as bar:
        for start in range(0, n, CHUNK):
            stop = min(n, start + CHUNK)
            lr = ds.lr[start:stop]
            truth = {"noisy": ds.hr[start:stop]}
            if "clean" in targets:
                truth["clean"] = ds.hr_clean[start:stop]
            here = wanted[(wanted >= start) & (wanted < stop)] - start
            for entry in entries:
                t0 = time.perf_counter()
                sr = upscale_array(lr, entry.module, batch_size=batch_size, device=device)
                entry.seconds += time.perf_counter() - t0
                for target, hr in truth.items():
                    for metric, values in score_images(sr, hr).items():
                        entry.scores[target][metric].append(values)
                entry.examples.extend(sr[here])
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


def _gains(entries: list[_Model], targets: list[str], **boot) -> dict:
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
                "psnr": summarize(
                    np.minimum(own["psnr"], PSNR_CAP_DB) - np.minimum(base["psnr"], PSNR_CAP_DB),
                    **boot,
                ),
                "ssim": summarize(own["ssim"] - base["ssim"], **boot),
            }
    return out


# Outputs -----------------------------------------------------------------------------------


def _csv_writer(entries, targets, index, labels, classes) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["model", "target", "index", "label", "class", *METRICS])
            for entry in entries:
                for target in targets:
                    s = entry.per_image(target)
                    for i in range(len(index)):
                        w.writerow(
                            [entry.name, target, int(index[i]), int(labels[i]), classes[i]]
                            + [repr(float(s[m][i])) for m in METRICS]
                        )

    return write


def _text_writer(text: str) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_text(text)

    return write


def _figure_writers(ds, entries, positions, labels_of_examples, has_clean):
    if not positions:
        return {}
    idx = np.asarray(positions)
    # h5py fancy indexing needs increasing indices; positions are increasing.
    lr, hr = ds.lr[idx], ds.hr[idx]
    clean = ds.hr_clean[idx] if has_clean else None
    preds = {e.name: np.stack(e.examples) for e in entries}

    def comparison(path: Path) -> None:
        comparison_figure(lr, preds, hr, path, hr_clean=clean, row_labels=labels_of_examples)

    def residuals(path: Path) -> None:
        target, label = (clean, "noise-free HR") if has_clean else (hr, "HR")
        residual_figure(preds, target, path, row_labels=labels_of_examples, target_label=label)

    return {FIGURES["comparison"]: comparison, FIGURES["residuals"]: residuals}


def _write_all(out: Path, writers: dict[str, Callable[[Path], None]]) -> None:
    """Write every file under a temporary name, then rename all; metrics.json goes last."""
    out.mkdir(parents=True, exist_ok=True)
    tmps: dict[str, Path] = {}
    try:
        for name, write in writers.items():
            p = Path(name)
            tmps[name] = out / f".{p.stem}.partial-{os.getpid()}{p.suffix}"
            write(tmps[name])
        for name in sorted(tmps, key=lambda k: k == "metrics.json"):
            os.replace(tmps[name], out / name)
    except BaseException:
        for tmp in tmps.values():
            tmp.unlink(missing_ok=True)
        raise


# Markdown ----------------------------------------------------------------------------------


def _fmt_ci(s: dict, digits: int, *, signed: bool = False) -> tuple[str, str]:
    f = f"{{:+.{digits}f}}" if signed else f"{{:.{digits}f}}"
    return f.format(s["mean"]), f"[{f.format(s['ci_low'])}, {f.format(s['ci_high'])}]"


def _fmt_rate(v: float) -> str:
    return f"{v:,.0f}" if v >= 100 else f"{v:.3g}"


def _bold_best(values: list[str], *, higher: bool) -> list[str]:
    """Bold every entry whose displayed number equals the best displayed number."""
    if len(values) < 2:
        return values
    nums = [float(v.replace(",", "")) for v in values]
    best = max(nums) if higher else min(nums)
    return [f"**{v}**" if x == best else v for v, x in zip(values, nums, strict=True)]


def _target_table(models: list[dict], target: str) -> list[str]:
    rows = [m["scores"][target]["overall"] for m in models]
    mse = _bold_best([f"{r['mse']['mean']:.3e}" for r in rows], higher=False)
    psnr = [_fmt_ci(r["psnr"], 2) for r in rows]
    ssim = [_fmt_ci(r["ssim"], 4) for r in rows]
    psnr_mean = _bold_best([p[0] for p in psnr], higher=True)
    ssim_mean = _bold_best([s[0] for s in ssim], higher=True)
    rate = _bold_best([_fmt_rate(m["images_per_s"]) for m in models], higher=True)
    lines = [
        "| model | params | MSE | PSNR (dB) [95 % CI] | SSIM [95 % CI] | upscale img/s |",
        "|:--|--:|--:|--:|--:|--:|",
    ]
    for i, m in enumerate(models):
        lines.append(
            f"| {m['name']} | {m['params']:,} | {mse[i]} | {psnr_mean[i]} {psnr[i][1]} "
            f"| {ssim_mean[i]} {ssim[i][1]} | {rate[i]} |"
        )
    return lines


def _gain_table(gains: dict[str, dict]) -> list[str]:
    lines = [
        f"Gain over {REFERENCE} (per-image differences, paired bootstrap):",
        "",
        "| model | ΔPSNR (dB) [95 % CI] | ΔSSIM [95 % CI] |",
        "|:--|--:|--:|",
    ]
    for name, g in gains.items():
        p, s = _fmt_ci(g["psnr"], 2, signed=True), _fmt_ci(g["ssim"], 4, signed=True)
        lines.append(f"| {name} | {p[0]} {p[1]} | {s[0]} {s[1]} |")
    return lines


def markdown_tables(result: dict) -> str:
    """The ``table.md`` text of an ``evaluate`` result (or a loaded ``metrics.json``).

    Example::

        print(markdown_tables(json.loads(Path("eval/metrics.json").read_text())))
    """
    lines = [
        f"# Evaluation on {Path(result['dataset']).name} (n = {result['n']}, x{result['scale']})",
        "",
        "Per image, the HR target is min-max normalised to [0, 1] and the prediction mapped "
        "the same way (data range 1); mean over images [95 % bootstrap CI]. "
        "Best value per column in bold.",
    ]
    for target in result["targets"]:
        lines += ["", f"## Against the {_TARGET_TITLES[target]}", ""]
        lines += _target_table(result["models"], target)
        gains = result.get("gains_vs_bicubic", {}).get(target)
        if gains:
            lines += [""] + _gain_table(gains)
    return "\n".join(lines) + "\n"


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
) -> dict:
    """Score ``models`` on the dataset ``data`` and write metrics, tables and figures.

    ``models`` mixes baseline names ("bilinear", "bicubic") and checkpoint paths; their
    display ``names`` default to :func:`display_name`, deduplicated. The first
    ``max_images`` images (default None: all) are upscaled ``batch_size`` (default 16)
    at a time on ``device`` (default "cpu"); throughput is images / wall time of
    ``upscale_array``. Summaries use ``n_boot`` (default 2000) bootstrap resamples with
    ``seed`` (default 0), so everything but the throughput is deterministic.
    ``examples`` (default 3) evenly spaced images go into the figures. Per-class
    summaries cover the classes present among the evaluated images. ``progress``
    (default True) shows a progress bar.

    Every check (dataset, options, models and their scale) runs before any image is
    upscaled, and a failure leaves no new file in ``out_dir``. Returns the content of
    ``metrics.json``: dataset, n, scale, class_names, targets, models (name, spec,
    arch, params, images_per_s, scores), figures, examples (row positions in the
    file) and gains_vs_bicubic (``{target: {model: {"psnr": S, "ssim": S}}}``, empty
    without a bicubic model).

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
    out = _check_out_dir(out_dir)
    ds = data if isinstance(data, LensDataset) else open_dataset(data)
    try:
        return _evaluate(
            ds,
            models,
            out=out,
            names=_names(models, names),
            max_images=max_images,
            batch_size=batch_size,
            boot={"n_boot": n_boot, "seed": seed},
            examples=examples,
            device=device,
            progress=progress,
        )
    finally:
        if ds is not data:
            ds.close()


def _evaluate(ds, models, *, out, names, max_images, batch_size, boot, examples, device, progress):
    if len(ds) == 0:
        raise LensrError(f"dataset {ds.path} holds no images")
    n = len(ds) if max_images is None else min(max_images, len(ds))
    entries = _load_models(models, names, scale=ds.scale, data=str(ds.path))
    targets = [t for t in TARGETS if t == "noisy" or ds.hr_clean is not None]
    positions = example_positions(n, examples)
    _run(
        ds,
        entries,
        n=n,
        targets=targets,
        positions=positions,
        batch_size=batch_size,
        device=device,
        progress=progress,
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
            }
            for e in entries
        ],
        "figures": dict(FIGURES) if positions else {},
        "examples": positions,
        "gains_vs_bicubic": _gains(entries, targets, **boot),
    }
    example_labels = [f"#{int(index[p])} · {classes[p]}" for p in positions]
    writers = {
        "metrics.csv": _csv_writer(entries, targets, index, labels, classes),
        "table.md": _text_writer(markdown_tables(result)),
        **_figure_writers(ds, entries, positions, example_labels, "clean" in targets),
        "metrics.json": _text_writer(json.dumps(result, indent=2, allow_nan=False) + "\n"),
    }
    _write_all(out, writers)
    return result
