"""The ``lensr upscale`` command: a thin Typer layer over :func:`lensr.infer.upscale.upscale_path`.

Example (shell)::

    lensr upscale cutout.fits --model runs/rcan.safetensors --out cutout_x2.fits
    lensr upscale lenses/ --model bicubic --out lenses_x2/
    lensr upscale cutout.fits --model a.safetensors --model b.safetensors --uncertainty \
        --out cutout_x2.fits          # + an UNCERTAINTY extension (ensemble x 8 transforms)
    lensr upscale cutout.fits --model bicubic --consistent --lr-psf-fwhm 0.16 \
        --pixel-scale 0.1 --out cutout_x2.fits
"""

from __future__ import annotations

from pathlib import Path

import typer

from lensr.cli.options import console


def upscale_command(
    input: Path = typer.Argument(
        ...,
        help="A .npy file ((H,W), (1,H,W), (N,H,W) or (N,1,H,W)), a folder of .npy/FITS "
        "files, a lensr HDF5 dataset (its lr images) or a FITS file.",
    ),
    model: list[str] = typer.Option(
        ...,
        "--model",
        help="A baseline (bicubic, bilinear) or a checkpoint .safetensors path; repeat it "
        "for an ensemble (with --uncertainty).",
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
    uncertainty: bool = typer.Option(
        False,
        help="Also write a per-pixel sigma over the 8 dihedral transforms (x every --model): "
        "FITS extension UNCERTAINTY, <out>_sigma.npy, or an HDF5 'sigma' dataset. The image "
        "is then their mean. Costs 8x per model.",
    ),
    consistent: bool = typer.Option(
        False,
        help="Back-project each output onto its LR image (iterative back-projection until "
        "it agrees within the noise). Needs a simulated HDF5 input or --lr-psf-fwhm and "
        "--pixel-scale.",
    ),
    lr_psf_fwhm: float = typer.Option(
        None,
        help="LR PSF FWHM in arcsec (Gaussian): checked against the model's prior, and used "
        "by --consistent on non-simulated input.",
    ),
    hr_psf_fwhm: float = typer.Option(
        0.0, help="PSF FWHM (arcsec) the SR output already carries, for --consistent."
    ),
    pixel_scale: float = typer.Option(
        None,
        help="LR pixel size in arcsec (default: a FITS input's celestial WCS): checked against "
        "the model's prior, and used by --consistent on non-simulated input.",
    ),
    compile: bool = typer.Option(
        None,
        "--compile/--no-compile",
        help="Run the network through torch.compile (same outputs within 1e-5; 1.06-1.14x "
        "faster on a 2-core CPU after 10-15 s of compiling per model and image size: only "
        "for ~10,000+ images). Default: the LENSR_COMPILE environment variable, else off. "
        "Recorded in the output header (FITS HISTORY, HDF5 attr 'compiled').",
    ),
    sky: str = typer.Option(
        "auto",
        help="Sky pedestal: auto (estimate; subtract if above half the noise), subtract, "
        "keep (subtract for the model, add back) or none. Recorded in the output header.",
    ),
):
    """Super-resolve LR images (npy, FITS, folder or HDF5) with a checkpoint or a baseline."""
    from lensr.infer.upscale import upscale_path

    path = upscale_path(
        input,
        model=model[0] if len(model) == 1 else model,
        out=out,
        scale=scale,
        units=units,
        batch_size=batch_size,
        tile=tile,
        overlap=overlap,
        device=device,
        overwrite=overwrite,
        uncertainty=uncertainty,
        consistent=consistent,
        lr_psf_fwhm=lr_psf_fwhm,
        hr_psf_fwhm=hr_psf_fwhm,
        pixel_scale=pixel_scale,
        sky=sky,
        compile=compile,
    )
    console.print(f"wrote {path}", highlight=False, soft_wrap=True)
