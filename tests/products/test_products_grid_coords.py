"""Latitude/longitude read as float64 are written as float32, on 2-D and scattered-point grids."""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import xarray as xr

from probcast.products import build_products, write_products
from probcast.testing import products as synthetic

METRES_PER_DEGREE = 111_195.0


def _from_float64_file(ds: xr.Dataset, path: Path) -> xr.Dataset:
    ds.to_netcdf(path)
    with xr.open_dataset(path) as read:
        loaded = read.load()
    assert loaded["latitude"].dtype == np.float64
    assert loaded["latitude"].encoding["dtype"] == np.float64
    return loaded


def _points(n_cases: int = 2, n_points: int = 300) -> xr.Dataset:
    rng = np.random.default_rng(1)
    dims = ("forecast_reference_time", "point")
    return xr.Dataset(
        {
            "tp_loc": (dims, rng.gamma(0.5, 2.0, (n_cases, n_points)).astype(np.float32)),
            "tp_scale": (dims, np.full((n_cases, n_points), 0.8, np.float32)),
        },
        coords={
            "latitude": ("point", rng.uniform(25, 50, n_points), {"units": "degrees_north"}),
            "longitude": ("point", rng.uniform(-125, -67, n_points), {"units": "degrees_east"}),
        },
    )


def _check_latlon(path: Path, source: xr.Dataset) -> None:
    with netCDF4.Dataset(path) as nc:
        for name in ("latitude", "longitude"):
            assert nc[name].dtype == np.float32, name
            error = np.abs(nc[name][:].data.astype(np.float64) - source[name].values)
            # float32 keeps about 1 m at these latitudes (docs/products.md).
            assert float(error.max()) * METRES_PER_DEGREE < 1.0, name


def test_2d_latlon_from_a_float64_file_are_float32_in_every_product(tmp_path: Path) -> None:
    grid = _from_float64_file(synthetic.params((24, 40), variables=("tp",)), tmp_path / "in.nc")
    products = build_products(
        grid,
        families={"tp": "censored_logistic"},
        products=["percentiles", "probabilities", "parameters"],
        percentiles=[25, 50, 75],
        thresholds={"tp": [1.0]},
    )
    for name, ds in products.items():
        write_products(ds, tmp_path / f"{name}.nc")
        _check_latlon(tmp_path / f"{name}.nc", grid)
        with netCDF4.Dataset(tmp_path / f"{name}.nc") as nc:
            assert nc["x"].dtype == np.float64  # dimension coordinates stay exact


def test_scattered_point_latlon_from_a_float64_file_are_float32(tmp_path: Path) -> None:
    grid = _from_float64_file(_points(), tmp_path / "in.nc")
    products = build_products(
        grid,
        families={"tp": "censored_logistic"},
        products=["percentiles"],
        percentiles=[10, 50, 90],
    )
    write_products(products["percentiles"], tmp_path / "p.nc")
    _check_latlon(tmp_path / "p.nc", grid)
    with xr.open_dataset(tmp_path / "p.nc") as back:
        assert back["tp"].dims == ("percentile", "forecast_reference_time", "point")
        assert back["tp"].encoding["chunksizes"] == (1, 1, 300)
