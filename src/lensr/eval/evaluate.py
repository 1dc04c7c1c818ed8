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
from lensr.eval.consistency import LRInstrument, lr_chi2, lr_instrument, trust_figure
from lensr.eval.figures import comparison_figure, residual_figure
from lensr.eval.metrics import PSNR_CAP_DB, score_images, summarize_scores
from lensr.eval.stats import summarize
from lensr.infer.projection import back_project
from lensr.infer.uncertainty import calibration_per_image, predict_with_uncertainty
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
TRUST_FIGURE = {"trust": "trust.png"}
PROJ_SUFFIX = "+proj"
"""Name suffix of a model scored after the consistency projection."""
UNCERTAINTY_METHOD = "dihedral-tta-8"
CALIBRATION_KEYS = ("within_1sigma", "within_2sigma")
_TARGET_TITLES = {"noisy": "noisy HR", "clean": "noise-free HR"}


@dataclass
class _Trust:
    """The trust options of one run, and what could be measured."""

    uncertainty: bool = True
    consistent: bool = False
    lr_psf_fwhm: float | None = None
    hr_psf_fwhm: float = 0.0
    pixel_scale: float | None = None
    instrument: str | None = None  # "simulation", "gaussian" or None (chi2 skipped)
    notes: list[str] = field(default_factory=list)

    def for_chunk(self, ds, start: int, lr: np.ndarray) -> LRInstrument | None:
        if self.instrument is None:
            return None
        return lr_instrument(
            ds,
            np.arange(start, start + len(lr)),
            lr=lr,
            lr_psf_fwhm=self.lr_psf_fwhm,
            hr_psf_fwhm=self.hr_psf_fwhm,
            pixel_scale=self.pixel_scale,
        )


@dataclass
class _Flagged:
    """The image a model's trust measures flag most (highest chi2, else highest sigma)."""

    score: float
    position: int
    sr: np.ndarray
    chi2_map: np.ndarray | None
    sigma: np.ndarray | None
    truth: np.ndarray | None


@dataclass
class _Model:
    """One model to evaluate and what its run produced."""

    name: str
    spec: str
    module: nn.Module
    seconds: float = 0.0
    scores: dict[str, dict[str, list[np.ndarray]]] = field(default_factory=dict)
    examples: list[np.ndarray] = field(default_factory=list)
    chi2: list[np.ndarray] = field(default_factory=list)
    calibration: dict[str, list[np.ndarray]] = field(default_factory=dict)
    iterations: list[np.ndarray] = field(default_factory=list)
    flagged: _Flagged | None = None
    projected_from: str | None = None
    proj: _Model | None = None

    def per_image(self, target: str) -> dict[str, np.ndarray]:
        return {m: np.concatenate(self.scores[target][m]) for m in METRICS}

    def chi2_per_image(self) -> np.ndarray | None:
        return np.concatenate(self.chi2) if self.chi2 else None

    def calibration_per_image(self) -> dict[str, np.ndarray] | None:
        if not self.calibration:
            return None
        return {k: np.concatenate(v) for k, v in self.calibration.items()}

    def add_scores(self, sr: np.ndarray, truth: dict[str, np.ndarray]) -> None:
        for target, hr in truth.items():
            for metric, values in score_images(sr, hr).items():
                self.scores[target][metric].append(values)

    def flag(self, start: int, sr, chi2, maps, sigma, truth) -> None:
        """Keep the chunk's most suspicious image if it beats the one kept so far."""
        measure = chi2
        if measure is None and sigma is not None:
            measure = sigma.mean(axis=(1, 2))
        if measure is None:
            return
        i = int(np.argmax(measure))
        if self.flagged is not None and not measure[i] > self.flagged.score:
            return
        self.flagged = _Flagged(
            score=float(measure[i]),
            position=start + i,
            sr=sr[i].copy(),
            chi2_map=None if maps is None else maps[i].copy(),
            sigma=None if sigma is None else sigma[i].copy(),
            truth=None if truth is None else truth[i].copy(),
        )


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


def check_out_dir(out_dir) -> Path:
    """``out_dir`` as a Path if it is (or can become) a writable folder; else a LensrError."""
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
    trust: _Trust | None = None,
) -> None:
    """Upscale and score chunk by chunk; fills each entry's seconds, scores and examples,
    and, with ``trust``, its LR chi2, calibration, flagged image and projected twin."""
    trust = trust or _Trust(uncertainty=False)
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
            for entry in entries:
                t0 = time.perf_counter()
                sr = upscale_array(lr, entry.module, batch_size=batch_size, device=device)
                elapsed = time.perf_counter() - t0
                entry.seconds += elapsed
                entry.add_scores(sr, truth)
                entry.examples.extend(sr[here])
                options = {"batch_size": batch_size, "device": device}
                _trust_measures(entry, start, lr, sr, truth, instrument, trust, options)
                if entry.proj is not None:
                    _project(entry.proj, lr, sr, truth, instrument, here, elapsed)
                bar.update(stop - start)


