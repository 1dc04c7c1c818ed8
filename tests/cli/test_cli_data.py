"""The data commands as a user runs them: output, files, and one-line errors."""

import json

import pytest
from typer.testing import CliRunner

from lensr import __version__
from lensr.cli import app, main

runner = CliRunner()


def run_main(args, monkeypatch, capsys):
    """Run the console entry point (which turns LensrError into one line + exit 2)."""
    monkeypatch.setattr("sys.argv", ["lensr", *args])
    with pytest.raises(SystemExit) as info:
        main()
    return info.value.code, capsys.readouterr()


def test_version_and_help_list_every_command():
    assert __version__ in runner.invoke(app, ["--version"]).output
    out = runner.invoke(app, ["--help"]).output
    for command in ("simulate", "merge", "inspect", "import", "presets", "models"):
        assert command in out


def test_simulate_then_inspect(tmp_path):
    out = tmp_path / "d.h5"
    result = runner.invoke(app, ["simulate", "--preset", "classify", "--n", "6", "--out", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["inspect", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["n"] == 6 and summary["classes"] == {"none": 2, "cdm": 2, "axion": 2}
    assert summary["snr"]["how"] == "simulated" and summary["snr"]["hr"]["p50"] > 10
    assert (tmp_path / "d.png").stat().st_size > 1000


def test_presets_prints_a_yaml_to_copy():
    result = runner.invoke(app, ["presets", "observed"])
    assert result.exit_code == 0 and "name: observed" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["simulate", "--preset", "nope", "--n", "2", "--out", "x.h5"], "unknown preset 'nope'"),
        (["simulate", "--n", "2", "--out", "x.csv"], "should end in .h5"),
        (["inspect", "missing.h5"], "does not exist"),
    ],
)
def test_user_errors_are_one_line(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.chdir(tmp_path)
    code, captured = run_main(args, monkeypatch, capsys)
    assert code == 2
    assert message in captured.err and captured.err.count("\n") == 1


def test_corrupt_dataset_is_reported(tmp_path, monkeypatch, capsys):
    bad = tmp_path / "bad.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 50)
    code, captured = run_main(["inspect", str(bad)], monkeypatch, capsys)
    assert code == 2 and "not a readable HDF5 file" in captured.err


def test_models_lists_every_registered_model_with_its_size():
    from lensr.models import list_models

    result = runner.invoke(app, ["models"])
    assert result.exit_code == 0, result.output
    for info in list_models():
        assert info.name in result.output
    assert "15,442,337" in result.output  # RCAN at its published size
