"""The report's section builders: ``(run_dir) -> html | None``, in :data:`SECTIONS`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from lensr.report.components import (
    TARGET_EXPLAINED,
    TARGET_LABELS,
    SectionBuilder,
    _describe,
    _finite,
    _subdirs,
    esc,
    explain,
    figure,
    fmt,
    fmt_params,
    fmt_seconds,
    fmt_stat,
    guarded,
    key_value_table,
    note,
    read_json,
    section,
    table,
)


def _eval_dirs(run_dir: Path) -> list[Path]:
    return [d for d in _subdirs(run_dir / "eval") if (d / "metrics.json").exists()]


def _gain(summary: dict, *, kind: str, unit: str) -> str:
    """``+X unit [low, high]`` with the value and unit in bold."""
    interval = fmt_stat({**summary, "mean": None}, kind=kind, sign=True).removeprefix("–")
    return f"<strong>{fmt(summary['mean'], kind=kind, sign=True)} {esc(unit)}</strong>{interval}"


def _headline_for(metrics: dict, name: str) -> list[str]:
    """One sentence per trained network: its gain over bicubic, with intervals."""
    gains = metrics["gains_vs_bicubic"]
    target = "clean" if gains.get("clean") else next(iter(gains))
    baselines = {m["name"] for m in metrics.get("models", []) if m.get("params") == 0}
    per_model = {m: g for m, g in gains[target].items() if m not in baselines}
    if not per_model:
        raise ValueError("no trained model in gains_vs_bicubic")
    against = f"the {TARGET_LABELS.get(target, target)}"
    lines = []
    for model in sorted(per_model, key=lambda m: -(_finite(per_model[m]["psnr"]["mean"]) or 0)):
        psnr, ssim = per_model[model]["psnr"], per_model[model]["ssim"]
        better = (_finite(psnr["ci_low"]) or 0) > 0 and (_finite(ssim["ci_low"]) or 0) > 0
        verb = "beats bicubic by" if better else "vs bicubic:"
        lines.append(
            f"<strong>{esc(model)}</strong> {verb} "
            f"{_gain(psnr, kind='psnr', unit='dB PSNR')} and "
            f"{_gain(ssim, kind='ssim', unit='SSIM')} against {esc(against)} "
            f'<span class="muted">(eval “{esc(name)}”, {fmt(metrics.get("n"), kind="int")} '
            f"images, 95 % bootstrap intervals)</span>"
        )
    return lines


def _study(run_dir: Path) -> dict:
    try:
        import yaml

        study = yaml.safe_load((run_dir / "study.yaml").read_text(encoding="utf-8"))
        return study if isinstance(study, dict) else {}
    except Exception:  # noqa: BLE001 - callers fall back to what the folder holds
        return {}


def _study_name(run_dir: Path) -> str:
    name = _study(run_dir).get("name")
    return str(name) if name else run_dir.resolve().name


def header(run_dir: Path) -> str:
    """Title, date and a headline result per evaluation."""
    lines = []
    for d in _eval_dirs(run_dir):
        try:
            lines += [
                f"<p>{line}</p>" for line in _headline_for(read_json(d / "metrics.json"), d.name)
            ]
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


def _overview_row(name: str, path: Path) -> list[str]:
    s = read_json(path)
    snr = ((s.get("snr") or {}).get("hr") or {}).get("p50")
    return [
        esc(name),
        esc(s.get("preset") or "–"),
        fmt(s.get("n"), kind="int"),
        esc(" × ".join(str(v) for v in s.get("hr_shape", []))),
        esc(" × ".join(str(v) for v in s.get("lr_shape", []))),
        esc(", ".join(f"{k} {v:,}" for k, v in (s.get("classes") or {}).items()) or "–"),
        fmt(snr),
    ]


def data_section(run_dir: Path) -> str | None:
    """Data: an overview row per dataset, then its inspect summary and preview grid."""
    data = run_dir / "data"
    found = {p.stem for p in data.glob("*.json")} | {p.stem for p in data.glob("*.png")}
    if not found:
        return None
    # The study's order (train before test), then anything else in the folder.
    declared = [n for n in (_study(run_dir).get("datasets") or {}) if n in found]
    names = declared + sorted(found - set(declared))
    parts = [
        explain(
            "The simulated or imported HR/LR image pairs the study used. Pixel values are "
            "surface brightness, so HR and LR of the same sky are directly comparable. "
            "Open a dataset for its value ranges, S/N and a few examples per class: HR, LR "
            "and, for simulations, the noise-free HR."
        )
    ]
    rows = []
    for name in names:
        if (data / f"{name}.json").exists():
            try:
                rows.append(_overview_row(name, data / f"{name}.json"))
            except Exception as err:  # noqa: BLE001 - the dataset's own block shows the note
                rows.append([esc(name), esc(_describe(err)), "", "", "", "", ""])
    if rows:
        header = ["dataset", "preset", "images", "HR", "LR", "classes", "median HR S/N"]
        parts.append(table(header, rows, numeric=(2, 6)))
    for name in names:
        summary_path, preview = data / f"{name}.json", data / f"{name}.png"
        inner = []
        if summary_path.exists():
            inner.append(
                guarded(f"data/{name}.json", lambda p=summary_path: _dataset_html(run_dir, p))
            )
        if preview.exists():
            inner.append(figure(preview, caption=f"{name}: examples per class", run_dir=run_dir))
        parts.append(
            f"<details><summary>{esc(name)}</summary>\n" + "\n".join(inner) + "\n</details>"
        )
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
        if key == "trust":  # shown in "Can we trust it?" with its tables
            continue
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


from lensr.report.classification import classification_section  # noqa: E402
from lensr.report.transfer import transfer_section  # noqa: E402
from lensr.report.trust import trust_section  # noqa: E402

SECTIONS: list[SectionBuilder] = [
    data_section,
    lr_section,
    training_section,
    results_section,
    trust_section,
    transfer_section,
    classification_section,
    pipeline_section,
    environment_section,
]
"""The page body, in order. Append a ``(run_dir) -> str | None`` builder to add a section."""
