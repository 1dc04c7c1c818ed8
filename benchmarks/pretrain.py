"""Train the pretrained models lensr ships (``space-x2``, ``ground-x2``) and export them.

Each recipe trains by streaming (pairs simulated on the fly, never repeated:
lensr.train.streaming) on part of the ``generalist`` wide prior, validating and writing a
full checkpoint every ``val_check_interval`` steps, so an interrupted run continues with
``--resume``. The export step scores the best weights on held-out test pairs of the prior
(and bicubic beside them), measures the prior's ``prior_range`` (the out-of-prior warning
of ``lensr upscale``), and writes ``NAME.safetensors`` + ``NAME.json`` (sidecar and model
card) into ``--export-to`` (default: the package's ``src/lensr/weights/``). A run shorter
than the recipe's ``min_steps_to_ship`` (a smoke run) may not export into the package: a weak
model must never ship under a pretrained name.

Usage (the real trainings; run each in the background, resume after any interruption)::

    nice -n 15 python benchmarks/pretrain.py space-x2 --workers 2          # then --resume
    nice -n 15 python benchmarks/pretrain.py ground-x2 --workers 2 --resume
    python benchmarks/pretrain.py space-x2 --export-only                   # card + weights

Expected duration on an idle 2-core CPU: ~0.2 s per step (rcan-tiny shape, batch 16, patch
32, the two simulator workers sharing the cores), so the default 8,000 steps take ~30-50 min
per model (checkpoint every 500 steps). ``--max-steps`` shortens it; a run under 5,000 steps,
or one that scores below bicubic on any preset of its prior, may not ship.

Smoke (a few minutes, exports to a temporary folder)::

    nice -n 15 python benchmarks/pretrain.py space-x2 --smoke --out /tmp/pt --export-to /tmp/w
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from lensr.errors import LensrError
from lensr.infer.prior import prior_stats
from lensr.models.checkpoint import resolve_model, save_checkpoint
from lensr.models.pretrained import weights_dir
from lensr.train.config import TrainConfig
from lensr.train.fit import train

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generalisation import score, test_set  # noqa: E402

ARCH = {"n_feats": 32, "n_groups": 2, "n_blocks": 4}
"""RCAN 2 groups x 4 blocks x 32 features (the rcan-tiny shape): 0.21 M parameters, 0.9 MB in
float32. Chosen for what a 2-core CPU trains in under an hour: ~0.08 s per step on ready
tensors, while the stream makes ~70 pairs/s (x4 patches), so training, not simulation, is the
bottleneck. The 48x3x6 RCAN is 3.6x slower per step (0.29 s)."""
RECIPES = {
    "space-x2": {
        "presets": "generalist/space*",
        "weights": None,
        "prior": 'generalist, space variants (space-euclid, space-hst): LR 0.08-0.1"/px, '
        'Gaussian/Moffat PSF FWHM 0.08-0.25", HR PSF 0.05-0.1", peak S/N 3-200',
    },
    "ground-x2": {
        "presets": "generalist/ground*,hsc-hst",
        "weights": "2,1",
        "prior": "generalist, ground variants (ground-hsc, ground-lsst) + hsc-hst: LR "
        '0.168-0.2"/px seeing 0.5-1.0" (Moffat/Gaussian), sky-dominated; HR HST-like',
    },
}
STEPS, INTERVAL, MIN_STEPS_TO_SHIP = 8_000, 500, 5_000
SMOKE = {"max_steps": 40, "val_check_interval": 20, "max_val_images": 8}


def config(name: str, *, smoke: bool, max_steps: int | None, workers: int) -> TrainConfig:
    steps = max_steps or (SMOKE["max_steps"] if smoke else STEPS)
    interval = SMOKE["val_check_interval"] if smoke else INTERVAL
    return TrainConfig(
        model="rcan",
        model_kwargs=ARCH,
        seed=0,
        patch=32,
        batch_size=16,
        lr=4e-4,
        ema=0.999,
        max_steps=steps,
        max_epochs=steps // interval + 2,
        val_check_interval=interval,
        max_val_images=SMOKE["max_val_images"] if smoke else 64,
        num_workers=workers,
    )


def hardware() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return gpu or f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


CALIBRATION_SEED = 1
"""Held-out pairs of this seed (+ 2**33) fit the shipped sigma calibration; the scoring
pairs (seed 0) check it."""


def calibrate(model, presets: list[str], *, n: int) -> dict:
    """The ``sigma_calibration`` entry of a shipped model: ``a * sigma + b * LR noise + c *
    |SR|`` (lensr.infer.uncertainty.fit_calibration) fitted on ``n`` held-out pairs per
    preset of its prior (seed CALIBRATION_SEED) against the noise-free HR, with the coverage
    within 1 and 2 sigma, raw and calibrated, on the scoring pairs (seed 0)."""
    import numpy as np

    from lensr.infer.uncertainty import (
        apply_calibration,
        coverage,
        fit_calibration,
        image_noise,
        predict_with_uncertainty,
    )

    def samples(seed: int):
        parts = []
        for spec in presets:
            lr, _, clean = test_set(spec, n=n, seed=seed)
            mean, sigma = predict_with_uncertainty(lr, [model], calibrate=False)
            noise = np.broadcast_to(image_noise(lr)[:, None, None], mean.shape)
            parts.append((lr, mean, sigma, clean, noise))
        return parts

    fit_parts = samples(CALIBRATION_SEED)
    stack = [np.concatenate([p[k].ravel() for p in fit_parts]) for k in (1, 2, 3, 4)]
    mean, sigma, clean, noise = stack
    fit = fit_calibration(mean - clean, sigma, noise, mean)
    raw, calibrated = [], []
    for lr, mean, sigma, clean, _ in samples(0):
        raw.append((mean - clean, sigma))
        calibrated.append((mean - clean, apply_calibration(sigma, fit, lr, mean)))

    def pooled(pairs):
        return coverage(*(np.concatenate([p[k].ravel() for p in pairs]) for k in (0, 1)))

    return {
        **{k: fit[k] for k in ("a", "b", "c", "terms")},
        "dataset": f"{n} held-out pairs per preset of the prior (seed {CALIBRATION_SEED})",
        "preset": None,
        "coverage_raw": pooled(raw),
        "coverage": pooled(calibrated),
    }


def export(name: str, out: Path, dest: Path, *, n_test: int, smoke: bool) -> Path:
    """Score ``out``'s best weights, attach the model card and write them into ``dest``."""
    timing = json.loads((out / "pretrain_time.json").read_text())
    model = resolve_model(str(out / "best.safetensors"))
    meta = dict(model.metadata)
    steps = int(meta.get("step", 0))
    if dest.resolve() == weights_dir().resolve() and (smoke or steps < MIN_STEPS_TO_SHIP):
        raise LensrError(
            f"{name}: {steps} steps is a smoke run (< {MIN_STEPS_TO_SHIP}): it may not ship "
            f"under a pretrained name; give --export-to another folder"
        )
    recipe = RECIPES[name]
    scores, lrs = {}, []
    for spec in recipe["presets"].split(","):
        lr, hr, clean = test_set(spec, n=n_test, seed=0)
        lrs.append(lr)
        scores[spec] = {
            "model": score(model, lr, hr, clean),
            "bicubic": score(resolve_model("bicubic"), lr, hr, clean),
        }
    worse = [
        spec for spec, s in scores.items() if s["model"]["psnr_clean"] < s["bicubic"]["psnr_clean"]
    ]
    if dest.resolve() == weights_dir().resolve() and worse:
        raise LensrError(
            f"{name}: below bicubic on {', '.join(worse)} of its own prior: it may not ship"
        )
    batch = meta["training"]["batch_size"]
    card = {
        "name": name,
        "prior": recipe["prior"],
        "presets": recipe["presets"],
        "preset_weights": recipe["weights"],
        "steps": steps,
        "images_seen": steps * batch // max(1, meta["data"].get("reuse", 1)),
        "patches_seen": steps * batch,
        "training_time_s": round(timing["seconds"], 1),
        "hardware": timing["hardware"],
        "scores": scores,
        "scores_note": f"{n_test} held-out pairs per preset (seed 2**33); PSNR/SSIM after "
        "min-max normalising the target; clean = vs noise-free HR, noisy = vs noisy HR",
        "prior_range": prior_stats(lrs, meta["data"]["preset_configs"]),
        "smoke": smoke,
    }
    extra = {
        k: v
        for k, v in meta.items()
        if k not in ("format", "arch", "kwargs", "scale", "lensr_version")
    }
    extra["sigma_calibration"] = [calibrate(model, recipe["presets"].split(","), n=n_test)]
    dest.mkdir(parents=True, exist_ok=True)
    path = save_checkpoint(model, dest / f"{name}.safetensors", metadata={**extra, "card": card})
    size = path.stat().st_size / 2**20
    if size > 5:
        raise LensrError(f"{path} is {size:.1f} MB, over the 5 MB a shipped model may take")
    return path


