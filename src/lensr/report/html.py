"""`lensr report`: one self-contained HTML page that summarises a study run folder.

The page has inline CSS, images embedded as base64 PNG ``data:`` URIs, no JavaScript and no
external requests: it opens from disk in any browser and can be mailed as one file.

Run folder layout read (every piece optional; see ``DESIGN.md``)::

    study.yaml  stages.json  environment.json
    data/<name>.json, data/<name>.png          inspect summary + preview grid per dataset
    lr_sweep/lr_sweep.json, lr_sweep.png       learning-rate sweep
    models/<name>/best.json, logs/version_*/   one training run each
    eval/<name>/metrics.json, *.png            evaluation of models on a dataset

Adding a section
----------------
The page body is :data:`SECTIONS`, an ordered list of *section builders*: functions
``(run_dir: Path) -> str | None`` that return one HTML fragment, or ``None`` when their
inputs are absent (the section is then left out). To add a section (transfer learning,
classification, trust, ...) write one such function, make its fragment with :func:`section`
(so it gets an anchor and a line in the table of contents) and the small helpers here
(:func:`table`, :func:`figure`, :func:`note`, :func:`guarded`), and append it to
:data:`SECTIONS` (or insert it where it belongs). Inside a builder, wrap the reading of each
input file in :func:`guarded` so that one malformed file becomes a visible note, not a crash;
a builder that raises anyway is also turned into a note by :func:`build_report`.

>>> from lensr.report import build_report
>>> build_report("runs/demo")          # -> runs/demo/report.html
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path

from lensr.errors import LensrError

SectionBuilder = Callable[[Path], "str | None"]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TARGET_LABELS = {"noisy": "noisy HR", "clean": "noise-free HR"}
TARGET_EXPLAINED = {
    "noisy": "against the noisy HR image, as in the literature",
    "clean": "against the noise-free HR image, the truth the physics cares about "
    "(no model can or should reproduce the noise)",
}

# --------------------------------------------------------------------------- formatting


def esc(value: object) -> str:
    """``value`` as text, HTML-escaped (quotes too)."""
    return html.escape(str(value), quote=True)


def _finite(value: object) -> float | None:
    """``value`` as a finite float, or None when it is missing, NaN or not a number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def fmt(value: object, *, kind: str = "auto", sign: bool = False) -> str:
    """A number formatted for a table: ``psnr`` 2 decimals, ``ssim`` 4 decimals, ``mse``
    3 significant digits in scientific notation, ``int`` with thousands separators,
    ``auto`` 4 significant digits. Missing or non-numeric values give an en dash."""
    number = _finite(value)
    if number is None:
        return "–" if value is None or isinstance(value, int | float) else esc(value)
    plus = "+" if sign else ""
    if kind == "psnr":
        return f"{number:{plus}.2f}"
    if kind == "ssim":
        return f"{number:{plus}.4f}"
    if kind == "mse":
        return f"{number:{plus}.2e}"
    if kind == "int" or (kind == "auto" and number.is_integer() and abs(number) < 1e15):
        return f"{int(number):{plus},}"
    return f"{number:{plus}.4g}"


def fmt_stat(summary: object, *, kind: str, sign: bool = False, ci: bool = True) -> str:
    """A metric summary ``{"mean", "ci_low", "ci_high", ...}`` as ``mean [low, high]``."""
    if not isinstance(summary, dict):
        return "–"
    text = fmt(summary.get("mean"), kind=kind, sign=sign)
    low, high = summary.get("ci_low"), summary.get("ci_high")
    if ci and _finite(low) is not None and _finite(high) is not None:
        low_text, high_text = fmt(low, kind=kind, sign=sign), fmt(high, kind=kind, sign=sign)
        text += f' <span class="ci">[{low_text}, {high_text}]</span>'
    return text


def fmt_params(value: object) -> str:
    """A parameter count as 0, 12.3 k or 1.23 M."""
    number = _finite(value)
    if number is None:
        return "–"
    if number >= 1e6:
        return f"{number / 1e6:.2f} M"
    if number >= 1e4:
        return f"{number / 1e3:.1f} k"
    return f"{int(number):,}"


