"""Observation times that are numbers (epoch seconds/ms) are refused, never read as 1970."""

from __future__ import annotations

import pandas as pd
import pytest

from probcast.sources import ghcnh, isd
from probcast.sources.errors import SourceError

ROWS = {"station": ["S01", "S01"], "latitude": [50.0, 50.0], "longitude": [5.0, 5.0]}


def _csv(tmp_path, times: list, name: str = "obs.csv") -> str:
    path = tmp_path / name
    pd.DataFrame({**ROWS, "time": times, "t2m": [250.0, 250.1]}).to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize("times", [[1708992000, 1708995600], [1708992000000, 1708995600000]])
def test_epoch_numbers_in_a_csv_refused(tmp_path, times):
    path = _csv(tmp_path, times)
    with pytest.raises(SourceError) as err:
        ghcnh.read_table(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: column 'time' is numeric (int64)") and "\n" not in msg
    assert "convert epoch numbers first" in msg


def test_epoch_numbers_in_parquet_refused(tmp_path):
    path = tmp_path / "obs.parquet"
    pd.DataFrame({**ROWS, "time": [1708992000.0, 1708995600.0], "t2m": [250.0, 250.1]}).to_parquet(
        path
    )
    with pytest.raises(SourceError, match=r"obs\.parquet: column 'time' is numeric \(float64\)"):
        ghcnh.read_table(str(path))


def test_iso_times_read_in_utc(tmp_path):
    path = _csv(tmp_path, ["2024-02-27T09:00:00+09:00", "2024-02-27 01:00"])
    times = ghcnh.read_table(path).obs["time"]
    assert times.tolist() == [pd.Timestamp("2024-02-27T00:00Z"), pd.Timestamp("2024-02-27T01:00Z")]


@pytest.mark.parametrize(
    ("time", "said"), [("yesterday", r"value\(s\) are not parseable"), ("", "missing")]
)
def test_unparseable_or_missing_times_refused(tmp_path, time, said):
    path = _csv(tmp_path, ["2024-02-27T00:00Z", time])
    with pytest.raises(SourceError, match=rf"obs\.csv: column 'time': 1 {said}"):
        ghcnh.read_table(path)


def test_global_hourly_date_not_a_time_names_the_file(tmp_path):
    header = "STATION,DATE,LATITUDE,LONGITUDE,ELEVATION,NAME,REPORT_TYPE,WND,TMP"
    row = '"00702699999","{}","50.0","5.0","10.0","X","FM-15","999,9,C,0000,1","+0073,1"'
    path = tmp_path / "hourly.csv"
    path.write_text("\n".join([header, row.format("2024-01-01T00:00:00")]) + "\n")
    assert isd.read_global_hourly(str(path)).obs["time"].tolist() == [
        pd.Timestamp("2024-01-01T00:00Z")
    ]
    path.write_text("\n".join([header, row.format("1704067200")]) + "\n")
    with pytest.raises(SourceError, match=r"hourly\.csv: column 'DATE' \(time\): not times"):
        isd.read_global_hourly(str(path))
