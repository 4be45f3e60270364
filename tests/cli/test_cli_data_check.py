"""``probcast data check`` and ``probcast data split`` on one's own station tables."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from probcast.cli import main
from probcast.ingest.tables import read_table
from probcast.testing.stations import station_table

SPLIT = "2021-01-08"


@pytest.fixture
def table_csv(tmp_path: Path) -> Path:
    df = station_table(n_stations=3, n_inits=10, leads=(6.0, 24.0, 48.0))
    path = tmp_path / "mine.csv"
    df.to_csv(path, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    return path


def test_check_prints_the_summary(table_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "check", str(table_csv)]) == 0
    out = capsys.readouterr().out
    assert "valid station table, targets: t2m, tp" in out
    for line in ("rows", "90", "stations", "init period", "2021-01-01 00:00 .. 2021-01-10 00:00"):
        assert line in out
    assert "6..48 h (3 values)" in out
    assert "MAE fc_t2m vs obs_t2m" in out and "MAE fc_tp vs obs_tp" in out


def test_check_reports_findings_and_parquet(
    table_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    df = read_table(table_csv)
    df.loc[df.index[:9], "obs_tp"] = float("nan")
    df["comment"] = "x"
    path = tmp_path / "mine.parquet"
    df.to_parquet(path)
    assert main(["data", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"missing obs_tp +10.00%", out)
    assert "findings:" in out and "obs_tp: 10.00% missing (9 rows)" in out
    assert "outside the canonical model" in out and "comment" in out


def test_check_invalid_table_is_one_line(
    table_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    df = pd.read_csv(table_csv)
    bad = tmp_path / "dup.csv"
    pd.concat([df, df.iloc[:1]]).to_csv(bad, index=False)
    assert main(["data", "check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("probcast data check: error: ") and str(bad) in err
    assert "duplicate" in err.lower() and err.count("\n") == 1


def test_split_is_leakage_safe(
    table_csv: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "split"
    assert main(["data", "split", str(table_csv), "--test-from", SPLIT, "--out", str(out_dir)]) == 0
    printed = capsys.readouterr().out
    train = read_table(out_dir / "train.parquet")
    test = read_table(out_dir / "test.parquet")
    start = pd.Timestamp(SPLIT, tz="UTC")
    assert (test["init_time"] >= start).all() and len(test) == 3 * 3 * 3
    assert (train["init_time"] < start).all() and (train["valid_time"] < start).all()
    # runs of 01-06 (48 h) and 01-07 (24 h, 48 h) reach the test period: 3 stations each
    assert len(train) == 3 * (7 * 3 - 3) and "dropped 9 training rows" in printed
    assert sorted(p.name for p in out_dir.iterdir()) == ["test.parquet", "train.parquet"]


@pytest.mark.parametrize(
    ("date", "message", "code"),
    [("2020-01-01", "leaves no train rows", 1), ("2030-01-01", "leaves no test rows", 1),
     ("not-a-date", "not an ISO date", 2)],
)  # fmt: skip
def test_split_errors(
    table_csv: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    date: str,
    message: str,
    code: int,
) -> None:
    out_dir = tmp_path / "split"
    argv = ["data", "split", str(table_csv), "--test-from", date, "--out", str(out_dir)]
    assert main(argv) == code
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not out_dir.exists()


def test_split_needs_its_options(table_csv: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "split", str(table_csv)]) == 2
    assert "--test-from" in capsys.readouterr().err
