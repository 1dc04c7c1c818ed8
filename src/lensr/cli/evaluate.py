"""The ``lensr evaluate`` command: a thin Typer layer over :func:`lensr.eval.evaluate.evaluate`.

Example (shell)::

    lensr evaluate --data test.h5 --models runs/a/models/rcan-tiny/best.safetensors \\
        --models runs/b/models/edsr/best.safetensors --baselines bilinear,bicubic --out eval/
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markdown import Markdown

from lensr.cli.options import console


def model_specs(baselines: str, models: list[str]) -> list[str]:
    """Baselines (comma-separated, "" for none) first, then the checkpoints, in order.

    Example::

        model_specs("bilinear, bicubic", ["a/best.safetensors"])
        # ['bilinear', 'bicubic', 'a/best.safetensors']
    """
    return [b.strip() for b in baselines.split(",") if b.strip()] + [str(m) for m in models]


def evaluate_command(
    data: Path = typer.Option(..., help="The lensr HDF5 dataset to evaluate on (test split)."),
    models: list[str] = typer.Option(
        [],
        "--models",
        help="A checkpoint .safetensors path (or a baseline name); repeat for several.",
    ),
    baselines: str = typer.Option(
        "bilinear,bicubic", help='Comma-separated baselines to include ("" for none).'
    ),
    out: Path = typer.Option(
        ...,
        help="Output folder: metrics.json/.csv, table.md, comparison.png, residuals.png, "
        "trust.png.",
    ),
    max_images: int = typer.Option(None, help="Evaluate only the first N images (default: all)."),
    batch_size: int = typer.Option(16, help="Images per model call."),
    seed: int = typer.Option(0, help="Seed of the bootstrap intervals."),
    device: str = typer.Option("cpu", help="Torch device: cpu, cuda, cuda:1, mps."),
    uncertainty: bool = typer.Option(
        True,
        help="Per-pixel sigma from the 8 dihedral test-time transforms, its calibration "
        "against the noise-free HR and trust.png (8x the inference time).",
    ),
    consistent: bool = typer.Option(
        False, help='Also score each model after the consistency projection ("<name>+proj").'
    ),
    lr_psf_fwhm: float = typer.Option(
        None,
        help="LR PSF FWHM in arcsec (Gaussian) for the LR-consistency of imported data "
        "(simulations carry their own); without it, imported data skip it.",
    ),
    hr_psf_fwhm: float = typer.Option(
        0.0, help="PSF FWHM (arcsec) the SR outputs carry, for --lr-psf-fwhm."
    ),
    pixel_scale: float = typer.Option(
        None, help="LR pixel size in arcsec, for --lr-psf-fwhm (default: the dataset's)."
    ),
):
    """Score baselines and checkpoints on a dataset: PSNR/SSIM with CIs, gains, figures,
    and the trust measures: LR chi-square, uncertainty calibration, projection."""
    from lensr.eval.evaluate import evaluate
    from lensr.infer.arrays import torch_device

    torch_device(device)  # before any work (and any progress bar)
    evaluate(
        data,
        model_specs(baselines, models),
        out_dir=out,
        max_images=max_images,
        batch_size=batch_size,
        seed=seed,
        device=device,
        uncertainty=uncertainty,
        consistent=consistent,
        lr_psf_fwhm=lr_psf_fwhm,
        hr_psf_fwhm=hr_psf_fwhm,
        pixel_scale=pixel_scale,
    )
    console.print(Markdown((out / "table.md").read_text()))
    console.print(f"wrote {out}", highlight=False, soft_wrap=True)
