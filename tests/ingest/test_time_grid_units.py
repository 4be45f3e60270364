"""Grid time axes of numbers: converted by a duration unit, else refused (never ns/1970)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from probcast.align.points import open_grid
from probcast.ingest.grid_values import check_grid, duration_ns
from probcast.ingest.gridded import GriddedReadError, open_gridded
from probcast.testing.grids import forecast_grid

FRT, FP = "forecast_reference_time", "forecast_period"
EPOCH = np.array([1616630400, 1616716800])  # 2021-03-25, 2021-03-26 in unix seconds


def _grid(named: bool = True) -> xr.Dataset:
    ds = forecast_grid((4, 5), 2, layout="regular", variables=("t2m",), lead_hours=(6.0, 12.0))
    if named:  # NWP-style names: the file goes through open_gridded's normalisation
        ds = ds.drop_vars("obs_t2m").rename(fc_t2m="t2m")
        ds["t2m"].attrs["units"] = "K"
    return ds.drop_vars("valid_time", errors="ignore")


def _write(tmp_path: Path, ds: xr.Dataset, name: str = "g.nc") -> Path:
    path = tmp_path / name
    ds.to_netcdf(path)
    return path


def _with(ds: xr.Dataset, coord: str, values: np.ndarray, attrs: dict) -> xr.Dataset:
    return ds.assign_coords({coord: (coord, values, attrs)})


def _hours(ds: xr.Dataset) -> list[float]:
    return (ds[FP].values / np.timedelta64(1, "h")).tolist()


@pytest.mark.parametrize(
    ("values", "units"),
    [
        ([6.0, 12.0], "h"),
        ([6.0, 12.0], "hour"),
        ([6, 12], "hr"),
        ([6.0, 12.0], "Hours"),
        ([360, 720], "min"),
        ([21600, 43200], "s"),
        ([21600, 43200], "sec"),
        ([0.25, 0.5], "d"),
        ([21600 * 10**9, 43200 * 10**9], "ns"),
    ],
)
def test_period_numbers_converted_by_their_unit(tmp_path, values, units):
    ds = _with(_grid(), FP, np.asarray(values), {"units": units})
    out = open_gridded(_write(tmp_path, ds))
    assert _hours(out) == [6.0, 12.0]
    valid = (out["valid_time"] - out[FRT]).values / np.timedelta64(1, "h")
    assert np.allclose(valid, [6.0, 12.0])


@pytest.mark.parametrize(
    ("values", "attrs", "said"),
    [
        (np.array([6, 12]), {}, "int64 values without a units attribute"),
        (np.array([6.0, 12.0]), {"units": "furlongs"}, "float64 values with units 'furlongs'"),
        (np.array([6.0, 12.0]), {"units": ""}, "float64 values with units ''"),
    ],
)
def test_period_without_a_duration_unit_refused(tmp_path, values, attrs, said):
    path = _write(tmp_path, _with(_grid(), FP, values, attrs))
    with pytest.raises(GriddedReadError) as err:
        open_gridded(path)
    msg = str(err.value)
    assert str(path) in msg and f"forecast_period holds {said}" in msg
    assert "expected a duration unit such as 'hours'" in msg


def test_period_named_lead_time_refused_by_its_name(tmp_path):
    ds = _with(_grid(), FP, np.array([6.0, 12.0]), {}).rename({FP: "lead_time"})
    with pytest.raises(GriddedReadError, match=r"g\.nc: lead_time holds float64 values without"):
        open_gridded(_write(tmp_path, ds))


@pytest.mark.parametrize("named", [True, False])
def test_epoch_reference_time_without_units_refused(tmp_path, named):
    path = _write(tmp_path, _with(_grid(named), FRT, EPOCH, {}))
    with pytest.raises(GriddedReadError) as err:
        open_grid(path)  # named: open_gridded; canonical names: the lazy path, check_grid
    msg = str(err.value)
    assert str(path) in msg and "forecast_reference_time holds int64 values without" in msg
    assert "expected CF time units such as 'hours since 1970-01-01'" in msg


def test_epoch_reference_time_with_cf_units_read(tmp_path):
    ds = _with(_grid(), FRT, EPOCH, {"units": "seconds since 1970-01-01T00:00:00Z"})
    out = open_gridded(_write(tmp_path, ds))
    assert [str(t)[:10] for t in out[FRT].values] == ["2021-03-25", "2021-03-26"]


def test_canonical_file_period_in_h_converted(tmp_path):
    ds = _with(_grid(named=False), FP, np.array([6.0, 12.0]), {"units": "h"})
    out = open_grid(_write(tmp_path, ds))  # the lazy path: ingest.grid_values.check_grid
    assert _hours(out) == [6.0, 12.0]


def test_check_grid_in_memory_period_numbers():
    ds = _grid(named=False)
    hours = _with(ds, FP, np.array([6.0, 12.0]), {"units": "hours"})
    hours = hours.assign_coords(valid_time=hours[FRT] + np.timedelta64(0, "h"))
    out = check_grid(hours, "mem")
    assert _hours(out) == [6.0, 12.0]
    assert ((out["valid_time"] - out[FRT]) == out[FP]).all()
    with pytest.raises(GriddedReadError, match="mem: forecast_period holds float64 values with"):
        check_grid(_with(ds, FP, np.array([6.0, 12.0]), {"units": "hours since 2021-01-01"}), "mem")


def test_duration_units():
    assert duration_ns("hours") == duration_ns(" H ") == 3600 * 10**9
    assert duration_ns("minutes") == 60 * 10**9 and duration_ns("days") == 86400 * 10**9
    assert duration_ns("hours since 2000-01-01") is None and duration_ns(None) is None
