"""A cycle's input must hold that cycle's run: a stale or misnamed file is never published."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from probcast.ops.input_runs import InputRunsError, check_runs, input_runs
from probcast.testing.archives import write_archive
from probcast.testing.grids import forecast_grid
from probcast.testing.stations import station_table

CYCLE = datetime(2021, 3, 1, 0)


def test_grid_table_and_grib_runs_are_read(tmp_path):
    grid = forecast_grid((3, 4), 1, start="2021-03-01")
    grid.to_netcdf(tmp_path / "g.nc")
    assert input_runs(tmp_path / "g.nc") == [pd.Timestamp("2021-03-01", tz="UTC")]
    check_runs(tmp_path / "g.nc", CYCLE)
    table = station_table(n_stations=2, n_inits=1)
    table.to_parquet(tmp_path / "t.parquet")
    first = pd.Timestamp(table["init_time"].iloc[0])
    check_runs(tmp_path / "t.parquet", first.tz_convert(None).to_pydatetime())
    (grib,) = write_archive(tmp_path / "nwp", [pd.Timestamp("2021-03-01T12", tz="UTC")], [0, 6])
    assert input_runs(grib) == [pd.Timestamp("2021-03-01T12", tz="UTC")]
    pd.DataFrame({"station": ["a"]}).to_csv(tmp_path / "no_runs.csv", index=False)
    assert input_runs(tmp_path / "no_runs.csv") is None  # nothing named: not refused


def test_a_stale_or_partial_input_is_refused(tmp_path):
    forecast_grid((3, 4), 1, start="2021-02-27").to_netcdf(tmp_path / "old.nc")
    with pytest.raises(InputRunsError, match=r"old.nc holds the run\(s\) 2021-02-27T00Z, not"):
        check_runs(tmp_path / "old.nc", CYCLE)
    forecast_grid((3, 4), 2, start="2021-03-01").to_netcdf(tmp_path / "two.nc")
    with pytest.raises(InputRunsError, match="2021-03-01T00Z, 2021-03-02T00Z, not the cycle"):
        check_runs(tmp_path / "two.nc", CYCLE)
    whole = (tmp_path / "old.nc").read_bytes()
    (tmp_path / "half.nc").write_bytes(whole[: len(whole) // 2])  # still being written
    with pytest.raises(InputRunsError, match=r"half\.nc cannot be read yet"):
        check_runs(tmp_path / "half.nc", CYCLE)


def test_mixed_iso_times_a_partial_grib_and_numbers(tmp_path):
    mixed = "station,init_time\na,2021-03-01T00:00Z\nb,2021-03-01T01:00+01:00\n"
    (tmp_path / "mixed.csv").write_text(mixed)  # the same run in two ISO spellings
    check_runs(tmp_path / "mixed.csv", CYCLE)
    (grib,) = write_archive(tmp_path / "nwp", [pd.Timestamp("2021-03-01", tz="UTC")], [0, 6])
    (tmp_path / "half.grib").write_bytes(grib.read_bytes()[: grib.stat().st_size // 2 + 7])
    with pytest.raises(InputRunsError, match=r"half\.grib cannot be read yet"):
        check_runs(tmp_path / "half.grib", CYCLE)
    pd.DataFrame({"station": ["a"], "init_time": [1614556800]}).to_parquet(tmp_path / "n.parquet")
    with pytest.raises(InputRunsError, match="init_time holds numbers"):
        check_runs(tmp_path / "n.parquet", CYCLE)