def fmt_seconds(value: object) -> str:
    """A duration as 0.42 s, 12.3 s, 4 min 05 s or 2 h 03 min."""
    seconds = _finite(value)
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.3g} s"
    minutes, sec = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


# --------------------------------------------------------------------------- HTML helpers


def note(text: str) -> str:
    """A visible warning box (a skipped input, a failed section)."""
    return f'<p class="note">⚠ {esc(text)}</p>'


def explain(text: str) -> str:
    """A short plain-language paragraph saying what a section or table shows."""
    return f'<p class="explain">{esc(text)}</p>'


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def section(title: str, body: str, *, anchor: str | None = None) -> str:
    """A top-level section: ``<section id=...><h2>title</h2>body</section>``.

    ``body`` is HTML (already escaped); ``title`` is plain text. The table of contents is
    made from these headings.
    """
    anchor = anchor or _slug(title)
    return f'<section id="{esc(anchor)}">\n<h2>{esc(title)}</h2>\n{body}\n</section>'


def table(
    header: list[str],
    rows: Iterable[list[str]],
    *,
    numeric: Iterable[int] = (),
    caption: str | None = None,
) -> str:
    """An HTML table. ``header`` is plain text (escaped here); ``rows`` hold HTML cells
    (escape text with :func:`esc`); columns in ``numeric`` are right-aligned."""
    numeric = set(numeric)

    def cell(tag: str, i: int, content: str) -> str:
        return (
            f'<{tag} class="num">{content}</{tag}>' if i in numeric else f"<{tag}>{content}</{tag}>"
        )

    head = "".join(cell("th", i, esc(h)) for i, h in enumerate(header))
    body = "\n".join(
        "<tr>" + "".join(cell("td", i, c) for i, c in enumerate(r)) + "</tr>" for r in rows
    )
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f"<table>{cap}\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


def key_value_table(items: Iterable[tuple[str, str]]) -> str:
    """A two-column table of (plain-text key, HTML value) pairs."""
    rows = "\n".join(f'<tr><th scope="row">{esc(k)}</th><td>{v}</td></tr>' for k, v in items)
    return f'<table class="kv">\n<tbody>\n{rows}\n</tbody>\n</table>'


