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

``--paths`` prints the CPU inference paths table instead (issue 15): per model, upscaled
images/s (best of the rounds) at 75x75 LR, batch 16, channels_last, inference mode, for
eager mode, the compiled path of ``lensr upscale --compile`` (:mod:`lensr.infer.compiled`:
Inductor with frozen weights), bf16 autocast, TorchScript freeze + ``optimize_for_inference``
and TorchScript with the oneDNN Graph fuser; each path's speed-up over eager (x: median of
back-to-back pairs, robust on a busy machine), its max abs difference to eager (inputs
uniform in [0, 1], i.e. normalised images), the compiled path's first call with an empty
Inductor cache ("compile s", including one eager check batch), and the wall time of one
100-image ``upscale_array`` call in a fresh process, eager and compiled (Inductor's disk
cache warm; "cold" adds the compile time to 100 images at the compiled rate).

Measured (issue 15) on this project's 2-core AMD EPYC (Zen 4: avx512_bf16, no AMX), torch
2.13, 2 threads, load ~1.6-2; img/s (x median paired ratio to eager), max abs diff to eager:

    model          eager  compiled      bf16               jit+ofi  oneDNN graph        compile
    rcan-tiny      100    108 x1.14     227 x2.42, 5.0e-3  x0.67    116 x1.22, 4.8e-1!  14.5 s
    srresnet-tiny   96     97 x1.06     234 x2.48, 1.6e-3  x0.46     98 x1.02           10.7 s
    fsrcnn-tiny    697    686 x1.07    1001 x1.62, 3.1e-3  x0.98    605 x0.95           10.5 s

Compiled diffs <= 5.4e-7. A 100-image upscale_array (rcan-tiny): eager 1.0 s, compiled 7.2 s
with a warm Inductor cache (15 s cold). No path gains >= 20 % with outputs within 1e-5, so
``lensr upscale`` stays eager by default; ``--compile`` is opt-in (more useful when other
jobs share the cores: x1.4-1.5 measured at load ~10). The oneDNN Graph fuser gives wrong
outputs for rcan-tiny (max abs 0.48).

Usage::

    python benchmarks/sr_throughput.py                               # every SR model
    python benchmarks/sr_throughput.py --models fsrcnn-tiny,bicubic --threads 1 --seconds 2
    python benchmarks/sr_throughput.py --paths                       # CPU inference paths
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
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


# CPU inference paths (--paths) ---------------------------------------------------------

PATH_MODELS = "rcan-tiny,srresnet-tiny,fsrcnn-tiny"
PATHS = ("compiled", "bf16", "jit", "onednn")
"""Compared with eager: lensr's compiled path, bf16 autocast, TorchScript freeze +
optimize_for_inference, TorchScript with the oneDNN Graph fuser."""


def _path_functions(model: torch.nn.Module, x: torch.Tensor) -> dict:
    """name -> (set-up seconds, callable) of every path; set-up includes the first calls."""
    from lensr.infer.compiled import compiled_forward

    def timed(make, warm_calls=1, grad=torch.inference_mode):
        t0 = time.perf_counter()
        fn = make()

        def call(inp):
            with grad():
                return fn(inp)

        for _ in range(warm_calls):
            call(x)
        return time.perf_counter() - t0, call

    def bf16():
        def fn(inp):
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return model(inp).float()

        return fn

    def script(fuse: bool):
        torch.jit.enable_onednn_fusion(fuse)
        with torch.no_grad():
            traced = torch.jit.freeze(torch.jit.trace(copy.deepcopy(model), x))
        return traced if fuse else torch.jit.optimize_for_inference(traced)

    return {
        "eager": timed(lambda: model),
        "compiled": timed(lambda: compiled_forward(model, device=torch.device("cpu"))),
        "bf16": timed(bf16),
        "jit": timed(lambda: script(False), warm_calls=3, grad=torch.no_grad),
        "onednn": timed(lambda: script(True), warm_calls=3, grad=torch.no_grad),
    }


def measure_paths(name: str, *, rounds: int, seconds: float):
    """Yield (key, value): per path its set-up s, best img/s, median ratio to eager, diff."""
    torch.manual_seed(0)
    model = create_model(name).eval().to(memory_format=torch.channels_last)
    shape = (INFER_BATCH, 1, INFER_SIZE, INFER_SIZE)
    x = torch.rand(shape).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        ref = model(x)
    fns = _path_functions(model, x)
    for path, (setup, fn) in fns.items():
        yield f"setup_{path}", setup
        yield f"diff_{path}", float((fn(x).float() - ref).abs().max())
    cpu = torch.device("cpu")
    best = {p: 0.0 for p in fns}
    ratios: dict[str, list[float]] = {p: [] for p in PATHS}
    for _ in range(rounds):
        speed = {p: rate(lambda f=f: f(x), INFER_BATCH, seconds=seconds, device=cpu)
                 for p, (_, f) in fns.items()}  # fmt: skip
        after = rate(lambda: fns["eager"][1](x), INFER_BATCH, seconds=seconds, device=cpu)
        for p in fns:
            best[p] = max(best[p], speed[p])
        for p in PATHS:
            ratios[p].append(speed[p] / ((speed["eager"] + after) / 2))
    for p in fns:
        yield f"best_{p}", best[p]
    for p in PATHS:
        yield f"ratio_{p}", statistics.median(ratios[p])