def measure(presets: str, *, seconds: float, workers: int, reuse: int) -> dict:
    """Pairs/s the stream produces (``workers`` simulator processes, batch 16, patch 32)
    vs samples/s rcan-tiny consumes (training steps on ready tensors, 2 threads)."""
    import torch
    from torch.utils.data import DataLoader

    from lensr.data.torch_data import EpochSampler
    from lensr.models import create_model
    from lensr.train.streaming import StreamingPairs, parse_presets

    cfgs, w = parse_presets(presets)
    ds = StreamingPairs(cfgs, w, patch=32, epoch_size=10**6, reuse=reuse)
    loader = DataLoader(
        ds, batch_size=16, sampler=EpochSampler(len(ds), shuffle=False), num_workers=workers
    )
    it, n, t0 = iter(loader), 0, None
    while t0 is None or time.time() - t0 < seconds:
        next(it)
        if t0 is None:
            t0 = time.time()  # after the first batch: workers started
        else:
            n += 16
    produced = n / (time.time() - t0)
    del it
    torch.set_num_threads(2)
    model = create_model("rcan-tiny")
    opt = torch.optim.Adam(model.parameters(), 2e-4)
    lr, hr = torch.rand(16, 1, 32, 32), torch.rand(16, 1, 64, 64)
    steps, t0 = 0, time.time()
    while time.time() - t0 < seconds or steps < 3:
        opt.zero_grad()
        torch.nn.functional.l1_loss(model(lr), hr).backward()
        opt.step()
        steps += 1
    consumed = steps * 16 / (time.time() - t0)
    return {
        "pairs_per_s": produced / reuse,
        "patches_per_s": produced,
        "samples_per_s": consumed,
        "load": os.getloadavg()[0],
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", choices=sorted(RECIPES))
    ap.add_argument("--out", type=Path, default=None, help="Run folder (runs/pretrain/NAME).")
    ap.add_argument("--resume", action="store_true", help="Continue the run in --out.")
    ap.add_argument("--smoke", action="store_true", help=f"A tiny run: {SMOKE}.")
    ap.add_argument("--max-steps", type=int, default=None, help=f"Default {STEPS}.")
    ap.add_argument("--workers", type=int, default=2, help="DataLoader (simulator) workers.")
    ap.add_argument("--reuse", type=int, default=4, help="Patches cut per simulated image.")
    ap.add_argument("--export-to", type=Path, default=None, help="Default src/lensr/weights.")
    ap.add_argument("--export-only", action="store_true", help="Skip training; export.")
    ap.add_argument("--n-test", type=int, default=64, help="Held-out test pairs per preset.")
    ap.add_argument(
        "--measure",
        type=float,
        default=None,
        help="Only measure stream vs training throughput for this many seconds.",
    )
    args = ap.parse_args(argv)
    if args.measure:
        m = measure(
            RECIPES[args.name]["presets"],
            seconds=args.measure,
            workers=args.workers,
            reuse=args.reuse,
        )
        print(
            f"{args.name}: stream {m['pairs_per_s']:.1f} pairs/s = {m['patches_per_s']:.1f} "
            f"patches/s (reuse {args.reuse}, {args.workers} workers); rcan-tiny trains "
            f"{m['samples_per_s']:.1f} samples/s; load average {m['load']:.1f}"
        )
        return 0
    out = args.out or Path("runs/pretrain") / args.name
    dest = args.export_to or weights_dir()
    try:
        if not args.export_only:
            cfg = config(
                args.name, smoke=args.smoke, max_steps=args.max_steps, workers=args.workers
            )
            recipe = RECIPES[args.name]
            timing_file = out / "pretrain_time.json"
            before = (
                json.loads(timing_file.read_text())["seconds"]
                if (args.resume and timing_file.is_file())
                else 0.0
            )
            t0 = time.time()
            try:
                train(
                    cfg,
                    preset=recipe["presets"],
                    preset_weights=recipe["weights"],
                    preset_reuse=args.reuse,
                    out_dir=out,
                    resume=args.resume,
                    progress=sys.stderr.isatty(),
                )
            finally:
                if out.is_dir():
                    timing_file.write_text(
                        json.dumps({"seconds": before + time.time() - t0, "hardware": hardware()})
                    )
        path = export(args.name, out, dest, n_test=args.n_test, smoke=args.smoke)
    except LensrError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    card = json.loads(path.with_suffix(".json").read_text())["card"]
    print(
        f"exported {path} ({path.stat().st_size / 2**20:.2f} MB): {card['steps']} steps, "
        f"{card['training_time_s']:.0f} s on {card['hardware']}"
    )
    for spec, s in card["scores"].items():
        m, b = s["model"], s["bicubic"]
        print(
            f"  {spec}: PSNR clean {m['psnr_clean']:.2f} (bicubic {b['psnr_clean']:.2f}), "
            f"noisy {m['psnr_noisy']:.2f} (bicubic {b['psnr_noisy']:.2f})"
        )
    fit = json.loads(path.with_suffix(".json").read_text())["sigma_calibration"][0]
    print(
        f"  sigma calibration a={fit['a']:.3g} b={fit['b']:.3g} c={fit['c']:.3g}: within "
        f"1/2 sigma raw {fit['coverage_raw']['within_1sigma']:.3f}/"
        f"{fit['coverage_raw']['within_2sigma']:.3f}, calibrated "
        f"{fit['coverage']['within_1sigma']:.3f}/{fit['coverage']['within_2sigma']:.3f}"
    )
    ranges = card["prior_range"]
    print(f"  prior noise/scale range {ranges['noise_rel']}")
    print(
        f"  prior LR pixel scale {ranges['lr_pixel_scale']} arcsec, PSF FWHM "
        f"{ranges['lr_psf_fwhm']} arcsec = {ranges['lr_psf_fwhm_px']} LR px"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
