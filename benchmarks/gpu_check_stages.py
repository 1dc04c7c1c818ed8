"""The stages of benchmarks/gpu_check.py and what they share (the context, timing and
memory helpers). Each stage takes the :class:`Context` and returns the numbers of its row,
raises :class:`SkipStage` when it does not apply here, or raises anything else to become a
"failed" row."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from lightning.pytorch.callbacks import Callback


class Context:
    """What the stages share: the plan, the work folder, the deadline, their results."""

    def __init__(self, plan, work: Path):
        self.plan, self.work = plan, work
        self.start = time.perf_counter()
        self.done: dict[str, dict] = {}
        self.device = torch.device("cuda" if plan.accelerator == "gpu" else "cpu")

    def left(self) -> float:
        return self.plan.deadline_s - (time.perf_counter() - self.start)

    def need(self, stage: str) -> dict:
        row = self.done.get(stage)
        if not row or row["status"] != "ok":
            raise RuntimeError(f"needs the {stage} stage, which did not succeed")
        return row

    def device_name(self) -> str:
        if self.device.type == "cuda":
            return torch.cuda.get_device_name(self.device)
        return f"cpu ({torch.get_num_threads()} threads)"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def _peak_mib(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


class StepTimer(Callback):
    """Samples/s between the end of step ``warmup`` and the end of step ``last``."""

    def __init__(self, *, batch: int, warmup: int, last: int, device: torch.device):
        self.batch, self.warmup, self.last, self.device = batch, warmup, last, device
        self.t0 = self.t1 = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step in (self.warmup, self.last):
            _sync(self.device)
            if trainer.global_step == self.warmup:
                self.t0 = time.perf_counter()
            else:
                self.t1 = time.perf_counter()

    def rate(self) -> float | None:
        if self.t0 is None or self.t1 is None or self.t1 <= self.t0:
            return None
        return (self.last - self.warmup) * self.batch / (self.t1 - self.t0)


def bf16_supported(device: torch.device) -> bool:
    """bf16-mixed runs on this device (CUDA with bf16, or a CPU with native bf16)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


class SkipStage(Exception):
    """A stage that does not apply here (no second GPU, no bf16, no GPU simulation path)."""