def upscale_100(name: str, compile: bool) -> float:
    """Seconds of one ``upscale_array`` call on 100 75x75 images (compiling included)."""
    from lensr.infer.arrays import upscale_array

    torch.manual_seed(0)
    model = create_model(name)
    lr = torch.rand(100, INFER_SIZE, INFER_SIZE).numpy()
    t0 = time.perf_counter()
    upscale_array(lr, model, batch_size=INFER_BATCH, compile=compile)
    return time.perf_counter() - t0


def _child(args: list[str], env: dict) -> dict:
    cmd = [sys.executable, __file__, *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env})
    row = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            row.update(json.loads(line))
    if done.returncode != 0:
        row["failed"] = (done.stderr.strip().splitlines() or ["?"])[-1]
    return row


def paths_rows(args: argparse.Namespace) -> list[dict]:
    """One row per model; Inductor gets a fresh cache folder per model (cold compile), then
    the compiled 100-image run reuses it (warm)."""
    rows = []
    common = ["--threads", str(args.threads)]
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        with tempfile.TemporaryDirectory(prefix="lensr-inductor-") as cache:
            env = {"TORCHINDUCTOR_CACHE_DIR": cache}
            row = {"model": name}
            row.update(_child(["--paths-one", name, "--seconds", str(args.seconds),
                               "--rounds", str(args.rounds), *common], env))  # fmt: skip
            for flag in ("0", "1"):
                got = _child(["--upscale100", name, "--compile-flag", flag, *common], env)
                row[f"u100_{flag}"] = got.get("seconds")
        rows.append(row)
        print(f"{name}: done", file=sys.stderr, flush=True)
    return rows


def paths_table(rows: list[dict], *, title: str) -> Table:
    t = Table(title=title)
    for col in ("model", "eager img/s", "compiled", "bf16", "jit+ofi", "oneDNN graph",
                "compile s", "diff compiled", "diff bf16", "diff jit", "diff oneDNN",
                "100 img eager s", "100 img compiled s"):  # fmt: skip
        t.add_column(col, justify="left" if col == "model" else "right")

    def speed(r, p):
        if f"best_{p}" not in r:
            return "failed"
        return f"{_fmt(r[f'best_{p}'])} (x{r[f'ratio_{p}']:.2f})"

    def diff(r, p):
        return f"{r[f'diff_{p}']:.1e}" if f"diff_{p}" in r else "-"

    for r in rows:
        cold = r.get("setup_compiled")
        warm = r.get("u100_1")
        t.add_row(
            r["model"], _fmt(r.get("best_eager")), *(speed(r, p) for p in PATHS),
            _fmt(cold), *(diff(r, p) for p in PATHS), _fmt(r.get("u100_0")),
            "-" if warm is None else f"{warm:.3g} (cold {cold + 100 / r['best_compiled']:.3g})"
            if cold and r.get("best_compiled") else f"{warm:.3g}",
        )  # fmt: skip
    return t


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default = ",".join(
        i.name
        for i in list_models()
        if i.family in ("sr", "baseline") and not i.name.startswith("physics")
    )
    parser.add_argument("--models", default=default, help="comma-separated (default: all SR)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    parser.add_argument(
        "--seconds", type=float, help="timed seconds per number (default 3; --paths: 0.5)"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--paths", action="store_true", help="the CPU inference paths table")
    parser.add_argument("--rounds", type=int, default=8, help="--paths: timed rounds")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child mode: one model, JSON out
    parser.add_argument("--paths-one", help=argparse.SUPPRESS)
    parser.add_argument("--upscale100", help=argparse.SUPPRESS)
    parser.add_argument("--compile-flag", default="0", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.seconds is None:
        args.seconds = 0.5 if (args.paths or args.paths_one) else 3.0
    torch.set_num_threads(args.threads)
    if args.paths_one:
        for key, value in measure_paths(args.paths_one, rounds=args.rounds, seconds=args.seconds):
            print(json.dumps({key: value}), flush=True)
        return
    if args.upscale100:
        seconds = upscale_100(args.upscale100, args.compile_flag == "1")
        print(json.dumps({"seconds": seconds}), flush=True)
        return
    if args.paths:
        if args.models == parser.get_default("models"):
            args.models = PATH_MODELS
        rows = paths_rows(args)
        title = (f"CPU inference paths, x2, {INFER_SIZE}x{INFER_SIZE} LR, batch {INFER_BATCH}, "
                 f"channels_last, {args.threads} thread(s), torch {torch.__version__}")  # fmt: skip
        console = Console(width=180)
        console.print(paths_table(rows, title=title))
        console.print("See the module docstring for what each column means.")
        for r in rows:
            if "failed" in r:
                console.print(f"failed: {r['model']}: {r['failed']}", style="red")
        return
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