def png_data_uri(path: str | Path) -> str:
    """The PNG file ``path`` as a ``data:image/png;base64,...`` URI; ValueError if the file
    is not a PNG."""
    data = Path(path).read_bytes()
    if not data.startswith(PNG_SIGNATURE):
        raise ValueError("not a PNG file")
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def figure(path: str | Path, *, caption: str, run_dir: Path | None = None) -> str:
    """An embedded PNG with a caption, or a note when the file is missing or unreadable."""
    path = Path(path)
    label = _rel(path, run_dir)
    try:
        uri = png_data_uri(path)
    except FileNotFoundError:
        return note(f"{label} is missing")
    except (OSError, ValueError) as err:
        return note(f"{label} could not be read: {err}")
    return (
        f'<figure><img src="{uri}" alt="{esc(caption)}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def _rel(path: Path, run_dir: Path | None) -> str:
    if run_dir is not None:
        try:
            return path.relative_to(run_dir).as_posix()
        except ValueError:
            pass
    return str(path)


def _describe(err: BaseException) -> str:
    if isinstance(err, KeyError):
        return f"missing key {err}"
    if isinstance(err, json.JSONDecodeError):
        return f"bad JSON ({err})"
    if isinstance(err, FileNotFoundError):
        return "file not found"
    return f"{type(err).__name__}: {err}"


def guarded(label: str, render: Callable[[], str]) -> str:
    """``render()``, or a note "``label`` could not be read: why" if it raises.

    Use it around each input file a section reads so that one malformed file (bad JSON,
    missing keys, wrong types) is reported in the page instead of stopping the report.
    """
    try:
        return render()
    except Exception as err:  # noqa: BLE001 - any bad input becomes a visible note
        return note(f"{label} could not be read: {_describe(err)}")


def read_json(path: Path) -> dict:
    """A JSON object from ``path`` (ValueError if it is valid JSON but not an object)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, found {type(data).__name__}")
    return data


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir()) if path.is_dir() else []


# --------------------------------------------------------------------------- header


def _eval_dirs(run_dir: Path) -> list[Path]:
    return [d for d in _subdirs(run_dir / "eval") if (d / "metrics.json").exists()]


def _gain(summary: dict, *, kind: str, unit: str) -> str:
    """``+X unit [low, high]`` with the value and unit in bold."""
    interval = fmt_stat({**summary, "mean": None}, kind=kind, sign=True).removeprefix("–")
    return f"<strong>{fmt(summary['mean'], kind=kind, sign=True)} {esc(unit)}</strong>{interval}"


def _headline_for(metrics: dict, name: str) -> str:
    """One sentence: how the model with the largest PSNR gain compares with bicubic."""
    gains = metrics["gains_vs_bicubic"]
    target = "clean" if gains.get("clean") else next(iter(gains))
    per_model = gains[target]
    if not per_model:
        raise ValueError("gains_vs_bicubic is empty")
    best = max(per_model, key=lambda m: _finite(per_model[m]["psnr"]["mean"]) or -math.inf)
    psnr, ssim = per_model[best]["psnr"], per_model[best]["ssim"]
    verb = "beats bicubic by" if (_finite(psnr["mean"]) or 0.0) > 0 else "vs bicubic:"
    against = f"the {TARGET_LABELS.get(target, target)}"
    return (
        f"<strong>{esc(best)}</strong> {verb} "
        f"{_gain(psnr, kind='psnr', unit='dB PSNR')} and {_gain(ssim, kind='ssim', unit='SSIM')} "
        f"against {esc(against)} "
        f'<span class="muted">(eval “{esc(name)}”, {fmt(metrics.get("n"), kind="int")} images '
        f"of {esc(metrics.get('dataset', '?'))}, 95 % bootstrap intervals)</span>"
    )


def _study_name(run_dir: Path) -> str:
    try:
        import yaml

        study = yaml.safe_load((run_dir / "study.yaml").read_text(encoding="utf-8"))
        if isinstance(study, dict) and study.get("name"):
            return str(study["name"])
    except Exception:  # noqa: BLE001 - the title falls back to the folder name
        pass
    return run_dir.resolve().name


def header(run_dir: Path) -> str:
    """Title, date and a headline result per evaluation."""
    lines = []
    for d in _eval_dirs(run_dir):
        try:
            lines.append(f"<p>{_headline_for(read_json(d / 'metrics.json'), d.name)}</p>")
        except Exception:  # noqa: BLE001 - the Results section shows the note
            continue
    headline = '<div class="headline">' + "\n".join(lines) + "</div>" if lines else ""
    date = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z").strip()
    return (
        f"<header>\n<h1>lensr study report: {esc(_study_name(run_dir))}</h1>\n"
        f'<p class="muted">Run folder <code>{esc(run_dir.resolve())}</code> · '
        f"report made {esc(date)}</p>\n{headline}\n</header>"
    )


# --------------------------------------------------------------------------- sections


def _range_rows(summary: dict) -> list[list[str]]:
    labels = {"hr": "HR", "lr": "LR", "hr_clean": "noise-free HR"}
    return [
        [esc(label)] + [fmt(summary[key].get(q)) for q in ("min", "p50", "p99", "max")]
        for key, label in labels.items()
        if isinstance(summary.get(key), dict)
    ]


def _dataset_html(run_dir: Path, summary_path: Path) -> str:
    s = read_json(summary_path)
    classes = s.get("classes") or {}
    items = [
        ("file", f"<code>{esc(s.get('path', summary_path.with_suffix('.h5').name))}</code>"),
        ("images", fmt(s["n"], kind="int")),
        ("HR shape", esc(" × ".join(str(v) for v in s.get("hr_shape", [])))),
        ("LR shape", esc(" × ".join(str(v) for v in s.get("lr_shape", [])))),
        ("scale", esc(s.get("scale", "–"))),
        ("classes", esc(", ".join(f"{k}: {v:,}" for k, v in classes.items())) or "–"),
        ("preset", esc(s.get("preset") or "–")),
        ("units", esc(s.get("units") or "–")),
    ]
    parts = [key_value_table(items)]
    ranges = _range_rows(s)
    if ranges:
        parts.append(
            table(
                ["image", "min", "median", "99th pct", "max"],
                ranges,
                numeric=range(1, 5),
                caption="pixel values",
            )
        )
    snr = s.get("snr")
    if isinstance(snr, dict):
        rows = [
            [esc(label)] + [fmt(snr[key].get(q)) for q in ("p5", "p50", "p95")]
            for key, label in (("hr", "HR"), ("lr", "LR"))
            if isinstance(snr.get(key), dict)
        ]
        parts.append(
            table(
                ["image", "5th pct", "median", "95th pct"],
                rows,
                numeric=range(1, 4),
                caption=f"peak signal-to-noise ratio ({snr.get('how', '?')})",
            )
        )
    return "\n".join(parts)


def data_section(run_dir: Path) -> str | None:
    """Data: per dataset, the inspect summary and the preview grid."""
    data = run_dir / "data"
    summaries = sorted(data.glob("*.json")) if data.is_dir() else []
    previews = sorted(data.glob("*.png")) if data.is_dir() else []
    names = sorted({p.stem for p in summaries} | {p.stem for p in previews})
    if not names:
        return None
    parts = [
        explain(
            "The simulated or imported HR/LR image pairs the study used. Pixel values are "
            "surface brightness, so HR and LR of the same sky are directly comparable. "
            "The preview shows a few examples per class: HR, LR and, for simulations, the "
            "noise-free HR."
        )
    ]
    for name in names:
        parts.append(f"<h3>{esc(name)}</h3>")
        summary_path, preview = data / f"{name}.json", data / f"{name}.png"
        if summary_path.exists():
            parts.append(
                guarded(f"data/{name}.json", lambda p=summary_path: _dataset_html(run_dir, p))
            )
        if preview.exists():
            parts.append(figure(preview, caption=f"{name}: examples per class", run_dir=run_dir))
    return section("Data", "\n".join(parts))


def _sweep_html(run_dir: Path, path: Path) -> str:
    s = read_json(path)
    best = s["best_lr"]
    rows = []
    for lr, points in s.get("curves", {}).items():
        last = points[-1][1] if points else None
        is_best = _finite(lr) is not None and _finite(best) is not None and float(lr) == float(best)
        text = f"<strong>{esc(lr)}</strong>" if is_best else esc(lr)
        rows.append([text, fmt(len(points), kind="int"), fmt(last)])
    parts = [
        f"<p>Model <strong>{esc(s.get('model', '?'))}</strong>, {fmt(s.get('steps'), kind='int')} "
        f"steps per learning rate. Best learning rate: <strong>{esc(fmt(best))}</strong>.</p>"
    ]
    if rows:
        parts.append(
            table(["learning rate", "validations", "final validation loss"], rows, numeric=(1, 2))
        )
    return "\n".join(parts)


def lr_section(run_dir: Path) -> str | None:
    """Learning rate: the sweep figure and the best LR."""
    folder = run_dir / "lr_sweep"
    path, png = folder / "lr_sweep.json", folder / "lr_sweep.png"
    if not path.exists() and not png.exists():
        return None
    parts = [
        explain(
            "Short training runs at several learning rates; the validation loss after a fixed "
            "number of steps picks the learning rate for the full runs (lowest is best)."
        )
    ]
    if path.exists():
        parts.append(guarded("lr_sweep/lr_sweep.json", lambda: _sweep_html(run_dir, path)))
    if png.exists():
        parts.append(
            figure(png, caption="validation loss against step, per learning rate", run_dir=run_dir)
        )
    return section("Learning rate", "\n".join(parts))


def _model_dirs(run_dir: Path) -> list[Path]:
    return [
        d
        for d in _subdirs(run_dir / "models")
        if (d / "best.json").exists() or (d / "logs").is_dir()
    ]


def _model_row(model_dir: Path) -> list[str]:
    info = read_json(model_dir / "best.json")
    m = info["metrics"]
    if not isinstance(m, dict):
        raise ValueError("'metrics' is not an object")
    training = info.get("training") if isinstance(info.get("training"), dict) else {}
    return [
        esc(model_dir.name),
        esc(info.get("arch", "–")),
        fmt(info.get("epoch"), kind="int"),
        fmt(info.get("step"), kind="int"),
        fmt(training.get("lr")),
        fmt(m.get("val_loss"), kind="mse"),
        fmt(m.get("val_psnr"), kind="psnr"),
        fmt(m.get("val_ssim"), kind="ssim"),
        fmt(m.get("val_psnr_clean"), kind="psnr"),
        fmt(m.get("val_ssim_clean"), kind="ssim"),
    ]


def _curves_figure(run_dir: Path, model_dirs: list[Path]) -> str:
    from lensr.report.plots import load_curves, training_curves_figure

    parts, readable = [], {}
    for d in model_dirs:
        if not (d / "logs").is_dir():
            continue
        label = f"models/{d.name}/logs"
        try:
            if load_curves(d):
                readable[d.name] = d
        except Exception as err:  # noqa: BLE001 - one bad log must not hide the others
            parts.append(note(f"{label} could not be read: {_describe(err)}"))
    if readable:
        path = run_dir / "report_assets" / "training_curves.png"
        png = guarded("training curves", lambda: str(training_curves_figure(readable, path)))
        if png.startswith('<p class="note">'):
            parts.insert(0, png)
        else:
            parts.insert(
                0,
                figure(
                    path,
                    caption="training loss and validation PSNR against step "
                    "(dashed: against the noise-free HR)",
                    run_dir=run_dir,
                ),
            )
    return "\n".join(parts)


def training_section(run_dir: Path) -> str | None:
    """Training: the training curves of every model and its best checkpoint's metrics."""
    model_dirs = _model_dirs(run_dir)
    if not model_dirs:
        return None
    parts = [
        explain(
            "Each model's training: the loss it minimises (per epoch) and the PSNR on held-out "
            "validation images as training goes on. The table gives the checkpoint kept (the "
            "one with the highest validation PSNR) and its validation metrics."
        ),
        _curves_figure(run_dir, model_dirs),
    ]
    rows, notes = [], []
    for d in model_dirs:
        if not (d / "best.json").exists():
            notes.append(note(f"models/{d.name}/best.json is missing"))
            continue
        try:
            rows.append(_model_row(d))
        except Exception as err:  # noqa: BLE001 - reported in the page
            notes.append(note(f"models/{d.name}/best.json could not be read: {_describe(err)}"))
    if rows:
        header_ = [
            "model",
            "arch",
            "best epoch",
            "step",
            "lr",
            "val loss",
            "val PSNR",
            "val SSIM",
            "val PSNR (noise-free)",
            "val SSIM (noise-free)",
        ]
        parts.append(table(header_, rows, numeric=range(2, 10)))
    parts.extend(notes)
    return section("Training", "\n".join(p for p in parts if p))


# --- results


def _score(model: dict, target: str, metric: str, cls: str | None = None) -> dict | None:
    scores = (model.get("scores") or {}).get(target) or {}
    block = scores.get("overall") if cls is None else (scores.get("per_class") or {}).get(cls)
    value = (block or {}).get(metric)
    return value if isinstance(value, dict) else None


def _best(models: list[dict], target: str, metric: str, cls: str | None = None) -> float | None:
    means = [_finite((_score(m, target, metric, cls) or {}).get("mean")) for m in models]
    means = [v for v in means if v is not None]
    if not means:
        return None
    return min(means) if metric == "mse" else max(means)


def _metric_cells(models: list[dict], model: dict, target: str, cls: str | None) -> list[str]:
    cells = []
    for metric, ci in (("mse", False), ("psnr", True), ("ssim", True)):
        s = _score(model, target, metric, cls)
        text = fmt_stat(s, kind=metric, ci=ci)
        best = _best(models, target, metric, cls)
        if s is not None and best is not None and _finite(s.get("mean")) == best:
            text = f"<strong>{text}</strong>"
        cells.append(text)
    return cells


def _overall_table(models: list[dict], target: str) -> str:
    rows = [
        [esc(m["name"]), fmt_params(m.get("params"))]
        + _metric_cells(models, m, target, None)
        + [fmt(m.get("images_per_s"))]
        for m in models
    ]
    header_ = ["model", "params", "MSE", "PSNR (dB) [95 % CI]", "SSIM [95 % CI]", "img/s"]
    return table(header_, rows, numeric=range(1, 6))


def _per_class_table(models: list[dict], target: str, classes: list[str]) -> str:
    rows = [
        [esc(cls), esc(m["name"])] + _metric_cells(models, m, target, cls)
        for cls in classes
        for m in models
    ]
    return table(
        ["class", "model", "MSE", "PSNR (dB) [95 % CI]", "SSIM [95 % CI]"],
        rows,
        numeric=range(2, 5),
    )


def _gains_table(gains: dict) -> str:
    rows = [
        [
            esc(name),
            fmt_stat(g.get("psnr"), kind="psnr", sign=True),
            fmt_stat(g.get("ssim"), kind="ssim", sign=True),
        ]
        for name, g in gains.items()
    ]
    return table(
        ["model", "ΔPSNR (dB) [95 % CI]", "ΔSSIM [95 % CI]"],
        rows,
        numeric=(1, 2),
        caption="gain over bicubic (paired, per image)",
    )


def _target_html(metrics: dict, target: str) -> str:
    models = metrics["models"]
    label = TARGET_LABELS.get(target, target)
    parts = [
        f"<h4>Against the {esc(label)}</h4>",
        explain(f"Scores {TARGET_EXPLAINED.get(target, 'against the ' + label)}."),
        _overall_table(models, target),
    ]
    gains = (metrics.get("gains_vs_bicubic") or {}).get(target)
    if gains:
        parts.append(_gains_table(gains))
    classes = [str(c) for c in metrics.get("class_names") or []]
    if classes and any(_score(m, target, "psnr", classes[0]) for m in models):
        parts.append(
            f"<details><summary>Per class ({esc(label)})</summary>\n"
            f"{_per_class_table(models, target, classes)}\n</details>"
        )
    return "\n".join(parts)


def _eval_html(run_dir: Path, eval_dir: Path) -> str:
    metrics = read_json(eval_dir / "metrics.json")
    if not isinstance(metrics["models"], list) or not metrics["models"]:
        raise ValueError("'models' is empty")
    parts = [
        f"<p>Dataset <code>{esc(metrics.get('dataset', '?'))}</code>, "
        f"{fmt(metrics.get('n'), kind='int')} images, scale ×{esc(metrics.get('scale', '?'))}.</p>"
    ]
    targets = metrics.get("targets") or ["noisy", "clean"]
    parts.extend(_target_html(metrics, t) for t in targets)
    figures = metrics.get("figures") or {}
    examples = metrics.get("examples") or []
    shown = f" (images {', '.join(f'#{i}' for i in examples)})" if examples else ""
    captions = {
        "comparison": f"LR input, each model's output and the HR target{shown}",
        "residuals": f"residuals: output minus noise-free HR, same images{shown}",
    }
    for key, name in figures.items():
        caption = captions.get(key, key)
        parts.append(figure(eval_dir / Path(str(name)).name, caption=caption, run_dir=run_dir))
    return "\n".join(parts)


def results_section(run_dir: Path) -> str | None:
    """Results: per evaluation and target, the metric tables, gains and figures."""
    eval_dirs = [d for d in _subdirs(run_dir / "eval")]
    if not eval_dirs:
        return None
    parts = [
        explain(
            "Each model upscales the LR test images; its output is compared with the HR image. "
            "PSNR (dB) and SSIM (0 to 1) are higher-is-better, MSE lower-is-better; each is "
            "computed per image after min-max normalising the HR target to [0, 1] (the same "
            "map applied to the output), then averaged. Brackets are 95 % bootstrap intervals; "
            "bold marks the best model in each column; img/s is inference throughput on the "
            "machine listed under Environment."
        )
    ]
    for d in eval_dirs:
        parts.append(f"<h3>{esc(d.name)}</h3>")
        if not (d / "metrics.json").exists():
            parts.append(note(f"eval/{d.name}/metrics.json is missing"))
            continue
        parts.append(guarded(f"eval/{d.name}/metrics.json", lambda d=d: _eval_html(run_dir, d)))
    return section("Results", "\n".join(parts))


def _stages_html(path: Path) -> str:
    stages = read_json(path)["stages"]
    rows, total = [], 0.0
    for name, info in stages.items():
        total += _finite(info.get("seconds")) or 0.0
        outputs = ", ".join(f"<code>{esc(o)}</code>" for o in info.get("outputs") or [])
        rows.append(
            [
                esc(name),
                esc(info.get("status", "–")),
                fmt_seconds(info.get("seconds")),
                esc(info.get("finished", "–")),
                outputs or "–",
            ]
        )
    rows.append(["<strong>total</strong>", "", f"<strong>{fmt_seconds(total)}</strong>", "", ""])
    return table(["stage", "status", "time", "finished", "outputs"], rows, numeric=(2,))


def pipeline_section(run_dir: Path) -> str | None:
    """Pipeline: stage timings from stages.json."""
    path = run_dir / "stages.json"
    if not path.exists():
        return None
    body = explain(
        "The study runs as cached stages: a stage whose inputs have not changed is skipped "
        "(“skipped(cached)”) and its earlier outputs reused. Times are wall-clock seconds "
        "of this run."
    ) + guarded("stages.json", lambda: _stages_html(path))
    return section("Pipeline", body)


def _environment_html(path: Path) -> str:
    env = read_json(path)
    return key_value_table((str(k), esc(v)) for k, v in env.items())


def environment_section(run_dir: Path) -> str | None:
    """Environment: software versions and the study config as run."""
    env, study = run_dir / "environment.json", run_dir / "study.yaml"
    if not env.exists() and not study.exists():
        return None
    parts = [
        explain(
            "What the results were produced with: software versions, device, threads and "
            "seed, then the study configuration exactly as run. Rerunning this config with "
            "the same versions reproduces the study."
        )
    ]
    if env.exists():
        parts.append(guarded("environment.json", lambda: _environment_html(env)))
    if study.exists():
        parts.append("<h3>study.yaml</h3>")
        parts.append(
            guarded("study.yaml", lambda: f"<pre>{esc(study.read_text(encoding='utf-8'))}</pre>")
        )
    return section("Environment", "\n".join(parts))


SECTIONS: list[SectionBuilder] = [
    data_section,
    lr_section,
    training_section,
    results_section,
    pipeline_section,
    environment_section,
]
"""The page body, in order. Append a ``(run_dir) -> str | None`` builder to add a section."""


# --------------------------------------------------------------------------- page

CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dee7; --zebra: #f4f6fa; --accent: #2f5fa7; }
* { box-sizing: border-box; }
body { margin: 0; background: #fff; color: var(--fg);
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 60px; }
h1 { font-size: 1.7em; margin: 0.2em 0; }
h2 { font-size: 1.35em; margin-top: 2em; padding-bottom: 4px;
     border-bottom: 2px solid var(--line); }
h3 { font-size: 1.12em; margin-top: 1.6em; }
h4 { font-size: 1em; margin: 1.4em 0 0.4em; }
a { color: var(--accent); }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
            font-size: 0.9em; }
