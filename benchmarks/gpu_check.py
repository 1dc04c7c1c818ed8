"""One command that checks lensr on a CUDA machine and prints one table.

Stages (each a row; a failed stage is a row with its error, never the end of the run):

* ``data``: simulate ``sim`` HR/LR pairs and ``classify`` images with :func:`lensr.simulate`
  (lenstronomy, CPU workers), the data of every later stage;
* ``train-fp32`` and ``train-bf16``: the published RCAN (registry ``rcan``) for a few hundred
  steps through :func:`lensr.train.fit.train` at precision ``32-true`` and ``bf16-mixed``;
  PSNR of the last validation (noise-free HR), and the bf16 - fp32 difference;
* ``upscale``: a batch through :func:`lensr.infer.arrays.upscale_array` with the fp32 model;
* ``classifier``: a brief :func:`lensr.train.classifier.train_classifier` run;
* ``ddp``: ``lensr train --devices N --strategy ddp`` on every visible GPU, as a subprocess
  (skipped with one GPU);
* ``caustics``: the batched GPU simulation path (:mod:`lensr.sim.caustics_render`), with its
  noise-free HR images compared to the lenstronomy ones of the ``data`` stage.

Columns: device, throughput, peak memory (``torch.cuda.max_memory_allocated``), quality
(PSNR after the steps, accuracy), bf16 vs fp32 agreement, wall time. A global deadline
(default 450 s, under the 8 minutes a modern GPU needs) skips the stages that no longer fit,
with a note. The table is also written as JSON to ``--out``.

``--cpu-smoke`` runs every stage at tiny sizes on the CPU (fp32; bf16 through CPU autocast
when the CPU supports it; DDP on two gloo processes) in about a minute: that is how the
script is tested without a GPU (tests/benchmarks/test_gpu_check.py). The stages themselves
are in ``gpu_check_stages.py`` beside this file.

Usage::

    python benchmarks/gpu_check.py --out gpu_check.json
    python benchmarks/gpu_check.py --cpu-smoke --out smoke.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the stages live beside this file
from gpu_check_stages import (  # noqa: E402
    Context,
    SkipStage,
    stage_caustics,
    stage_classifier,
    stage_data,
    stage_ddp,
    stage_train,
    stage_upscale,
)

STAGES = ("data", "train-fp32", "train-bf16", "upscale", "classifier", "ddp", "caustics")


@dataclass(frozen=True)
class Plan:
    """Sizes and time budgets (seconds) of one mode."""

    accelerator: str
    sim_pairs: int
    cls_images: int
    sr_model: str
    sr_steps: int
    sr_batch: int
    patch: int
    val_images: int
    upscale_images: int
    upscale_batch: int
    cls_steps: int
    cls_batch: int
    ddp_steps: int
    caustics_images: int
    caustics_batch: int
    loader_workers: int
    deadline_s: float
    budget: dict = field(default_factory=dict)
    """Seconds each stage is expected to take: it is skipped when less time is left."""


GPU = Plan(
    accelerator="gpu", sim_pairs=384, cls_images=600, sr_model="rcan", sr_steps=300,
    sr_batch=16, patch=48, val_images=32, upscale_images=256, upscale_batch=32,
    cls_steps=200, cls_batch=64, ddp_steps=100, caustics_images=256, caustics_batch=64,
    loader_workers=4, deadline_s=450,
    budget={"data": 60, "train-fp32": 90, "train-bf16": 70, "upscale": 15,
            "classifier": 50, "ddp": 90, "caustics": 30},
)  # fmt: skip
SMOKE = Plan(
    accelerator="cpu", sim_pairs=12, cls_images=24, sr_model="rcan-tiny", sr_steps=4,
    sr_batch=4, patch=16, val_images=2, upscale_images=8, upscale_batch=4,
    cls_steps=3, cls_batch=8, ddp_steps=2, caustics_images=4, caustics_batch=4,
    loader_workers=0, deadline_s=120,
    budget={"data": 5, "train-fp32": 5, "train-bf16": 5, "upscale": 2,
            "classifier": 5, "ddp": 20, "caustics": 5},
)  # fmt: skip


RUNNERS = {
    "data": stage_data,
    "train-fp32": lambda ctx: stage_train(ctx, "32-true"),
    "train-bf16": lambda ctx: stage_train(ctx, "bf16-mixed"),
    "upscale": stage_upscale,
    "classifier": stage_classifier,
    "ddp": stage_ddp,
    "caustics": stage_caustics,
}


def run_stage(ctx: Context, stage: str) -> dict:
    """One row: the stage's numbers, or its error, or why it was skipped."""
    row = {"stage": stage, "device": ctx.device_name(), "status": "ok"}
    need = ctx.plan.budget.get(stage, 0)
    if ctx.left() < need:
        row.update(status="skipped", note=f"deadline: {ctx.left():.0f} s left, needs ~{need} s")
        return row
    t0 = time.perf_counter()
    try:
        row.update(RUNNERS[stage](ctx))
    except SkipStage as why:
        row.update(status="skipped", note=str(why))
    except Exception as exc:  # every failure is a row, not the end of the run
        text = str(exc).strip().splitlines()
        row.update(status="failed", note=f"{type(exc).__name__}: {text[0] if text else ''}"[:300])
        row["traceback"] = traceback.format_exc()
    row["wall_s"] = time.perf_counter() - t0
    return row


