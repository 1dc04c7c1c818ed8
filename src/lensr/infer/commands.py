"""The ``lensr upscale`` command: a thin Typer layer over :func:`lensr.infer.upscale.upscale_path`.

Registered in ``lensr.cli`` as ``app.command("upscale")(upscale_command)``. The work is
imported lazily so that ``lensr --help`` stays instant.

Example (shell)::

    lensr upscale cutout.fits --model runs/rcan.safetensors --out cutout_x2.fits
    lensr upscale lenses/ --model bicubic --out lenses_x2/
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

console = Console()


def upscale_command(
    input: Path = typer.Argument(
        ...,
        help="A .npy file ((H,W), (1,H,W), (N,H,W) or (N,1,H,W)), a folder of .npy/FITS "
        "files, a lensr HDF5 dataset (its lr images) or a FITS file.",
    ),
    model: str = typer.Option(
        ..., "--model", help="A baseline (bicubic, bilinear) or a checkpoint .safetensors path."
    ),
    out: Path = typer.Option(
        ..., help="Output of the same kind as INPUT: .npy, folder, .h5 or FITS."
    ),
    scale: int = typer.Option(
        None, help="Upscaling factor (default: the checkpoint's; 2 for baselines)."
    ),
    units: str = typer.Option(
        "surface-brightness",
        help="Units of INPUT: surface-brightness (output keeps them) or flux-per-pixel "
        "(output is flux per HR pixel, divided by scale^2, so total flux is kept).",
    ),
    batch_size: int = typer.Option(16, help="Images per model call."),
    tile: int = typer.Option(
        None, help="Tile size in LR pixels (default: tile only images over 512x512, by 256)."
    ),
    overlap: int = typer.Option(
        16, help="Tile overlap in LR pixels; half of it must cover the receptive field."
    ),
    device: str = typer.Option("cpu", help="Torch device: cpu, cuda, cuda:1, mps."),
    overwrite: bool = typer.Option(False, help="Replace an existing output."),
):
    """Super-resolve LR images (npy, FITS, folder or HDF5) with a checkpoint or a baseline."""
    from lensr.infer.upscale import upscale_path

    path = upscale_path(
        input,
        model=model,
        out=out,
        scale=scale,
        units=units,
        batch_size=batch_size,
        tile=tile,
        overlap=overlap,
        device=device,
        overwrite=overwrite,
    )
    console.print(f"wrote {path}", highlight=False, soft_wrap=True)
