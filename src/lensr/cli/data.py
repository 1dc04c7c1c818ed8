"""The data commands: ``lensr simulate``, ``merge``, ``inspect``, ``import``, ``presets``, and
``models`` (the registry listing).

Example (shell)::

    lensr simulate --preset sim --n 1000 --out sim.h5 --workers 4
    lensr inspect sim.h5
    lensr import deeplense/ --out lenses.h5
"""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.table import Table

from lensr.cli.options import console
from lensr.errors import LensrError


def simulate(
    preset: str = typer.Option("sim", help="Preset name (sim, observed, classify) or YAML path."),
    n: int = typer.Option(1000, "--n", help="Number of HR/LR pairs (of the whole run)."),
    seed: int = typer.Option(0, help="Random seed: same seed, same bytes."),
    out: Path = typer.Option(..., help="Output HDF5 file."),
    workers: int = typer.Option(1, help="Parallel processes; output is identical to serial."),
    shard: str = typer.Option(None, help="K/N: make only part K (0-based) of N, for job arrays."),
    resume: bool = typer.Option(False, help="Continue an interrupted run of the same command."),
    overwrite: bool = typer.Option(False, help="Replace an existing output file."),
    engine: str = typer.Option(
        None, help="lenstronomy (reference) or caustics (batched torch, GPU); default: preset's."
    ),
):
    """Simulate HR/LR lens pairs with lenstronomy into an HDF5 dataset."""
    from lensr.sim.config import load_sim_config
    from lensr.sim.run import simulate as run

    if engine is not None:
        if engine not in ("lenstronomy", "caustics"):
            raise LensrError(f"--engine must be lenstronomy or caustics, got {engine!r}")
        preset = load_sim_config(preset).model_copy(update={"engine": engine})
    path = run(
        preset,
        n=n,
        seed=seed,
        out=out,
        workers=workers,
        shard=shard,
        resume=resume,
        overwrite=overwrite,
    )
    console.print(f"wrote {path}")


def merge(
    parts: list[Path] = typer.Argument(..., help="Shard files of one run (any order)."),
    out: Path = typer.Option(..., help="Output HDF5 file."),
    overwrite: bool = typer.Option(False, help="Replace an existing output file."),
):
    """Join the shards of one simulation run into a single dataset."""
    from lensr.sim.run import merge as run

    console.print(f"wrote {run(parts, out, overwrite=overwrite)}")


def inspect(
    file: Path = typer.Argument(..., help="A lensr HDF5 dataset."),
    png: Path = typer.Option(None, help="Preview grid path (default: FILE with .png)."),
    per_class: int = typer.Option(3, help="Examples per class in the preview."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
):
    """Print counts, shapes, value ranges, S/N and class balance; write a PNG preview."""
    from lensr.data.inspect import summarize
    from lensr.data.store import open_dataset
    from lensr.eval.data_preview import preview_grid

    if per_class < 1:
        raise LensrError(f"--per-class must be at least 1, got {per_class}")
    if png is not None and png.suffix.lower() not in (".png", ".pdf", ".svg", ".jpg", ".jpeg"):
        raise LensrError(f"--png {png} should end in .png (or .pdf, .svg, .jpg)")
    with open_dataset(file) as ds:
        summary = summarize(ds)
        png = preview_grid(ds, png or file.with_suffix(".png"), per_class=per_class)
    summary["preview"] = str(png)
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    _print_summary(summary)


def _print_summary(s: dict):
    console.print(
        f"[bold]{s['path']}[/]  {s['n']} pairs  HR {s['hr_shape']}  LR {s['lr_shape']}"
        f"  x{s['scale']}  ({s['preset']})"
    )
    console.print(f"units: {s['units']}")
    table = Table("array", "min", "median", "p99", "max")
    for key in ("hr", "lr", "hr_clean"):
        if key in s:
            v = s[key]
            table.add_row(key, *(f"{v[q]:.4g}" for q in ("min", "p50", "p99", "max")))
    console.print(table)
    snr = s["snr"]
    if snr["how"] == "noise-free":
        console.print("peak S/N: none, the images are noise-free")
    else:
        console.print(
            f"peak S/N ({snr['how']}), 5/50/95 %: HR "
            + " / ".join(f"{snr['hr'][q]:.1f}" for q in ("p5", "p50", "p95"))
            + ", LR "
            + " / ".join(f"{snr['lr'][q]:.1f}" for q in ("p5", "p50", "p95"))
        )
    console.print("classes: " + ", ".join(f"{k} {v}" for k, v in s["classes"].items()))
    console.print(f"preview: {s['preview']}")


def import_(
    source: Path = typer.Argument(
        ..., help="Folder in a DeepLense layout (HR/ + LR/, or class folders), npy or FITS files."
    ),
    out: Path = typer.Option(..., help="Output HDF5 file (one per split: OUT-train.h5 ...)."),
    layout: str = typer.Option("auto", help="auto, pairs or classes."),
    scale: int = typer.Option(
        None, help="HR/LR scale (inferred for pairs; default 2 for class folders)."
    ),
    overwrite: bool = typer.Option(False, help="Replace existing output files."),
):
    """Convert DeepLense .npy layouts and FITS files into lensr's HDF5 format."""
    from lensr.data.importers import import_dataset

    for path in import_dataset(source, out, layout=layout, scale=scale, overwrite=overwrite):
        console.print(f"wrote {path}")


def presets(name: str = typer.Argument(None, help="Print this preset's YAML.")):
    """List the simulation presets, or print one to copy and edit."""
    from lensr.sim.config import preset_names, preset_path

    if name:
        print(preset_path(name).read_text(), end="")
        return
    for p in preset_names():
        console.print(f"{p:10s} {preset_path(p)}")


def models():
    """List every registered model with its parameter count and a one-line description."""
    from lensr.models import count_parameters, create_model, list_models

    table = Table("name", "family", "parameters (x2, 1 ch)", "description")
    for info in list_models():
        kwargs = {"num_classes": 3} if info.family == "classifier" else {}
        params = count_parameters(create_model(info.name, **kwargs))
        table.add_row(info.name, info.family, f"{params:,}", info.description)
    console.print(table)
    from lensr.infer.prior import prior_range
    from lensr.models.pretrained import model_card, pretrained_names

    shipped = Table(
        "pretrained (--model NAME)", "architecture", "prior", "LR instrument", "steps",
        "images seen",
    )  # fmt: skip
    for name in pretrained_names():
        meta = model_card(name)
        card = meta.get("card", {})
        r = prior_range(meta) or {}
        ps, fwhm = r.get("lr_pixel_scale"), r.get("lr_psf_fwhm")
        instrument = f'{ps[0]:g}-{ps[1]:g}"/px, PSF {fwhm[0]:g}-{fwhm[1]:g}"' if ps else "?"
        shipped.add_row(
            name, meta.get("arch", "?"), str(card.get("prior", "?")), instrument,
            f"{card.get('steps', '?')}", f"{card.get('images_seen', '?')}",
        )  # fmt: skip
    console.print(shipped if pretrained_names() else "pretrained: none shipped yet")