def _run(cmd: list[str], *, timeout: float, cwd: Path) -> subprocess.CompletedProcess:
    """``cmd`` in its own process group, killed as a group (DDP ranks too) on timeout."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise RuntimeError(f"timed out after {timeout:.0f} s (deadline)") from None
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


# Stages ----------------------------------------------------------------------------------


def stage_data(ctx: Context) -> dict:
    import lensr

    workers = 1 if ctx.plan.accelerator == "cpu" else min(16, os.cpu_count() or 1)
    t0 = time.perf_counter()
    sim = lensr.simulate("sim", n=ctx.plan.sim_pairs, out=ctx.work / "sim.h5", workers=workers,
                         progress=False)  # fmt: skip
    cls = lensr.simulate("classify", n=ctx.plan.cls_images, out=ctx.work / "classify.h5",
                         workers=workers, progress=False)  # fmt: skip
    n = ctx.plan.sim_pairs + ctx.plan.cls_images
    return {
        "device": f"cpu, lenstronomy, {workers} worker(s)",
        "throughput": n / (time.perf_counter() - t0),
        "unit": "pairs/s",
        "note": f"{ctx.plan.sim_pairs} sim + {ctx.plan.cls_images} classify pairs",
        "sim": str(sim),
        "classify": str(cls),
    }


def stage_train(ctx: Context, precision: str) -> dict:
    from lensr.train.config import TrainConfig
    from lensr.train.fit import train

    if precision.startswith("bf16") and not bf16_supported(ctx.device):
        raise SkipStage(f"{ctx.device.type} has no native bf16 here")
    p, data = ctx.plan, ctx.need("data")["sim"]
    # A guard against a hung or very slow run, not a budget: ending before the validation
    # at the last step is a failure ("training ended before the first validation").
    budget = max(30.0, min(3 * p.budget["train-fp32"], ctx.left() - 5))
    cfg = TrainConfig(
        model=p.sr_model, max_steps=p.sr_steps, max_epochs=100_000, batch_size=p.sr_batch,
        patch=p.patch, val_check_interval=p.sr_steps, max_val_images=p.val_images,
        accelerator=p.accelerator, devices=1, precision=precision,
        num_workers=p.loader_workers, max_time_minutes=budget / 60,
    )  # fmt: skip
    timer = StepTimer(batch=p.sr_batch, warmup=min(10, p.sr_steps // 2), last=p.sr_steps,
                      device=ctx.device)  # fmt: skip
    _reset_memory(ctx.device)
    out = ctx.work / f"train-{precision}"
    result = train(cfg, data=data, out_dir=out, progress=False, callbacks=[timer])
    metrics = result.best_metrics["metrics"]
    psnr = metrics.get("val_psnr_clean", metrics["val_psnr"])
    row = {
        "throughput": timer.rate(),
        "unit": "samples/s",
        "peak_mib": _peak_mib(ctx.device),
        "quality": f"PSNR {psnr:.2f} dB",
        "psnr": psnr,
        "checkpoint": str(result.last),
        "note": f"{p.sr_model}, {p.sr_steps} steps, batch {p.sr_batch}, {p.patch} px patches",
    }
    if precision.startswith("bf16") and "psnr" in ctx.done.get("train-fp32", {}):
        row["agreement"] = f"{psnr - ctx.done['train-fp32']['psnr']:+.3f} dB"
    return row


def stage_upscale(ctx: Context) -> dict:
    from lensr.data.store import open_dataset
    from lensr.eval.metrics import score_images
    from lensr.infer.arrays import upscale_array
    from lensr.models import create_model
    from lensr.models.checkpoint import resolve_model

    p, data = ctx.plan, ctx.need("data")["sim"]
    trained = ctx.done.get("train-fp32", {}).get("checkpoint")
    model = resolve_model(trained) if trained else create_model(p.sr_model)
    with open_dataset(data) as ds:
        take = np.arange(p.upscale_images) % len(ds)
        lr, clean = ds.lr[:][take], ds.hr_clean[:][take]
    upscale_array(lr[: p.upscale_batch], model, batch_size=p.upscale_batch, device=str(ctx.device))
    _reset_memory(ctx.device)
    t0 = time.perf_counter()
    sr = upscale_array(lr, model, batch_size=p.upscale_batch, device=str(ctx.device))
    seconds = time.perf_counter() - t0
    psnr = float(score_images(sr, clean)["psnr"].mean())
    return {
        "throughput": len(lr) / seconds,
        "unit": "img/s",
        "peak_mib": _peak_mib(ctx.device),
        "quality": f"PSNR {psnr:.2f} dB",
        "note": f"{len(lr)} LR {lr.shape[1]} px, batch {p.upscale_batch}"
        + ("" if trained else ", untrained weights"),
    }


def stage_classifier(ctx: Context) -> dict:
    from lensr.train.classifier import train_classifier
    from lensr.train.config import ClassifierConfig

    p, data = ctx.plan, ctx.need("data")["classify"]
    cfg = ClassifierConfig(
        max_steps=p.cls_steps, max_epochs=100_000, batch_size=p.cls_batch, val_fraction=0.25,
        accelerator=p.accelerator, devices=1, num_workers=p.loader_workers,
        precision="bf16-mixed" if bf16_supported(ctx.device) else "32-true",
        bn_recalibration_images=min(256, p.cls_images // 2),
    )  # fmt: skip
    timer = StepTimer(batch=p.cls_batch, warmup=min(10, p.cls_steps // 2), last=p.cls_steps,
                      device=ctx.device)  # fmt: skip
    _reset_memory(ctx.device)
    result = train_classifier(cfg, data=data, out_dir=ctx.work / "classifier", progress=False,
                              callbacks=[timer])  # fmt: skip
    m = result.metrics
    return {
        "throughput": timer.rate(),
        "unit": "samples/s",
        "peak_mib": _peak_mib(ctx.device),
        "quality": f"acc {m['val_acc']:.2f}, AUC {m['val_auc']:.2f}",
        "note": f"{cfg.model}, {p.cls_steps} steps, batch {p.cls_batch}, {cfg.precision}",
    }


def stage_ddp(ctx: Context) -> dict:
    p, data = ctx.plan, ctx.need("data")["sim"]
    if p.accelerator == "gpu":
        n = torch.cuda.device_count()
        if n < 2:
            raise SkipStage(f"{n} GPU visible; DDP needs 2 or more")
        extra = ["--precision", "bf16-mixed"]
    else:
        n, extra = 2, ["--threads", "1"]
    out = ctx.work / "ddp"
    out.mkdir()
    config = out / "train.yaml"
    config.write_text(json.dumps({
        "model": p.sr_model, "max_steps": p.ddp_steps, "max_epochs": 100_000,
        "batch_size": p.sr_batch, "patch": p.patch, "val_check_interval": p.ddp_steps,
        "max_val_images": p.val_images, "num_workers": p.loader_workers,
    }))  # fmt: skip
    script = Path(sys.executable).parent / "lensr"
    exe = str(script) if script.exists() else shutil.which("lensr") or "lensr"
    cmd = [exe, "train", "--data", data, "--out", str(out / "run"), "--config", str(config)]
    cmd += ["--accelerator", p.accelerator, "--devices", str(n), "--strategy", "ddp", *extra]
    t0 = time.perf_counter()
    done = _run(cmd, timeout=max(5.0, ctx.left() - 5), cwd=out)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        lines = (done.stderr + done.stdout).strip().splitlines() or [""]
        why = next((x for x in lines if x.startswith("error:")), lines[-1])
        raise RuntimeError(f"lensr train exited {done.returncode}: {why[:300]}")
    found = re.search(r"val PSNR ([-\d.]+) dB", done.stdout)
    return {
        "device": f"{n} x {ctx.device_name()}",
        "throughput": p.ddp_steps * p.sr_batch * n / seconds,
        "unit": "samples/s",
        "quality": f"PSNR {float(found.group(1)):.2f} dB" if found else None,
        "note": f"{p.ddp_steps} steps x {n} ranks; wall includes start-up; peak memory "
        "not read across processes",
    }


def stage_caustics(ctx: Context) -> dict:
    try:
        from lensr.sim import caustics_render
    except ImportError as exc:
        raise SkipStage(f"lensr.sim.caustics_render not importable ({exc})") from None
    from lensr.data.store import open_dataset
    from lensr.sim.config import load_sim_config

    p, data = ctx.plan, ctx.need("data")["sim"]
    cfg, n, b = load_sim_config("sim"), p.caustics_images, p.caustics_batch
    caustics_render.render_batch(cfg, 0, range(b), str(ctx.device))  # warm-up
    _reset_memory(ctx.device)
    t0 = time.perf_counter()
    clean = [caustics_render.render_batch(cfg, 0, range(i, min(i + b, n)), str(ctx.device))[2]
             for i in range(0, n, b)]  # fmt: skip
    _sync(ctx.device)
    seconds = time.perf_counter() - t0
    got = torch.cat(clean)[:, 0].double().cpu().numpy()
    with open_dataset(data) as ds:
        m = min(n, len(ds))
        ref = ds.hr_clean[:m].astype(np.float64)
    rel = np.linalg.norm(got[:m] - ref, axis=(1, 2)) / np.linalg.norm(ref, axis=(1, 2))
    return {
        "throughput": n / seconds,
        "unit": "pairs/s",
        "peak_mib": _peak_mib(ctx.device),
        "quality": f"noise-free rel. L2 vs lenstronomy <= {rel.max():.1e}",
        "note": f"{n} sim pairs in batches of {b} (noise on the CPU)",
    }