pre { background: var(--zebra); border: 1px solid var(--line); border-radius: 4px;
      padding: 10px 12px; overflow-x: auto; }
.muted, .ci { color: var(--muted); }
.ci { font-size: 0.88em; }
.explain { color: var(--muted); max-width: 80ch; }
.headline { background: #eef4ff; border-left: 4px solid var(--accent); padding: 6px 14px;
            margin: 14px 0; }
.headline p { margin: 6px 0; }
.note { background: #fff6e0; border-left: 4px solid #d99a00; padding: 6px 12px; }
nav.toc { font-size: 0.95em; }
nav.toc ol { display: flex; flex-wrap: wrap; gap: 4px 22px; list-style: none;
          padding: 0; margin: 6px 0; }
table { border-collapse: collapse; margin: 10px 0 16px; font-size: 0.92em; max-width: 100%; }
caption { caption-side: top; text-align: left; color: var(--muted); padding-bottom: 4px; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left;
         vertical-align: top; }
thead th { border-bottom: 2px solid var(--line); background: #fff; }
tbody tr:nth-child(even) { background: var(--zebra); }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.kv th { font-weight: 600; white-space: nowrap; }
details { margin: 6px 0 14px; }
summary { cursor: pointer; color: var(--accent); }
figure { margin: 14px 0 20px; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 0.9em; margin-top: 4px; }
footer { margin-top: 3em; color: var(--muted); font-size: 0.85em; }
"""


def _toc(fragments: list[str]) -> str:
    links = [
        f'<li><a href="#{anchor}">{title}</a></li>'
        for frag in fragments
        for anchor, title in re.findall(r'<section id="([^"]+)">\s*<h2>(.*?)</h2>', frag)
    ]
    return f'<nav class="toc"><ol>{"".join(links)}</ol></nav>' if links else ""


def render_sections(run_dir: Path, sections: Iterable[SectionBuilder]) -> list[str]:
    """The fragments of the builders that have inputs; a builder that raises becomes a
    note in the page."""
    fragments = []
    for builder in sections:
        try:
            fragment = builder(run_dir)
        except Exception as err:  # noqa: BLE001 - one broken section must not hide the rest
            name = getattr(builder, "__name__", repr(builder))
            fragment = note(f"section {name} failed: {_describe(err)}")
        if fragment:
            fragments.append(fragment)
    return fragments


def render_page(title: str, body: str) -> str:
    """A complete, self-contained HTML document."""
    from lensr import __version__

    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        f"{body}\n<footer>Made by lensr {esc(__version__)}. Self-contained: images are "
        "embedded, nothing is fetched.</footer>\n</main>\n</body>\n</html>\n"
    )


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def build_report(
    run_dir: str | Path,
    *,
    out: str | Path | None = None,
    sections: Iterable[SectionBuilder] | None = None,
) -> Path:
    """Write one self-contained HTML report of the study run folder ``run_dir``.

    ``out`` defaults to ``run_dir/report.html`` (written atomically). ``sections`` defaults
    to :data:`SECTIONS`. Malformed inputs become notes in the page; a missing ``run_dir``,
    or one with none of the study outputs, raises :class:`~lensr.errors.LensrError`.
    The training-curves figure is also kept in ``run_dir/report_assets/``.

    >>> build_report("runs/demo")
    PosixPath('runs/demo/report.html')
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise LensrError(f"run folder {run_dir} does not exist (or is not a folder)")
    fragments = render_sections(run_dir, SECTIONS if sections is None else sections)
    if not fragments:
        raise LensrError(
            f"{run_dir} holds no study outputs (study.yaml, stages.json, environment.json, "
            "data/, lr_sweep/, models/, eval/): nothing to report"
        )
    body = "\n".join([header(run_dir), _toc(fragments), *fragments])
    path = Path(out) if out is not None else run_dir / "report.html"
    _atomic_write_text(path, render_page(f"lensr report: {_study_name(run_dir)}", body))
    return path