def run_check(plan: Plan, *, stages=STAGES, work: Path | None = None) -> list[dict]:
    """Every stage of :data:`STAGES` in order; those not in ``stages`` are rows "skipped"."""
    owned = work is None
    work = Path(tempfile.mkdtemp(prefix="lensr-gpu-check-")) if owned else Path(work)
    ctx = Context(plan, work)
    rows = []
    try:
        for stage in STAGES:
            if stage in stages:
                row = run_stage(ctx, stage)
            else:
                row = {"stage": stage, "device": ctx.device_name(), "status": "skipped",
                       "note": "not selected (--stages)"}  # fmt: skip
            ctx.done[stage] = row
            rows.append(row)
    finally:
        if owned:
            shutil.rmtree(work, ignore_errors=True)
    return rows


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(rows: list[dict], *, title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for name in ("stage", "device", "status", "throughput", "peak MiB", "quality",
                 "bf16 - fp32", "wall s", "note"):  # fmt: skip
        table.add_column(name, overflow="fold")
    for r in rows:
        speed = r.get("throughput")
        table.add_row(
            r["stage"], r.get("device", "-"), r["status"],
            "-" if speed is None else f"{speed:,.1f} {r.get('unit', '')}",
            _fmt(r.get("peak_mib"), ",.0f"), r.get("quality") or "-", r.get("agreement") or "-",
            _fmt(r.get("wall_s"), ".1f"), r.get("note") or "",
        )  # fmt: skip
    Console(width=160).print(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on the CPU")
    parser.add_argument("--out", type=Path, help="write the table as JSON here")
    parser.add_argument("--stages", default=",".join(STAGES), help="comma-separated subset")
    parser.add_argument("--deadline", type=float, help="seconds for all stages (default: plan)")
    args = parser.parse_args(argv)
    plan = SMOKE if args.cpu_smoke else GPU
    if args.deadline:
        plan = replace(plan, deadline_s=args.deadline)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    unknown = sorted(set(stages) - set(STAGES))
    if unknown:
        parser.error(f"unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    if plan.accelerator == "gpu" and not torch.cuda.is_available():
        parser.error("no CUDA GPU is visible: use --cpu-smoke to check the script on a CPU")
    # Lightning sets it when deterministic, but only once CUDA may already be initialised.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    t0 = time.perf_counter()
    rows = run_check(plan, stages=stages)
    total = time.perf_counter() - t0
    mode = "cpu-smoke" if args.cpu_smoke else "gpu"
    print_table(rows, title=f"lensr GPU check ({mode}), torch {torch.__version__}, {total:.0f} s")
    for r in rows:
        if r["status"] == "failed":
            print(f"{r['stage']} failed:\n{r.get('traceback', '')}", file=sys.stderr)
    if args.out:
        from lensr.io import write_json

        report = {"mode": mode, "torch": torch.__version__, "total_s": total,
                  "cuda": torch.version.cuda, "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                  "rows": rows}  # fmt: skip
        write_json(args.out, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
