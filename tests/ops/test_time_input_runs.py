"""A grid input's run is read under every name the gridded reader takes for it.

Only a variable named ``forecast_reference_time`` was looked at: a stale file exported by
cfgrib (``time`` + ``step``) was published under the wrong cycle.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from probcast.ops.input_runs import InputRunsError, check_runs, input_runs
from probcast.testing.grids import forecast_grid

FRT, FP = "forecast_reference_time", "forecast_period"
CYCLE = datetime(2021, 3, 25, 0)
STALE = pd.Timestamp("2021-03-24", tz="UTC")


def _stale(**rename: str):
    ds = forecast_grid((3, 4), 1, start="2021-03-24").rename(rename)
    for name in ds.variables:
        ds[name].attrs.pop("standard_name", None)  # named only by the variable's name
    return ds.drop_vars("valid_time", errors="ignore")


@pytest.mark.parametrize(
    "rename",
    [
        {FRT: "time", FP: "step"},  # cfgrib's export (to_netcdf of cfgrib.open_dataset)
        {FRT: "reference_time"},
        {FRT: "init_time", FP: "lead_time"},
    ],
)
def test_a_stale_run_under_another_name_is_refused(tmp_path, rename):
    path = tmp_path / "2021032500.nc"
    _stale(**rename).to_netcdf(path)
    assert input_runs(path) == [STALE]
    with pytest.raises(InputRunsError, match=r"holds the run\(s\) 2021-03-24T00Z, not the cycle"):
        check_runs(path, CYCLE)


def test_a_scalar_cfgrib_time_and_a_standard_name(tmp_path):
    one = _stale(**{FRT: "time", FP: "step"}).squeeze("time")  # one run: a scalar 'time'
    one.to_netcdf(tmp_path / "scalar.nc")
    assert input_runs(tmp_path / "scalar.nc") == [STALE]
    named = _stale(**{FRT: "run"})
    named["run"].attrs["standard_name"] = FRT
    named.to_netcdf(tmp_path / "named.nc")
    assert input_runs(tmp_path / "named.nc") == [STALE]
    _stale(**{FRT: "time", FP: "step"}).to_zarr(tmp_path / "z.zarr", consolidated=False)
    with pytest.raises(InputRunsError, match=r"z\.zarr holds the run"):
        check_runs(tmp_path / "z.zarr", CYCLE)


def test_the_cycles_own_run_passes_and_no_time_is_not_a_run(tmp_path):
    ds = forecast_grid((3, 4), 1, start="2021-03-25").rename({FRT: "time", FP: "step"})
    ds.to_netcdf(tmp_path / "ok.nc")
    check_runs(tmp_path / "ok.nc", CYCLE)
    ds.isel(time=0, step=0, drop=True).to_netcdf(tmp_path / "none.nc")
    assert input_runs(tmp_path / "none.nc") is None  # the reader names what is missing
