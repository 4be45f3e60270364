"""``probcast data`` end to end, and the summary of station and gridded datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from probcast.cli import main
from probcast.data.prepare import Prepared
from probcast.data.summary import summarize


def test_data_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    header, *rows = out.splitlines()
    for word in ("id", "kind", "licence", "files", "prepare", "description"):
        assert word in header
    verif = next(r for r in rows if r.startswith("verif-norway-precip "))
    assert "BSD-3-Clause" in verif and " yes " in verif and "2 / 2.5 MB" in verif
    grib = next(r for r in rows if r.startswith("grib-samples "))
    assert "format-sample" in grib and " no " in grib


def test_unknown_dataset_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "prepare", "no-such-set"]) == 1
    err = capsys.readouterr().err
    assert "unknown dataset 'no-such-set'" in err
    assert "Traceback" not in err


def test_format_sample_cannot_be_prepared(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "prepare", "grib-samples"]) == 1
    assert "format sample" in capsys.readouterr().err


def test_fetch_needs_a_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "fetch"]) == 2
    assert "--all" in capsys.readouterr().err


def test_usage_error_returns_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "bogus"]) == 2
    assert main(["data", "--help"]) == 0


def test_bad_mirror_file_is_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pnw-t2m").mkdir()
    (tmp_path / "pnw-t2m" / "srft.rda").write_bytes(b"tampered")
    monkeypatch.setenv("PROBCAST_DATA_MIRROR", str(tmp_path))
    assert main(["data", "fetch", "pnw-t2m"]) == 1
    err = capsys.readouterr().err
    assert "srft.rda: sha256 mismatch" in err and "Traceback" not in err


def _grid(n_time: int, offset: float) -> xr.Dataset:
    shape = (n_time, 2, 3, 4)
    fc = np.full(shape, 1.0 + offset)
    fc[0, 0, 0, 0] = np.nan
    dims = ("forecast_reference_time", "forecast_period", "y", "x")
    return xr.Dataset(
        {"fc_tp": (dims, fc), "obs_tp": (dims, np.full(shape, 1.5 + offset))},
        coords={
            "forecast_reference_time": pd.date_range("2020-01-01", periods=n_time, freq="D")
            + pd.Timedelta(days=10 * offset),
            "forecast_period": pd.to_timedelta([6, 12], unit="h"),
        },
    )


def test_summary_of_a_gridded_dataset() -> None:
    prepared = Prepared("grid", "grid", _grid(3, 0.0), _grid(2, 1.0), ["tp"], ["a finding"])
    text = summarize(prepared)
    assert "grid points" in text and " 12 " in text  # 3 x 4 points
    assert "2020-01-01 00:00 .. 2020-01-03 00:00" in text
    assert "6..12 h (2 values)" in text
    assert f"{1 / 72:.2%}" in text  # one NaN among 3*2*12 forecasts
    assert "0.5 (n=71)" in text and "0.5 (n=47)" in text
    assert "  - a finding" in text


def test_summary_of_a_station_table() -> None:
    table = pd.DataFrame(
        {
            "station": ["a", "b"],
            "init_time": pd.to_datetime(["2020-01-01", "2020-01-02"], utc=True),
            "lead_time": [6.0, 6.0],
            "valid_time": pd.to_datetime(["2020-01-01 06:00", "2020-01-02 06:00"], utc=True),
            "fc_t2m": [280.0, 281.0],
            "obs_t2m": [281.0, np.nan],
        }
    )
    text = summarize(Prepared("s", "station", table, table.iloc[:1], ["t2m"], []))
    assert "MAE fc_t2m vs obs_t2m" in text and "1 (n=1)" in text
    assert "missing obs_t2m" in text and "50.00%" in text
    assert "6 h (1 value)" in text


@pytest.mark.realdata
def test_prepare_verif_norway(
    mirror: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["data", "prepare", "verif-norway-precip", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "dataset verif-norway-precip (station), targets: tp" in out
    assert "47,132" in out and "23,348" in out  # train / test rows
    assert "2016-12-01 00:00 .. 2016-12-31 00:00" in out
    assert "6..36 h (6 values)" in out
    assert "MAE fc_tp vs obs_tp" in out
    assert "9.96921e36" in out
    train = pd.read_parquet(tmp_path / "train.parquet")
    test = pd.read_parquet(tmp_path / "test.parquet")
    assert train["valid_time"].max() < test["init_time"].min()
    assert (tmp_path / "meta.json").exists()
