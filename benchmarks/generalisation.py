"""Generalisation of SR models: pretrained (or given) models vs bicubic vs a model of the same
architecture trained in distribution, on test sets from every preset.

Per preset, ``--n`` pairs are simulated with held-out seeds (``seed + TEST_SEED_OFFSET``,
never a training or validation pair of lensr.train.streaming). Every model is scored
(project convention: per-image PSNR/SSIM after min-max normalising the target, mean over
images) against the noise-free HR and against the noisy HR; the noise floor is the
noise-free HR itself scored against the noisy HR. "seen" says whether the preset was in the
model's training prior (its sidecar's ``data.presets``): presets a model never saw are its
held-out presets. "out of prior" is the share of test images ``lensr upscale`` would warn
about for that model, knowing each image's pixel scale and PSF (as for a simulated dataset
or a FITS cutout with WCS given ``--lr-psf-fwhm``). The in-distribution model
(``--in-dist-steps`` > 0) is the first model's architecture trained by streaming on that
preset alone, from the same seed.

Usage::

    python benchmarks/generalisation.py                                  # shipped models
    python benchmarks/generalisation.py --checkpoint runs/x/best.safetensors \\
        --presets sim,deeplense-1 --n 8 --size 64 --in-dist-steps 30 --json gen.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from fnmatch import fnmatch
from pathlib import Path

import numpy as np

from lensr.eval.metrics import score_images
from lensr.infer.arrays import upscale_array
from lensr.infer.prior import prior_range, prior_warning
from lensr.infer.sky import remove_sky
from lensr.models.checkpoint import resolve_model
from lensr.models.pretrained import pretrained_names
from lensr.sim.config import preset_names, variant_configs
from lensr.sim.render import Renderer
from lensr.train.streaming import TEST_SEED_OFFSET, load_preset_spec


def test_set(spec: str, *, n: int, seed: int, size: int | None = None, psf: bool = False):
    """``n`` held-out (lr, hr, hr_clean) stacks of preset ``spec`` (HR side ``size``), and
    with ``psf`` each image's LR PSF FWHM (arcsec) too."""
    cfg = load_preset_spec(spec)
    if size:
        cfg = cfg.model_copy(update={"hr_size": size})
    r = Renderer(cfg)
    samples = [r.render(seed + TEST_SEED_OFFSET, i) for i in range(n)]
    stacks = tuple(np.stack([getattr(s, k) for s in samples]) for k in ("lr", "hr", "hr_clean"))
    return (*stacks, np.array([s.params["lr_fwhm"] for s in samples])) if psf else stacks


def lr_pixel_scale(spec: str) -> float | None:
    """The LR pixel scale of preset ``spec``, None for a mixture of several."""
    scales = {c.lr_pixel_scale for c, _ in variant_configs(load_preset_spec(spec))}
    return scales.pop() if len(scales) == 1 else None


def out_of_prior(model, lr, *, pixel_scale, fwhm) -> float | None:
    """Share of the images ``lensr upscale`` would warn about (pixel scale and PSF known,
    as for a simulated dataset); None for a model without a recorded prior."""
    meta = getattr(model, "metadata", None)
    if prior_range(meta) is None:
        return None
    _, records = remove_sky(lr, "auto")
    warned = [
        prior_warning(r, meta, pixel_scale=pixel_scale, psf_fwhm=float(f)) is not None
        for r, f in zip(records, fwhm, strict=True)
    ]
    return float(np.mean(warned))


def score(model, lr, hr, clean) -> dict[str, float]:
    """Mean PSNR/SSIM of ``model`` on one test set, against the noise-free and noisy HR."""
    sr = upscale_array(lr, model)
    a, b = score_images(sr, clean), score_images(sr, hr)
    return {
        "psnr_clean": float(a["psnr"].mean()),
        "ssim_clean": float(a["ssim"].mean()),
        "psnr_noisy": float(b["psnr"].mean()),
        "ssim_noisy": float(b["ssim"].mean()),
    }


def floor(hr, clean) -> dict[str, float]:
    s = score_images(clean, hr)
    return {"psnr_noisy": float(s["psnr"].mean()), "ssim_noisy": float(s["ssim"].mean())}


def trained_on(model) -> list[str]:
    """The preset specs (NAME or NAME/GLOB) of a model's streamed training prior."""
    data = (getattr(model, "metadata", {}) or {}).get("data", {})
    return list(data.get("presets", [])) if isinstance(data, dict) else []


def seen_in(spec: str, prior: list[str]) -> bool:
    """Whether test preset ``spec`` was part of ``prior``: the same preset, or a variant
    the prior's glob names (``generalist/space-hst`` is in ``generalist/space*``; the
    ground variants are not)."""
    return any(
        spec == p or fnmatch(spec, p) or ("/" not in p and spec.split("/")[0] == p) for p in prior
    )


