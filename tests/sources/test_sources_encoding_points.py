"""Archive (NetCDF/Zarr) grids sampled at stations with ``method: nearest`` (audit).

A station off the grid is NaN (it took the edge node's value while the notes said NaN);
on 2-D grids the nearest node is the nearest on the sphere, whatever the longitude
convention of the grid and of the stations (a 0..360 HRRR grid with -180..180 stations
picked one corner node for every station and called them all outside), and a station is on
the grid up to half a cell beyond its outermost nodes, as on 1-D axes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.spatial import cKDTree

from probcast.geo import unit_vectors
from probcast.sources.cycle import CycleFields
from probcast.sources.xarray_points import XarrayFiles, nearest_indexers, on_grid, sample

INIT = pd.Timestamp("2019-05-15T00:00", tz="UTC")


def _curvilinear(lon0: float = -110.5, ny: int = 6, nx: int = 7) -> xr.Dataset:
    """A rotated 2-D grid (about 3 km) over Arizona; ``t2m`` is ``280 + 10 i + j``."""
    i, j = np.meshgrid(np.arange(ny, dtype=float), np.arange(nx, dtype=float), indexing="ij")
    lat = 32.0 + 0.027 * i + 0.006 * j
    lon = lon0 + 0.032 * j - 0.007 * i
    return xr.Dataset(
        {"t2m": (("y", "x"), 280.0 + 10.0 * i + j, {"units": "K"})},
        coords={"latitude": (("y", "x"), lat), "longitude": (("y", "x"), lon)},
    )


def _regular() -> xr.Dataset:
    """A 0.25-degree latitude/longitude grid over Arizona; ``t2m`` is ``280 + 10 i + j``."""
    lat, lon = np.array([32.0, 32.25, 32.5]), np.array([-110.5, -110.25, -110.0])
    field = 280.0 + 10.0 * np.arange(3.0)[:, None] + np.arange(3.0)[None, :]
    return xr.Dataset(
        {"t2m": (("latitude", "longitude"), field, {"units": "K"})},
        coords={"latitude": lat, "longitude": lon},
    )


def _write(ds: xr.Dataset, path) -> str:  # type: ignore[no-untyped-def]
    """``ds`` at leads 0 h and 6 h (``t2m + 1``) of the run :data:`INIT`, as a NetCDF file."""
    leads = xr.DataArray(np.array([0, 6], "timedelta64[h]").astype("timedelta64[ns]"),
                         dims="forecast_period", name="forecast_period")  # fmt: skip
    out = xr.concat([ds, ds + 1.0], dim=leads).expand_dims(
        forecast_reference_time=[np.datetime64(INIT.tz_localize(None), "ns")]
    )
    out["t2m"].attrs["units"] = "K"
    out.to_netcdf(path)
    return str(path)


@pytest.mark.parametrize("layout", ["regular", "curvilinear"])
def test_nearest_station_off_the_grid_is_nan_in_the_cycle(tmp_path, layout):
    ds = _regular() if layout == "regular" else _curvilinear()
    lat2, lon2 = xr.broadcast(ds.latitude, ds.longitude)
    node = (1, 2)
    lat = np.array([lat2.values[node], 59.94])  # a station on a node, and Oslo
    lon = np.array([lon2.values[node], 10.72])
    files = XarrayFiles([_write(ds, tmp_path / "a.nc")], {}, method="nearest")
    out = CycleFields(init_time=INIT)
    files.add_cycle(out, INIT, [6], ["t2m"], lat, lon)
    values = out.instant["t2m"][6.0]
    assert values[0] == pytest.approx(float(ds["t2m"].values[node]) + 1.0)
    assert np.isnan(values[1])  # was the edge node's value while the note said NaN
    assert any("1 station(s) outside the grid (NaN)" in note for note in out.missing)


def test_nearest_on_a_0_360_curvilinear_grid_in_either_convention():
    ds = _curvilinear(lon0=249.5)  # wgrib2 HRRR/NAM NetCDF: longitudes 0..360
    nodes = [(2, 4), (2, 3), (0, 6), (5, 0), (3, 1)]
    lat = np.array([ds.latitude.values[n] for n in nodes])
    for lon in np.array([ds.longitude.values[n] for n in nodes]) - np.array([[360.0], [0.0]]):
        idx = nearest_indexers(ds, lat, lon)  # -180..180 picked node (5, 0) for all five
        assert list(zip(idx["y"].values.tolist(), idx["x"].values.tolist(), strict=True)) == nodes
        assert on_grid(ds, lat, lon, idx).all()
        got, inside = sample(ds, lat, lon, "nearest")
        assert inside.all()
        np.testing.assert_array_equal(got["t2m"].values, [ds["t2m"].values[n] for n in nodes])
        assert got["t2m"].attrs["units"] == "K"


def test_nearest_on_a_high_latitude_projected_grid_is_the_nearest_on_the_sphere():
    # A polar stereographic grid, 2.5 km spacing, around 68N 20E: degrees of longitude are
    # 0.37 of a degree of latitude there, so a tree on raw degrees picked farther nodes.
    radius, k = 6371.0, 2.5
    x = np.arange(-40, 40) * k
    y = np.arange(-40, 40) * k - 2 * radius * np.tan(np.radians(45 - 68 / 2))
    xx, yy = np.meshgrid(x, y)
    lat = 90 - 2 * np.degrees(np.arctan(np.hypot(xx, yy) / (2 * radius)))
    lon = 20 + np.degrees(np.arctan2(xx, -yy))
    ds = xr.Dataset(coords={"latitude": (("y", "x"), lat), "longitude": (("y", "x"), lon)})
    rng = np.random.default_rng(0)
    slat = rng.uniform(lat.min() + 0.3, lat.max() - 0.3, 1000)
    slon = rng.uniform(lon.min() + 1, lon.max() - 1, 1000)
    idx = nearest_indexers(ds, slat, slon)
    _, flat = cKDTree(unit_vectors(lat.ravel(), lon.ravel())).query(unit_vectors(slat, slon))
    want_y, want_x = np.unravel_index(flat, lat.shape)
    np.testing.assert_array_equal(idx["y"].values, want_y)
    np.testing.assert_array_equal(idx["x"].values, want_x)


def test_nearest_reaches_half_a_cell_beyond_a_curvilinear_grid_as_on_1d_axes():
    # 0.7 of a cell beyond the edge was on the grid (within one spacing of the edge node).
    ds = _curvilinear()
    lat2, lon2 = ds.latitude.values, ds.longitude.values
    # Beyond the last column (x = 6) of row 3 by 0.4 and 0.7 of a cell, and an inner point.
    frac = np.array([0.4, 0.7, -0.5])
    lat = lat2[3, 6] + frac * (lat2[3, 6] - lat2[3, 5])
    lon = lon2[3, 6] + frac * (lon2[3, 6] - lon2[3, 5])
    idx = nearest_indexers(ds, lat, lon)
    assert on_grid(ds, lat, lon, idx).tolist() == [True, False, True]
    near, inside = sample(ds, lat, lon, "nearest")
    assert inside.tolist() == [True, False, True]
    assert near["t2m"].values[0] == ds["t2m"].values[3, 6] and np.isnan(near["t2m"].values[1])
    _, inside = sample(ds, lat, lon, "bilinear")  # never extrapolates: only the inner point
    assert inside.tolist() == [False, False, True]


@pytest.mark.parametrize("url", [False, True])
def test_a_zarr_archive_with_fill_value_zero_keeps_its_zeros(tmp_path, url):
    # zarr-python's default fill_value 0 was read by xarray as _FillValue: a station on a
    # node whose t2m - 280 is 0 (every dry tp point alike) got NaN in data build
    import zarr

    ds = _regular() - 280.0  # node (0, 0) holds 0.0
    path = tmp_path / "a.zarr"
    xr.open_dataset(_write(ds, tmp_path / "a.nc")).to_zarr(path, zarr_format=2)
    store = zarr.open_group(path, mode="r+", zarr_format=2)
    values = store["t2m"][:]
    del store["t2m"]
    arr = store.create_array("t2m", shape=values.shape, dtype="f8", fill_value=0.0)
    arr[:] = values
    dims = ["forecast_reference_time", "forecast_period", "latitude", "longitude"]
    arr.attrs.update({"_ARRAY_DIMENSIONS": dims, "units": "K"})
    assert xr.open_zarr(path, consolidated=False)["t2m"].isnull().any()  # xarray alone
    files = XarrayFiles([f"file://{path}" if url else str(path)], {}, method="nearest")
    out = CycleFields(init_time=INIT)
    files.add_cycle(out, INIT, [0], ["t2m"], np.array([32.0]), np.array([-110.5]))
    assert out.instant["t2m"][0.0].tolist() == [0.0]
