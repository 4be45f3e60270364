"""``probcast predict``: bad option values, stray arguments and options that do not apply to
the input are refused with exit 2 before any model is loaded (one line naming the option)."""

from __future__ import annotations

from pathlib import Path

import pytest

from probcast.cli import main
from probcast.testing.stations import station_table


@pytest.fixture
def args(tmp_path: Path) -> list[str]:
    table = tmp_path / "test.parquet"
    station_table(n_stations=2, n_inits=3).to_parquet(table)
    # no model at all: every check below must come before it is loaded
    return [f"--model={tmp_path / 'nomodel'}", f"--input={table}", f"--output={tmp_path / 'p.csv'}"]


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str], *words: str) -> None:
    assert main(["predict", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("probcast predict: error: ") and "Traceback" not in err
    assert all(w in err for w in words), err


def test_stray_positional_is_refused(args, capsys):
    _refused(capsys, [*args, "stray_positional"], "stray_positional")


@pytest.mark.parametrize(
    ("option", "words"),
    [("--members=-5", ["--members=-5", ">= 0"]),
     ("--batch_size=0", ["--batch_size=0", ">= 1"]),
     ("--quantiles=abc", ["--quantiles=abc", "0.05,0.5,0.95"]),
     ("--quantiles=1.5", ["--quantiles=1.5", "(0, 1)"]),
     ("--tile=0", ["--tile=0"]),
     ("--percentiles=50,5", ["--percentiles=50,5"]),
     ("--thresholds=tp:x", ["--thresholds=tp:x"]),
     ("--units=t2m=furlong", ["--units=t2m=furlong", "degC"]),
     ("--members=abc", ["--members=abc"])],
)  # fmt: skip
def test_bad_values_are_usage_errors(args, capsys, option, words):
    _refused(capsys, [*args, option], *words)


@pytest.mark.parametrize("option", ["--scheduler=tcp://1.2.3.4:1", "--tile=64", "--inflevel=1"])
def test_grid_options_with_a_station_table_are_refused(args, capsys, option):
    name = option.split("=")[0]
    _refused(capsys, [*args, option], name, "gridded input", "station table")


def test_template_with_a_grid_is_refused(tmp_path, capsys):
    argv = [f"--model={tmp_path}", f"--input={tmp_path / 'run.nc'}", f"--output={tmp_path / 'o'}"]
    _refused(capsys, [*argv, f"--template={tmp_path / 't.csv'}"], "--template", "station tables")


def test_runtime_failures_stay_1(args, capsys):
    assert main(["predict", *args]) == 1  # the model folder does not exist
    assert "nomodel" in capsys.readouterr().err
