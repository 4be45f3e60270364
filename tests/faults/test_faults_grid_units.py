"""Issue 14: a grid already named ``fc_*``/``obs_*`` gets the unit conversion and the checks
of every gridded input, at training and at prediction (:func:`probcast.align.points.open_grid`,
the one reader of both), with errors naming the file, the variable and the units that fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from probcast.align.grids import align_truth
from probcast.align.points import open_grid
from probcast.ingest.errors import GriddedReadError
from probcast.ingest.gridded import open_gridded
from probcast.testing.grids import forecast_grid
from probcast.train.data import load_table

ERA5_TP = "era5-cds-netcdf/data_stream-oper_stepType-accum.nc"


def _grid(var: str = "t2m", layout: str = "regular") -> xr.Dataset:
    return forecast_grid((4, 5), 3, variables=(var,), layout=layout)


def _write(ds: xr.Dataset, path: Path) -> Path:
    ds.to_netcdf(path)
    return path


def _relabel(ds: xr.Dataset, name: str, values: object, units: str | None) -> xr.Dataset:
    ds = ds.copy()
    ds[name] = ds[name].copy(data=np.broadcast_to(values, ds[name].shape).copy())
    ds[name].attrs.pop("units", None)
    if units is not None:
        ds[name].attrs["units"] = units
    return ds


def test_celsius_with_its_units_is_converted_at_open(tmp_path: Path):
    ref = _grid()
    ds = ref.copy()
    ds["fc_t2m"] = (ref["fc_t2m"] - 273.15).assign_attrs(units="degC")
    for chunks in ({}, None):  # lazy (prediction) and loaded (training)
        got = open_grid(_write(ds, tmp_path / f"c{chunks is None}.nc"), chunks=chunks)
        np.testing.assert_allclose(got["fc_t2m"].values, ref["fc_t2m"].values, atol=1e-9)
        assert got["fc_t2m"].attrs["units"] == "K"
    assert open_grid(tmp_path / "cFalse.nc", chunks={})["fc_t2m"].chunks is not None


@pytest.mark.parametrize(
    ("var", "values", "units", "match"),
    [
        ("t2m", 15.0, "K", r"fc_t2m has values in \[15, 15\].*fit as 'degC' or 'degF', not 'K'"),
        ("tp", 12.288, "m", r"fc_tp has values in \[12288, 12288\].*'mm', not 'm'"),
        ("tp", -3.0, "kg m-2", r"fc_tp has values in \[-3, -3\], outside .* \[0, 1000\] kg m-2"),
        ("tp", 1e6, "kg m-2", r"fc_tp has values in \[1e\+06, 1e\+06\], outside"),
        ("tp", np.inf, "mm", r"fc_tp has 60 infinite value\(s\); missing values must be NaN"),
        ("tp", np.nan, "mm", r"fc_tp is entirely missing \(all NaN\)"),
        ("tp", 1.0, None, r"variable 'fc_tp' has no units attribute; expected 'kg m-2' .*mm"),
        ("t2m", 1.0, "furlong", r"variable 'fc_t2m' has units 'furlong'; expected 'K'"),
    ],
)
def test_bad_fc_grid_is_refused_at_training_and_prediction(
    tmp_path: Path, var: str, values: float, units: str | None, match: str
):
    path = _write(_relabel(_grid(var), f"fc_{var}", values, units), tmp_path / "bad.nc")
    with pytest.raises(GriddedReadError, match=rf"bad\.nc: {match}"):
        open_grid(path, chunks={})  # prediction reads grids here
    with pytest.raises(GriddedReadError, match=rf"bad\.nc: {match}"):
        load_table(str(path))  # training too


def test_latitude_off_the_globe(tmp_path: Path):
    ds = _grid().assign_coords(latitude=np.linspace(88.0, 92.0, 4))
    with pytest.raises(GriddedReadError, match=r"lat\.nc: latitude has values in \[88, 92\]"):
        open_grid(_write(ds, tmp_path / "lat.nc"), chunks={})


def test_named_variables_get_the_same_checks(tmp_path: Path):
    """A file with NWP names (``t2``, not ``fc_t2m``) goes through the same range check."""
    ds = _grid().rename({"fc_t2m": "t2", "obs_t2m": "obs"}).drop_vars("obs")
    ds["t2"] = ds["t2"].copy(data=np.full(ds["t2"].shape, 20.0))
    with pytest.raises(GriddedReadError, match=r"nwp\.nc: fc_t2m .*'degC'"):
        open_grid(_write(ds, tmp_path / "nwp.nc"), chunks={})


def test_canonical_fields_with_other_coordinate_names_are_normalised(tmp_path: Path):
    """``fc_t2m`` on ``lat``/``lon``: read like ``t2`` on them, not refused (audit)."""
    ds = _grid().rename({"latitude": "lat", "longitude": "lon"})
    got = open_grid(_write(ds, tmp_path / "latlon.nc"), chunks={})
    xr.testing.assert_allclose(
        got["fc_t2m"].reset_coords(drop=True), _grid()["fc_t2m"].reset_coords(drop=True)
    )
    assert {"latitude", "longitude"} <= set(got.coords)


def test_align_truth_converts_truth_units():
    fc = _grid().drop_vars("obs_t2m")
    truth = _grid().drop_vars("fc_t2m").isel(forecast_period=0, drop=True)
    truth = truth.rename(forecast_reference_time="time")
    celsius = truth.copy()
    celsius["obs_t2m"] = (truth["obs_t2m"] - 273.15).assign_attrs(units="degC")
    a, b = align_truth(fc, truth), align_truth(fc, celsius)
    xr.testing.assert_allclose(a["obs_t2m"], b["obs_t2m"])
    assert b["obs_t2m"].attrs["units"] == "K"


@pytest.mark.realdata
def test_real_grib_with_implausible_kelvin_is_refused(mirror: Path):
    """cfgrib's step_60m.grib: 2 m temperature from -3.3 to 4.0 'K' (degC-like values)."""
    path = mirror / "grib-samples/step_60m.grib"
    assert open_gridded(path)["fc_t2m"].attrs["units"] == "K"  # the reader only normalises
    with pytest.raises(GriddedReadError, match=r"step_60m\.grib: fc_t2m .*'degC'.*not 'K'"):
        open_grid(path)


@pytest.mark.realdata
def test_real_precipitation_in_metres(mirror: Path, tmp_path: Path):
    """ERA5 total precipitation is in m: x1000 from its units; mm labelled m is refused."""
    raw = xr.open_dataset(mirror / ERA5_TP)["tp"]
    assert raw.attrs["units"] == "m"
    canon = open_gridded(mirror / ERA5_TP)
    ds = canon.copy()
    ds["fc_tp"] = canon["fc_tp"].copy(data=canon["fc_tp"].values / 1000.0)
    ds["fc_tp"].attrs = {"units": "m"}  # the file's own numbers and units, fc_ named
    got = open_grid(_write(ds, tmp_path / "era5_m.nc"), chunks={})
    np.testing.assert_allclose(got["fc_tp"].values, canon["fc_tp"].values, rtol=1e-6)
    assert 0.5 < float(got["fc_tp"].max()) < 10.0  # a few mm, as in kg m-2
    wrong = ds.copy()
    wrong["fc_tp"] = (ds["fc_tp"] * 1000.0).assign_attrs(units="m")  # mm numbers, "m"
    with pytest.raises(GriddedReadError, match=r"era5_mm\.nc: fc_tp .*'mm', not 'm'"):
        open_grid(_write(wrong, tmp_path / "era5_mm.nc"), chunks={})
