"""The substructure classifier at the seed study's scale on the DeepLense-faithful rung.

Simulates ``--n-train`` (default 9,000) training and ``--n-test`` (default 1,800) test
lenses of a DeepLense-faithful preset (default ``deeplense-3``: DeepLenseSim Model III, 64
px; ``deeplense-2`` for Model II), trains the classifier (default ResNet-18 with the
ImageNet stem, 30 epochs, batch 128; it holds out 10 % of the training set to pick its best
epoch) on the HR images, and scores it on the HR test images: accuracy and macro AUC with
95 % bootstrap intervals (:func:`lensr.eval.classification_metrics.score_intervals`), against the
targets of issue 12 (macro AUC >= 0.99, accuracy >= 0.92; published DeepLense ResNet-18
micro-AUC 0.994 / 0.985). Prints the wall time of each step.

Robustness rows, scored by the same HR-trained classifier: bicubic-upsampled LR, HR with
Gaussian noise of 1 % of each image's 99.5th percentile, and HR blurred by a Gaussian of
0.7 px: whether the accuracy rests on features that survive a small perturbation (an SR
output is one). ``--eval-only`` rescores the classifier of an earlier run in ``--out``.

``--quick`` runs the same path at a size that checks it in a minute or two (300 / 150
images, 3 epochs): its numbers say nothing about the targets.

Usage::

    python benchmarks/classification.py --quick
    python benchmarks/classification.py --preset deeplense-2 --out runs/bench-cls   # hours on CPU
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

TARGET_AUC, TARGET_ACC = 0.99, 0.92
QUICK = {"n_train": 300, "n_test": 150, "epochs": 3}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="deeplense-3")
    p.add_argument("--n-train", type=int, default=9000)
    p.add_argument("--n-test", type=int, default=1800)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--model", default="resnet18")
    p.add_argument("--workers", type=int, default=2, help="simulation processes")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=None, help="folder (default: a temporary one)")
    p.add_argument("--quick", action="store_true", help=f"a smoke run: {QUICK}")
    p.add_argument("--eval-only", action="store_true", help="rescore --out's classifier")
    args = p.parse_args(argv)
    if args.quick:
        args.n_train, args.n_test, args.epochs = QUICK["n_train"], QUICK["n_test"], QUICK["epochs"]

    import torch

    from lensr.data.store import open_dataset
    from lensr.eval.classification import classify_variants
    from lensr.eval.classification_metrics import score_intervals
    from lensr.eval.classify_inputs import classifier_for
    from lensr.models.checkpoint import resolve_model
    from lensr.sim.config import load_sim_config
    from lensr.sim.run import simulate
    from lensr.train.classifier import train_classifier
    from lensr.train.config import ClassifierConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    out = args.out or Path(tempfile.mkdtemp(prefix="lensr-bench-cls-"))
    out.mkdir(parents=True, exist_ok=True)
    sim = load_sim_config(args.preset)
    times = {}

    run = out / "classifier"
    start = time.perf_counter()
    if not args.eval_only:
        for name, n, seed in (("train", args.n_train, args.seed),
                              ("test", args.n_test, args.seed + 1)):  # fmt: skip
            simulate(sim, n=n, seed=seed, out=out / f"{name}.h5", workers=args.workers,
                     overwrite=True, progress=False)  # fmt: skip
        times["simulate"] = time.perf_counter() - start

    cfg = ClassifierConfig(
        model=args.model,
        model_kwargs={"small_input": False} if args.model == "resnet18" else {},
        max_epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        threads=args.threads,
    )
    start = time.perf_counter()
    if not args.eval_only:
        if run.exists():
            import shutil

            shutil.rmtree(run)
        train_classifier(cfg, data=out / "train.h5", out_dir=run, progress=False)
        times["train"] = time.perf_counter() - start

    start = time.perf_counter()
    with open_dataset(out / "test.h5") as ds:
        model = classifier_for(run / "best.safetensors", ds)
        probs = classify_variants(
            ds,
            model,
            {"HR": None, "LR (bicubic)": resolve_model("bicubic", scale=ds.scale)},
            n=len(ds),
            batch_size=128,
            progress=False,
            derived=perturbations(args.seed),
        )
        rows = {
            name: score_intervals(ds.labels[:], p, ds.class_names, seed=args.seed)
            for name, p in probs.items()
        }
    times["evaluate"] = time.perf_counter() - start

    scores = rows["HR"]
    acc, auc = scores["accuracy"], scores["macro_auc"]
    report = {
        "preset": args.preset,
        "model": args.model,
        "n_train": args.n_train,
        "n_test": args.n_test,
        "epochs": args.epochs,
        "quick": args.quick,
        "accuracy": acc,
        "macro_auc": auc,
        "targets_met": bool(acc["mean"] >= TARGET_ACC and auc and auc["mean"] >= TARGET_AUC),
        "robustness": {
            name: {"accuracy": s["accuracy"], "macro_auc": s["macro_auc"]}
            for name, s in rows.items()
        },
        "seconds": {k: round(v, 1) for k, v in times.items()},
        "threads": torch.get_num_threads(),
    }
    (out / "benchmark.json").write_text(json.dumps(report, indent=2))

    def ci(s):
        return f"{s['mean']:.4f} [{s['ci_low']:.4f}, {s['ci_high']:.4f}]" if s else "n/a"

    print(f"classifier {args.model} on {args.preset}: {args.n_train} train / {args.n_test} test,"
          f" {args.epochs} epochs, {report['threads']} threads")  # fmt: skip
    print(f"  HR accuracy  {ci(acc)}   (target >= {TARGET_ACC})")
    print(f"  HR macro AUC {ci(auc)}   (target >= {TARGET_AUC})")
    print(f"  targets met: {report['targets_met']}" + ("  (--quick: a smoke run)" * args.quick))
    for name, s in rows.items():
        print(f"  {name:22s} accuracy {ci(s['accuracy'])}  macro AUC {ci(s['macro_auc'])}")
    print("  wall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items())
          + f", total {sum(times.values()):.1f} s")  # fmt: skip
    print(f"  results: {out / 'benchmark.json'}")
    return report


def perturbations(seed: int) -> dict:
    """The HR images perturbed (classify_variants' ``derived``): 1 % Gaussian noise, blur."""
    import numpy as np
    from scipy.ndimage import gaussian_filter

    def noisy(images, lr, start, stop):
        rng = np.random.default_rng([seed, start])
        scale = np.percentile(images.reshape(len(images), -1), 99.5, axis=1)[:, None, None]
        return images + (0.01 * scale * rng.standard_normal(images.shape)).astype(np.float32)

    def blurred(images, lr, start, stop):
        return gaussian_filter(images, (0, 0.7, 0.7))

    return {"HR + 1 % noise": ("HR", noisy), "HR blurred 0.7 px": ("HR", blurred)}


if __name__ == "__main__":
    main()
