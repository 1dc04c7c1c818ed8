"""`lensr report`, `lensr run` and `lensr demo` as a user runs them (the study itself is
tested in tests/study)."""

import json

import pytest

from lensr.cli import app, main


def test_report_prints_the_path(tmp_path, runner):
    run = tmp_path / "partial"
    run.mkdir()
    (run / "environment.json").write_text(json.dumps({"python": "3.11"}))
    result = runner.invoke(app, ["report", str(run)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(run / "report.html")
    assert (run / "report.html").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "nope"], "unknown study 'nope'"),
        (["run", "s.yaml", "--force", "train:x"], "--force train:x: no such stage"),
        (["report", "missing"], "does not exist"),
    ],
)
def test_user_errors_are_one_line(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.yaml").write_text("name: s\ndatasets: {d: {preset: classify, n: 2}}\n")
    monkeypatch.setattr("sys.argv", ["lensr", *args])
    with pytest.raises(SystemExit) as info:
        main()
    err = capsys.readouterr().err
    assert info.value.code == 2 and message in err and err.count("\n") == 1
    assert not (tmp_path / "runs" / "s" / "data").exists()


def test_demo_help_names_its_run_folder(runner):
    result = runner.invoke(app, ["demo", "--help"])
    assert result.exit_code == 0 and "runs/demo" in result.output
