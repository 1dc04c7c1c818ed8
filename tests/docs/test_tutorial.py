"""docs/tutorial.md runs as written (with its QUICK sizes) and its results are real:
datasets, checkpoints, the evaluation files, the study's report."""

from __future__ import annotations

import json

from conftest import DOCS, python_cells


def test_the_tutorial_runs_and_makes_what_it_says(run_page, tmp_path):
    proc = run_page("tutorial.md")
    out = proc.stdout
    assert "runs/tutorial/fsrcnn/best.safetensors" in out
    assert "(4, 150, 150) (4, 150, 150)" in out
    # The evaluation the page prints is the one the CLI's files hold.
    metrics = json.loads((tmp_path / "runs/tutorial/eval/metrics.json").read_text())
    assert [m["name"] for m in metrics["models"]] == ["bilinear", "bicubic", "fsrcnn"]
    table = (tmp_path / "runs/tutorial/eval/table.md").read_text()
    assert table in out
    assert (tmp_path / "runs/tutorial-study/report.html").is_file()
    assert "(5, 3) ['none', 'cdm', 'axion']" in out


def test_the_cells_are_extracted_in_order_without_the_marked_one():
    cells = python_cells(DOCS / "tutorial.md")
    assert cells[0].startswith("import matplotlib")
    assert not any('run_study("demo"' in c for c in cells)
    assert any("run_study(" in c for c in cells)