def _trust_measures(entry, start, lr, sr, truth, instrument, trust, options) -> None:
    """LR chi2, TTA sigma and its calibration against the noise-free HR, the flagged image."""
    chi2 = maps = sigma = None
    if instrument is not None:
        chi2, maps = lr_chi2(sr, lr, instrument.D, instrument.variance)
        entry.chi2.append(chi2)
    if trust.uncertainty:
        mean, sigma = predict_with_uncertainty(lr, entry.module, identity=sr, **options)
        if "clean" in truth:
            for key, values in calibration_per_image(mean, sigma, truth["clean"]).items():
                entry.calibration.setdefault(key, []).append(values)
    reference = truth.get("clean", truth["noisy"])
    entry.flag(start, sr, chi2, maps, sigma, reference)


def _project(proj: _Model, lr, sr, truth, instrument: LRInstrument, here, elapsed) -> None:
    """Score the consistency projection of ``sr``; its time includes the upscale's."""
    t0 = time.perf_counter()
    x, info = back_project(sr, lr, instrument.D, variance=instrument.variance)
    proj.seconds += elapsed + time.perf_counter() - t0
    proj.add_scores(x, truth)
    proj.chi2.append(lr_chi2(x, lr, instrument.D, instrument.variance)[0])
    proj.iterations.append(info.iterations)
    proj.examples.extend(x[here])


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


CSV_TRUST_COLUMNS = ("chi2_lr", *CALIBRATION_KEYS)
"""Per-image trust columns of metrics.csv: empty where not measured; calibration (always
against the noise-free HR) is on the "clean" rows only."""


def _csv_writer(entries, targets, index, labels, classes) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["model", "target", "index", "label", "class", *METRICS, *CSV_TRUST_COLUMNS])
            for entry in entries:
                chi2 = entry.chi2_per_image()
                calib = entry.calibration_per_image()
                for target in targets:
                    s = entry.per_image(target)
                    for i in range(len(index)):
                        trust = [repr(float(chi2[i])) if chi2 is not None else ""]
                        trust += [
                            repr(float(calib[k][i])) if calib and target == "clean" else ""
                            for k in CALIBRATION_KEYS
                        ]
                        w.writerow(
                            [entry.name, target, int(index[i]), int(labels[i]), classes[i]]
                            + [repr(float(s[m][i])) for m in METRICS]
                            + trust
                        )

    return write


def _text_writer(text: str) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_text(text)

    return write


def _trust_writer(ds, entries, index, classes) -> dict[str, Callable[[Path], None]]:
    flagged = [(e.name, e.flagged) for e in entries if e.flagged is not None]
    if not flagged:
        return {}
    rows = [
        {
            "label": f"{name} · #{int(index[f.position])} · {classes[f.position]}",
            "sr": f.sr,
            "chi2": f.chi2_map,
            "sigma": f.sigma,
            "error": None if f.truth is None else np.abs(f.sr - f.truth),
        }
        for name, f in flagged
    ]
    error_label = "|SR - noise-free HR|" if ds.hr_clean is not None else "|SR - HR|"

    def write(path: Path) -> None:
        trust_figure(rows, path, error_label=error_label)

    return {TRUST_FIGURE["trust"]: write}


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
    lines += _trust_table(result)
    return "\n".join(lines) + "\n"


def _trust_table(result: dict) -> list[str]:
    """The "Can we trust it?" part of table.md: LR chi2 and sigma calibration per model."""
    trust = result.get("trust") or {}
    models = [m for m in result["models"] if "chi2_lr" in m or "calibration" in m]
    notes = [f"Note: {n}" for n in trust.get("notes", [])]
    if not models:
        return ["", "## Can we trust it?", "", *notes] if notes else []
    lines = [
        "",
        "## Can we trust it?",
        "",
        "LR-consistency: each output degraded with the LR instrument vs the observed LR "
        "image, chi-square per LR pixel (~1: consistent within the noise; more: the output "
        "contradicts the data). Calibration: fraction of pixels whose error against the "
        "noise-free HR lies within 1 / 2 sigma of the dihedral test-time spread "
        "(ideal 0.683 / 0.954; lower: overconfident; 0.000: sigma is zero, as for a model "
        "that is symmetric under those transforms, e.g. bicubic).",
        "",
        "| model | χ²/pixel (LR) [95 % CI] | within 1σ (0.683) | within 2σ (0.954) |",
        "|:--|--:|--:|--:|",
    ]
    for m in models:
        chi2 = m.get("chi2_lr", {}).get("overall")
        calib = m.get("calibration", {}).get("overall", {})
        cells = [" ".join(_fmt_ci(chi2, 3)) if chi2 else "–"]
        cells += [f"{calib[k]['mean']:.3f}" if k in calib else "–" for k in CALIBRATION_KEYS]
        lines.append(f"| {m['name']} | " + " | ".join(cells) + " |")
    return lines + ([""] + notes if notes else [])


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
    display ``names`` default to :func:`display_name`, deduplicated. The first
    ``max_images`` images (default None: all) are upscaled ``batch_size`` (default 16)
    at a time on ``device`` (default "cpu"); throughput is images / wall time of
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
    trust = _Trust(
        uncertainty=uncertainty,
        consistent=consistent,
        lr_psf_fwhm=lr_psf_fwhm,
        hr_psf_fwhm=hr_psf_fwhm,
        pixel_scale=pixel_scale,
    )
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
            trust=trust,
        )
    finally:
        if ds is not data:
            ds.close()


