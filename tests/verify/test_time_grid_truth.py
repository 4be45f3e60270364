"""The gridded analysis's valid-time axis may be named ``valid_time`` (CDS ERA5 layout)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from probcast.verify.grid_inputs import open_truth


def _analysis(times: int = 4) -> xr.Dataset:
    rng = np.random.default_rng(0)
    values = 280.0 + rng.standard_normal((times, 3, 4))
    return xr.Dataset(
        {"obs_t2m": (("time", "latitude", "longitude"), values, {"units": "K"})},
        coords={
            "time": np.arange(times) * np.timedelta64(6, "h") + np.datetime64("2021-03-25"),
            "latitude": [50.0, 50.5, 51.0],
            "longitude": [0.0, 0.5, 1.0, 1.5],
        },
    )


def test_an_analysis_on_valid_time_is_read_as_on_time(tmp_path: Path) -> None:
    # it was refused: "the analysis needs a valid 'time' axis or forecast_reference_time..."
    ana = _analysis()
    ana.to_netcdf(tmp_path / "time.nc")
    ana.rename(time="valid_time").to_netcdf(tmp_path / "valid_time.nc")
    want = open_truth(tmp_path / "time.nc").load()
    got = open_truth(tmp_path / "valid_time.nc").load()
    xr.testing.assert_identical(got, want)


def test_still_no_time_axis_is_refused(tmp_path: Path) -> None:
    _analysis().isel(time=0, drop=True).to_netcdf(tmp_path / "none.nc")
    with pytest.raises(ValueError, match=r"none.nc: the analysis needs a valid 'time' \(or"):
        open_truth(tmp_path / "none.nc")


@pytest.mark.realdata
def test_the_cds_era5_netcdf_layout(mirror: Path) -> None:
    path = mirror / "era5-cds-netcdf/data_stream-oper_stepType-instant.nc"
    ds = open_truth(path)
    assert "obs_t2m" in ds and ds.sizes["time"] == 132
    assert str(ds["time"].values[0]).startswith("2014-01-01T12")
