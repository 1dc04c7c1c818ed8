"""benchmarks/classification.py end to end at a tiny size: the HR score with intervals, the
robustness rows (bicubic LR, 1 % noise, blur) and --eval-only rescoring the same classifier."""

import json

import pytest


@pytest.fixture(scope="module")
def bench(benchmark_script):
    with benchmark_script("classification") as module:
        yield module


@pytest.mark.usefixtures("one_thread")
def test_tiny_run_scores_hr_and_the_perturbed_inputs(bench, tmp_path, capsys):
    sizes = ["--n-train", "30", "--n-test", "12", "--epochs", "1", "--batch-size", "8"]
    argv = ["--preset", "classify", *sizes, "--workers", "1", "--threads", "1",
            "--out", str(tmp_path)]  # fmt: skip
    report = bench.main(argv)
    rows = report["robustness"]
    assert list(rows) == ["HR", "LR (bicubic)", "HR + 1 % noise", "HR blurred 0.7 px"]
    for row in rows.values():
        acc = row["accuracy"]
        assert 0 <= acc["ci_low"] <= acc["mean"] <= acc["ci_high"] <= 1
    assert report["accuracy"] == rows["HR"]["accuracy"]
    assert set(report["seconds"]) == {"simulate", "train", "evaluate"}
    assert "HR + 1 % noise" in capsys.readouterr().out
    again = bench.main([*argv, "--eval-only"])  # the same classifier and test set
    assert again["robustness"]["HR"] == rows["HR"] and set(again["seconds"]) == {"evaluate"}
    assert json.loads((tmp_path / "benchmark.json").read_text())["model"] == "resnet18"