def _check_trust(ds, trust: _Trust, names: list[str]) -> None:
    """Find the LR instrument (or why there is none) before any work; fills ``trust``."""
    try:
        found = lr_instrument(
            ds,
            [0],
            lr=ds.lr[:1],
            lr_psf_fwhm=trust.lr_psf_fwhm,
            hr_psf_fwhm=trust.hr_psf_fwhm,
            pixel_scale=trust.pixel_scale,
        )
        trust.instrument = found.source
    except LensrError as err:
        if trust.consistent:
            raise LensrError(f"the consistency projection needs the LR instrument: {err}") from None
        trust.notes.append(f"LR-consistency skipped: {err}")
    if trust.consistent:
        clash = next((f"{n}{PROJ_SUFFIX}" for n in names if f"{n}{PROJ_SUFFIX}" in names), None)
        if clash:
            raise LensrError(f"model name {clash!r} is taken; it names a projected model")
    if trust.uncertainty and ds.hr_clean is None:
        trust.notes.append("calibration skipped: the dataset has no noise-free HR images")


def _with_projections(entries: list[_Model]) -> list[_Model]:
    """Each model followed, after all originals, by its projected twin."""
    for e in entries:
        e.proj = _Model(
            name=f"{e.name}{PROJ_SUFFIX}", spec=e.spec, module=e.module, projected_from=e.name
        )
    return entries + [e.proj for e in entries]


def _trust_keys(e: _Model, class_arr: np.ndarray, order: list[str], boot: dict) -> dict:
    """The per-model trust entries of metrics.json (only what was measured)."""
    out: dict = {}

    def split(values: np.ndarray) -> dict:
        return {
            "overall": summarize(values, **boot),
            "per_class": {c: summarize(values[class_arr == c], **boot) for c in order},
        }

    chi2 = e.chi2_per_image()
    if chi2 is not None:
        out["chi2_lr"] = split(chi2)
    calib = e.calibration_per_image()
    if calib is not None:
        out["calibration"] = {
            "overall": {k: summarize(v, **boot) for k, v in calib.items()},
            "per_class": {
                c: {k: summarize(v[class_arr == c], **boot) for k, v in calib.items()}
                for c in order
            },
        }
    if e.projected_from is not None:
        out["projected_from"] = e.projected_from
        out["projection"] = {"iterations": summarize(np.concatenate(e.iterations), **boot)}
    return out


def _trust_summary(trust: _Trust, entries: list[_Model], index, classes, has_clean) -> dict:
    flagged = {}
    for e in entries:
        f = e.flagged
        if f is None:
            continue
        flagged[e.name] = {
            "position": f.position,
            "index": int(index[f.position]),
            "class": classes[f.position],
            "chi2_lr": float(f.chi2_map.mean()) if f.chi2_map is not None else None,
            "sigma_mean": float(f.sigma.mean()) if f.sigma is not None else None,
        }
    return {
        "lr_instrument": trust.instrument,
        "uncertainty": UNCERTAINTY_METHOD if trust.uncertainty else None,
        "calibration_target": "clean" if trust.uncertainty and has_clean else None,
        "notes": list(trust.notes),
        "flagged": flagged,
    }


def _evaluate(
    ds, models, *, out, names, max_images, batch_size, boot, examples, device, progress, trust
):
    if len(ds) == 0:
        raise LensrError(f"dataset {ds.path} holds no images")
    n = len(ds) if max_images is None else min(max_images, len(ds))
    entries = _load_models(models, names, scale=ds.scale, data=str(ds.path))
    _check_trust(ds, trust, names)
    originals = entries
    if trust.consistent:
        entries = _with_projections(entries)
    targets = [t for t in TARGETS if t == "noisy" or ds.hr_clean is not None]
    positions = example_positions(n, examples)
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
                **_trust_keys(e, class_arr, order, boot),
            }
            for e in entries
        ],
        "figures": dict(FIGURES) if positions else {},
        "examples": positions,
        "gains_vs_bicubic": _gains(entries, targets, **boot),
        "trust": _trust_summary(trust, originals, index, classes, "clean" in targets),
    }
    trust_figures = _trust_writer(ds, originals, index, classes) if positions else {}
    if trust_figures:
        result["figures"].update(TRUST_FIGURE)
    example_labels = [f"#{int(index[p])} · {classes[p]}" for p in positions]
    writers = {
        "metrics.csv": _csv_writer(entries, targets, index, labels, classes),
        "table.md": _text_writer(markdown_tables(result)),
        **_figure_writers(ds, entries, positions, example_labels, "clean" in targets),
        **trust_figures,
        "metrics.json": _text_writer(json.dumps(result, indent=2, allow_nan=False) + "\n"),
    }
    _write_all(out, writers)
    return result
