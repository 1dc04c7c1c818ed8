"""benchmarks/gpu_check.py without a GPU: its --cpu-smoke mode runs every stage on the CPU
and reports one row per stage; a failing stage is a row, not the end of the run."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check(benchmark_script):
    with benchmark_script("gpu_check") as module:
        yield module


def test_one_stage_runs_and_the_others_are_rows_too(gpu_check, tmp_path):
    torch.set_num_threads(1)
    rows = gpu_check.run_check(gpu_check.SMOKE, stages=("data", "upscale"), work=tmp_path)
    by_stage = {r["stage"]: r for r in rows}
    assert [r["stage"] for r in rows] == list(gpu_check.STAGES)
    assert by_stage["data"]["status"] == "ok" and (tmp_path / "sim.h5").is_file()
    up = by_stage["upscale"]
    assert up["status"] == "ok", up.get("traceback")
    assert up["throughput"] > 0 and up["unit"] == "img/s" and "PSNR" in up["quality"]
    assert "untrained" in up["note"]  # no training stage ran before it
    others = [r for s, r in by_stage.items() if s not in ("data", "upscale")]
    assert all(r["status"] == "skipped" and "not selected" in r["note"] for r in others)


def test_a_failing_stage_is_a_row_with_its_error(gpu_check, tmp_path):
    rows = gpu_check.run_check(gpu_check.SMOKE, stages=("upscale", "classifier"), work=tmp_path)
    failed = {r["stage"]: r for r in rows if r["status"] == "failed"}
    assert set(failed) == {"upscale", "classifier"}
    assert all("needs the data stage" in r["note"] for r in failed.values())


def test_deadline_skips_the_stages_that_no_longer_fit(gpu_check, tmp_path):
    plan = gpu_check.replace(gpu_check.SMOKE, deadline_s=0)
    rows = gpu_check.run_check(plan, work=tmp_path)
    assert all(r["status"] == "skipped" and "deadline" in r["note"] for r in rows)


def test_cpu_smoke_runs_every_stage(tmp_path):
    # ~35-50 s on the 2-core machine (under the 60 s that would make it a slow test).
    out = tmp_path / "smoke.json"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--cpu-smoke", "--out", str(out)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(out.read_text())
    rows = {r["stage"]: r for r in report["rows"]}
    assert list(rows) == ["data", "train-fp32", "train-bf16", "upscale", "classifier", "ddp",
                          "caustics"]  # fmt: skip
    for stage in rows:
        assert stage in done.stdout  # the printed table has every stage too
    expected_ok = ["data", "train-fp32", "upscale", "classifier", "ddp"]
    if importlib.util.find_spec("caustics") is not None:  # the optional GPU simulation path
        expected_ok.append("caustics")
    if torch.ops.mkldnn._is_mkldnn_bf16_supported():
        expected_ok.append("train-bf16")
        assert rows["train-bf16"]["agreement"].endswith("dB")
    for stage in expected_ok:
        assert rows[stage]["status"] == "ok", (stage, rows[stage].get("note"))
    assert "PSNR" in rows["train-fp32"]["quality"] and "acc" in rows["classifier"]["quality"]
    assert report["total_s"] < 120
