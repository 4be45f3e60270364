"""Forecast and truth grids sampled at stations (audit): units converted once, stations off
the grid are NaN, stations between the rows of a high-latitude grid are on it, one field per
step."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy.spatial import cKDTree

from probcast.geo import unit_vectors
from probcast.sources.arco import canonical
from probcast.sources.cycle import CycleFields
from probcast.sources.errors import SourceError
from probcast.sources.grib import Field, local_reach
from probcast.sources.xarray_points import nearest_indexers, on_grid


def test_canonical_is_idempotent():
    # audit: the grid build converted ERA5 tp twice (3.8e-6 m became 3.81 instead of 0.0038)
    ds = xr.Dataset(
        {"tp": (("time",), [3.8147e-06], {"units": "m"}), "rh": (("time",), [55.0], {"units": "%"})}
    )
    once = canonical(ds, "era5.nc")
    twice = canonical(once, "era5.nc")
    assert once["tp"].item() == pytest.approx(0.0038147) and once["tp"].attrs["units"] == "kg m-2"
    assert twice["tp"].item() == once["tp"].item() and twice["rh"].item() == pytest.approx(0.55)
    assert twice["tp"].attrs["source_units"] == "m"


@pytest.mark.parametrize(
    "lon_axis", [np.arange(75.0, 77.01, 0.25), np.arange(75.0, 77.01, 0.25) - 360]
)
def test_a_station_far_from_a_regional_grid_is_off_it(lon_axis):
    # audit: Oslo took the value of the corner of a 5 x 5 ERA5 grid over India
    ds = xr.Dataset(coords={"latitude": np.arange(23.5, 22.49, -0.25), "longitude": lon_axis})
    lat, lon = np.array([22.7, 59.9, 23.6, 22.3]), np.array([75.9, 10.7, 77.1, 76.0])
    idx = nearest_indexers(ds, lat, lon)
    assert on_grid(ds, lat, lon, idx).tolist() == [True, False, True, False]


def test_a_station_off_a_curvilinear_grid_is_off_it():
    yy, xx = np.meshgrid(np.arange(10), np.arange(12), indexing="ij")
    lat2 = 40.0 + 0.1 * yy + 0.02 * xx  # a rotated, curvilinear grid
    lon2 = -105.0 + 0.1 * xx - 0.02 * yy
    ds = xr.Dataset(coords={"latitude": (("y", "x"), lat2), "longitude": (("y", "x"), lon2)})
    lat, lon = np.array([40.45, 39.0, 40.5]), np.array([-104.5, -104.5, -110.0])
    assert on_grid(ds, lat, lon, nearest_indexers(ds, lat, lon)).tolist() == [True, False, False]


def test_stations_between_rows_of_a_high_latitude_grid_are_on_it():
    # audit: Bergen, Tromso and Sodankyla (0.25-degree ECMWF grid) were NaN with no note
    la, lo = np.meshgrid(np.arange(90, -90.01, -0.25), np.arange(0, 360, 0.25), indexing="ij")
    xyz = unit_vectors(la.ravel(), lo.ravel())
    tree = cKDTree(xyz)
    lat = np.array([60.38, 69.68, 67.37, 78.22, 88.9, 10.1])
    lon = np.array([5.33, 18.92, 26.63, 15.65, 10.1, 20.1])
    dist, idx = tree.query(unit_vectors(lat, lon))
    assert (dist <= local_reach(tree, xyz, idx)).all()
    regional = np.meshgrid(np.arange(30, 40.01, 0.25), np.arange(100, 110.01, 0.25), indexing="ij")
    xyz = unit_vectors(regional[0].ravel(), regional[1].ravel())
    tree = cKDTree(xyz)
    dist, idx = tree.query(unit_vectors(np.array([35.1, 40.1, 40.4]), np.array([105.0] * 3)))
    assert (dist <= local_reach(tree, xyz, idx)).tolist() == [True, True, False]


def _field(values, number_like: float) -> Field:
    return Field("2t", "heightAboveGround", 2, None, 60.0, 60.0, "instant", "K",
                 np.asarray(values, dtype="float64") + number_like, 1)  # fmt: skip


def test_one_field_per_step_or_an_error():
    # audit: an ensemble GRIB file's last member became the forecast
    fields = CycleFields(init_time=None)
    fields.add(_field([280.0, 281.0], 0.0), source="ens.grib")
    fields.add(_field([280.0, 281.0], 0.0), source="ens.grib")  # the same message again: fine
    with pytest.raises(SourceError, match=r"ens.grib: several different t2m fields"):
        fields.add(_field([280.0, 281.0], 0.5), source="ens.grib")