def in_distribution(model, spec: str, *, steps: int, seed: int, size: int | None, folder: Path):
    """The architecture of ``model`` trained ``steps`` steps on pairs streamed from ``spec``."""
    from lensr.train.config import TrainConfig
    from lensr.train.fit import train

    meta = model.metadata
    kwargs = {k: v for k, v in meta["kwargs"].items() if k != "scale"}
    training = meta.get("training", {})
    cfg = TrainConfig(
        model=meta["arch"],
        model_kwargs=kwargs,
        seed=seed,
        patch=min(training.get("patch", 32), (size or 10**6) // meta["scale"]),
        batch_size=training.get("batch_size", 16),
        lr=training.get("lr", 2e-4),
        ema=training.get("ema"),
        max_steps=steps,
        max_epochs=10**6,
        val_check_interval=max(1, steps),
        max_val_images=8,
        num_workers=2,  # simulate in two worker processes, as benchmarks/pretrain.py does
    )
    preset = spec
    if size:  # a resized copy of the preset as a YAML file
        cfg_sim = load_preset_spec(spec).model_copy(update={"hr_size": size})
        preset = str(folder / f"{spec.replace('/', '_')}.yaml")
        Path(preset).write_text(json.dumps(json.loads(cfg_sim.model_dump_json())))
    out = folder / f"indist_{spec.replace('/', '_')}"
    reuse = (meta.get("data") or {}).get("reuse", 4)  # patches cut per simulated image
    result = train(cfg, preset=preset, preset_reuse=reuse, out_dir=out, progress=False)
    return resolve_model(str(result.last))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--models", default=None, help="Shipped names (default: all; none with --checkpoint)."
    )
    ap.add_argument("--checkpoint", action="append", default=[], help="Checkpoint path(s).")
    ap.add_argument("--presets", default="all", help="Comma-separated presets (default all).")
    ap.add_argument("--n", type=int, default=64, help="Test pairs per preset.")
    ap.add_argument("--size", type=int, default=None, help="HR side override (speed).")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--in-dist-steps", type=int, default=0, help="0: no in-distribution model.")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--json", type=Path, default=None, help="Write the results here too.")
    args = ap.parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    # The shipped models unless --models or --checkpoint names what to score.
    default = [] if args.checkpoint else pretrained_names()
    names = (args.models.split(",") if args.models else default) + args.checkpoint
    if not names:
        print("no pretrained model shipped and no --checkpoint given", file=sys.stderr)
        return 2
    models = {name: resolve_model(name) for name in names}
    presets = preset_names() if args.presets == "all" else args.presets.split(",")
    first = next(iter(models.values()))
    rows, t0 = [], time.time()
    with tempfile.TemporaryDirectory() as tmp:
        for spec in presets:
            lr, hr, clean, fwhm = test_set(spec, n=args.n, seed=args.seed, size=args.size, psf=True)
            known = {"pixel_scale": lr_pixel_scale(spec), "fwhm": fwhm}
            entries = {"bicubic": resolve_model("bicubic")} | models
            if args.in_dist_steps > 0:
                entries["in-distribution"] = in_distribution(
                    first,
                    spec,
                    steps=args.in_dist_steps,
                    seed=args.seed,
                    size=args.size,
                    folder=Path(tmp),
                )
            for name, model in entries.items():
                prior = trained_on(model)
                seen = seen_in(spec, prior) if prior else None  # None: bicubic
                warned = out_of_prior(model, lr, **known)
                rows.append(
                    {"preset": spec, "model": name, "seen": seen, "out_of_prior": warned}
                    | score(model, lr, hr, clean)
                )
            rows.append(
                {
                    "preset": spec,
                    "model": "noise floor (clean HR)",
                    "seen": None,
                    **floor(hr, clean),
                }
            )
    print_table(rows)
    print(
        f"({args.n} pairs per preset, held-out seed {args.seed} + 2**33, {time.time() - t0:.0f} s)"
    )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


def print_table(rows: list[dict]) -> None:
    cols = ("psnr_clean", "ssim_clean", "psnr_noisy", "ssim_noisy")
    print(
        "| preset | model | seen | out of prior | PSNR clean | SSIM clean | PSNR noisy | "
        "SSIM noisy |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        seen = "" if r["seen"] is None else ("yes" if r["seen"] else "held out")
        warned = "" if r.get("out_of_prior") is None else f"{100 * r['out_of_prior']:.0f} %"
        vals = " | ".join(
            f"{r[c]:.4f}" if c.startswith("ssim") and c in r else f"{r[c]:.2f}" if c in r else ""
            for c in cols
        )
        print(f"| {r['preset']} | {r['model']} | {seen} | {warned} | {vals} |")


if __name__ == "__main__":
    raise SystemExit(main())
