"""The Data section: an overview row per dataset of the run (``data/<name>.json``), then its
inspect summary (value ranges, S/N) and preview grid.

Example::

    html = data_section(Path("runs/demo"))       # None when the run has no data/ summaries
"""

from __future__ import annotations

from pathlib import Path

from lensr.report.components import (
    describe_error,
    esc,
    explain,
    figure,
    fmt,
    guarded,
    key_value_table,
    read_json,
    section,
    table,
)
from lensr.report.run_info import read_study


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
    if isinstance(snr, dict) and snr.get("how") == "noise-free":
        parts.append("<p>Noise-free images (the preset's noise is switched off): no S/N.</p>")
    elif isinstance(snr, dict):
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
        "noise-free" if (s.get("snr") or {}).get("how") == "noise-free" else fmt(snr),
    ]


def data_section(run_dir: Path) -> str | None:
    """Data: an overview row per dataset, then its inspect summary and preview grid."""
    data = run_dir / "data"
    found = {p.stem for p in data.glob("*.json")} | {p.stem for p in data.glob("*.png")}
    if not found:
        return None
    # The study's order (train before test), then anything else in the folder.
    declared = [n for n in (read_study(run_dir).get("datasets") or {}) if n in found]
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
                rows.append([esc(name), esc(describe_error(err)), "", "", "", "", ""])
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
