"""Throughput of every registered SR model: training samples/s and upscaled images/s.

Per model: parameters; training samples/s (48x48 LR patches, batch 16, L1 loss, Adam,
forward + backward + step); upscale images/s at 75x75 LR, batch 16, under
``torch.inference_mode``, under inference mode with channels_last tensors and weights,
under inference mode with batch 1, and with autograd on (a plain eval forward). Each number
comes from a few warm-up steps and then ``--seconds`` of timed steps (at least one, so
the published RCAN/RDN on a CPU just take one step per measurement).

Each model is measured in its own process, so that memory is returned between models and a
model that does not fit (the published RCAN with autograd on at batch 16 needs > 20 GiB)
keeps the columns it managed and shows "failed" in the rest instead of ending the run. The
physics-informed models are left out of the default list: their inference is a per-image
lens fit (~0.5 images/s on one core), not a network forward; name them with ``--models`` to
measure them anyway.

Usage::

    python benchmarks/sr_throughput.py                               # every SR model
    python benchmarks/sr_throughput.py --models fsrcnn-tiny,bicubic --threads 1 --seconds 2
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F
from rich.console import Console
from rich.table import Table

from lensr.models import count_parameters, create_model, list_models

TRAIN_BATCH, TRAIN_PATCH = 16, 48
INFER_BATCH, INFER_SIZE = 16, 75
WARMUP = 2


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def rate(step: Callable[[], None], items: int, *, seconds: float, device: torch.device) -> float:
    """Items per second of ``step``: up to WARMUP untimed calls, then ``seconds`` timed.

    A step that takes longer than ``seconds / 4`` gets a single warm-up call.
    """
    t0 = time.perf_counter()
    step()
    _sync(device)
    if time.perf_counter() - t0 < seconds / 4:
        for _ in range(WARMUP - 1):
            step()
    _sync(device)
    n, t0 = 0, time.perf_counter()
    while True:
        step()
        n += 1
        _sync(device)
        elapsed = time.perf_counter() - t0
        if elapsed >= seconds:
            return n * items / elapsed


def train_rate(model: torch.nn.Module, *, seconds: float, device: torch.device) -> float | None:
    """Training samples/s (L1, Adam), or None for a model without parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        return None
    model.train()
    opt = torch.optim.Adam(params, lr=1e-4)
    s = model.scale
    x = torch.rand(TRAIN_BATCH, 1, TRAIN_PATCH, TRAIN_PATCH, device=device)
    y = torch.rand(TRAIN_BATCH, 1, s * TRAIN_PATCH, s * TRAIN_PATCH, device=device)

    def step():
        opt.zero_grad(set_to_none=True)
        F.l1_loss(model(x), y).backward()
        opt.step()

    return rate(step, TRAIN_BATCH, seconds=seconds, device=device)


def infer_rate(
    model: torch.nn.Module,
    *,
    batch: int,
    seconds: float,
    device: torch.device,
    inference_mode: bool = True,
    channels_last: bool = False,
) -> float:
    """Upscaled images/s at INFER_SIZE x INFER_SIZE LR."""
    model.eval()
    x = torch.rand(batch, 1, INFER_SIZE, INFER_SIZE, device=device)
    if channels_last:
        model = copy.deepcopy(model).to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def step():
        if inference_mode:
            with torch.inference_mode():
                model(x)
        else:
            model(x)  # autograd records the graph: what a plain forward costs

    return rate(step, batch, seconds=seconds, device=device)


COLUMNS = ("train", "infer_b16", "cl_b16", "infer_b1", "grad_b16")


def measure(name: str, *, seconds: float, device: torch.device):
    """Yield (column, value) pairs for one model, cheapest memory first.

    Autograd at batch 16 goes last: it is what runs the published RCAN out of memory, and
    the columns measured before it still count.
    """
    torch.manual_seed(0)
    model = create_model(name).to(device)
    yield "params", count_parameters(model)
    yield "train", train_rate(model, seconds=seconds, device=device)
    kw = dict(seconds=seconds, device=device)
    yield "infer_b16", infer_rate(model, batch=INFER_BATCH, **kw)
    yield "cl_b16", infer_rate(model, batch=INFER_BATCH, channels_last=True, **kw)
    yield "infer_b1", infer_rate(model, batch=1, **kw)
    yield "grad_b16", infer_rate(model, batch=INFER_BATCH, inference_mode=False, **kw)


def _fmt(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def measure_in_child(name: str, args: argparse.Namespace) -> dict:
    """:func:`measure` in a fresh interpreter, one JSON line per column.

    A crash (e.g. killed for memory) keeps the columns measured before it and names the
    failure in ``row["failed"]``.
    """
    cmd = [sys.executable, __file__, "--one", name, "--threads", str(args.threads)]
    cmd += ["--seconds", str(args.seconds), "--device", args.device]
    done = subprocess.run(cmd, capture_output=True, text=True)
    row = {"model": name, "params": None}
    for line in done.stdout.splitlines():
        row.update(json.loads(line))
    if done.returncode != 0:
        why = "killed: out of memory?" if done.returncode in (-9, 137) else done.stderr.strip()
        row["failed"] = why.splitlines()[-1] if why else f"exit status {done.returncode}"
    return row


def table(rows: list[dict], *, title: str) -> Table:
    t = Table(title=title)
    t.add_column("model")
    headers = {
        "train": "train/s",
        "infer_b16": "infer b16",
        "cl_b16": "+ch_last b16",
        "infer_b1": "infer b1",
        "grad_b16": "grad b16",
    }
    t.add_column("params", justify="right")
    for key in COLUMNS:
        t.add_column(headers[key], justify="right")
    for r in rows:
        params = "-" if r["params"] is None else f"{r['params']:,}"
        cells = [_fmt(r[k]) if k in r else "failed" for k in COLUMNS]
        t.add_row(r["model"], params, *cells)
    return t


def failures(rows: list[dict]) -> list[str]:
    """One line per model whose measurement ended early."""
    return [f"{r['model']}: {r['failed']}" for r in rows if "failed" in r]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = ",".join(
        i.name
        for i in list_models()
        if i.family in ("sr", "baseline") and not i.name.startswith("physics")
    )
    parser.add_argument("--models", default=default, help="comma-separated (default: all SR)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    parser.add_argument("--seconds", type=float, default=3.0, help="timed seconds per number")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child mode: one model, JSON out
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.one:
        for key, value in measure(args.one, seconds=args.seconds, device=torch.device(args.device)):
            print(json.dumps({key: value}), flush=True)
        return
    console = Console(width=110)
    rows = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        t0 = time.perf_counter()
        rows.append(measure_in_child(name, args))
        console.print(f"{name}: {time.perf_counter() - t0:.0f} s", style="dim")
    title = f"SR throughput x2, {args.device}, {args.threads} thread(s), torch {torch.__version__}"
    console.print(table(rows, title=title))
    console.print(
        f"train/s: training samples/s ({TRAIN_PATCH}x{TRAIN_PATCH} LR, batch {TRAIN_BATCH}, L1, "
        f"Adam). Others: upscaled images/s at {INFER_SIZE}x{INFER_SIZE} LR; grad = eval forward "
        "with autograd on, infer = torch.inference_mode, + ch_last = also channels_last, "
        "b16/b1 = batch size."
    )
    for line in failures(rows):
        console.print(f"failed: {line}", style="red")


if __name__ == "__main__":
    main()
