"""Station prediction NetCDF: ``lead_time`` read in hours from its ``units`` attribute."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from probcast.products import table_files


def _written(tmp_path) -> xr.Dataset:
    frame = pd.DataFrame(
        {
            "station": ["A", "A", "B", "B"],
            "init_time": pd.to_datetime(["2021-01-21T00:00Z"] * 4),
            "lead_time": [6.0, 12.0, 6.0, 12.0],
            "t2m_loc": [280.0, 281.0, 282.0, 283.0],
            "t2m_scale": [1.0, 1.1, 1.2, 1.3],
        }
    )
    frame["valid_time"] = frame["init_time"] + pd.to_timedelta(frame["lead_time"], unit="h")
    path = table_files.write_predictions(frame, tmp_path / "pred.nc", families={"t2m": "normal"})
    with xr.open_dataset(path, decode_timedelta=False) as ds:
        assert ds["lead_time"].attrs["units"] == "hours"
        return ds.load()


def _rewrite(tmp_path, ds: xr.Dataset, scale: float, units: str | None, name: str) -> str:
    lead = ds["lead_time"]
    attrs = {k: v for k, v in lead.attrs.items() if k != "units"}
    if units is not None:
        attrs["units"] = units
    out = ds.assign_coords(lead_time=(lead.dims, lead.values * scale, attrs))
    path = tmp_path / name
    out.to_netcdf(path)
    return str(path)


@pytest.mark.parametrize(
    ("scale", "units"),
    [
        (1.0, "hours"),
        (1.0, None),  # no units: hours, as probcast wrote them before the attribute
        (1.0, "h"),
        (60.0, "minutes"),
        (60.0, "min"),
        (3600.0, "s"),
        (3600.0, "seconds"),
        (1 / 24, "days"),
    ],
)
def test_lead_time_converted_from_its_units(tmp_path, scale, units):
    path = _rewrite(tmp_path, _written(tmp_path), scale, units, "other.nc")
    df, fams = table_files.read_predictions(path)
    assert sorted(df["lead_time"].unique()) == pytest.approx([6.0, 12.0])
    assert fams == {"t2m": "normal"} and len(df) == 4
    expected = df["init_time"] + pd.to_timedelta(df["lead_time"], unit="h")
    assert (df["valid_time"] == expected).all()


def test_cf_timedelta_encoding_read(tmp_path):
    ds = _written(tmp_path)
    hours = ds["lead_time"].values
    encoded = ds.assign_coords(lead_time=pd.to_timedelta(hours, unit="h").to_numpy())
    path = tmp_path / "td.nc"
    encoded.to_netcdf(path, encoding={"lead_time": {"units": "minutes", "dtype": "int32"}})
    df, _ = table_files.read_predictions(path)
    assert sorted(df["lead_time"].unique()) == [6.0, 12.0]


@pytest.mark.parametrize("units", ["m", "furlongs", "hours since 2021-01-21"])
def test_lead_time_not_a_duration_refused(tmp_path, units):
    path = _rewrite(tmp_path, _written(tmp_path), 1.0, units, "bad.nc")
    with pytest.raises(ValueError) as err:
        table_files.read_predictions(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: column 'lead_time' holds") and f"units {units!r}" in msg
    assert "expected hours (units 'hours') or another duration unit" in msg


def test_lead_time_minutes_not_read_as_hours(tmp_path):
    path = _rewrite(tmp_path, _written(tmp_path), 60.0, "minutes", "min.nc")
    df, _ = table_files.read_predictions(path)
    assert np.max(df["lead_time"]) == 12.0  # was 720 h
