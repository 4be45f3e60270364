"""extract_at_stations across the seam of a global regular grid (audit).

A station between the last and first columns of a 0..359.75 or -180..179.75 grid was
refused as "outside the grid" (lon -0.1 or 359.9 on 0..359.75, 179.9 on -180..179.75);
a global grid has no longitude edge: ``nearest`` takes the nearer of the two columns and
``bilinear`` interpolates between them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from probcast.align import extract_at_stations

LAT = np.array([50.0, 50.25, 50.5])


def _global(west: float) -> xr.Dataset:
    """A 0.25-degree global grid from ``west``; ``fc_u10`` at row i, column j is 100 i + j."""
    lon = west + 0.25 * np.arange(1440)
    field = 100.0 * np.arange(3.0)[:, None] + np.arange(1440.0)[None, :]
    return xr.Dataset(
        {"fc_u10": (("forecast_reference_time", "forecast_period", "latitude", "longitude"),
                    field[None, None], {"units": "m s-1"})},
        coords={"forecast_reference_time": [np.datetime64("2024-01-01", "ns")],
                "forecast_period": [np.timedelta64(6, "h")], "latitude": LAT, "longitude": lon},
    )  # fmt: skip


def _stations(lons: list[float]) -> pd.DataFrame:
    names = [f"S{k}" for k in range(len(lons))]
    return pd.DataFrame({"station": names, "latitude": 50.1, "longitude": lons})


def _values(ds: xr.Dataset, lons: list[float], method: str) -> list[float]:
    table = extract_at_stations(ds, _stations(lons), method=method)
    return table.set_index("station").loc[[f"S{k}" for k in range(len(lons))], "fc_u10"].tolist()


# Latitude 50.1: nearest row 0 (50.0); bilinear 0.4 of the way to row 1 (+ 100 * 0.4 = 40).
# Between the last column (j = 1439) and the first (j = 0), 0.15 beyond the last: nearest is
# the first column (0.1 away, not 0.15); bilinear is 0.4 * 1439 + 0.6 * 0 = 575.6. 0.05
# beyond the last: the last column; bilinear 0.8 * 1439 + 0.2 * 0 = 1151.2.
@pytest.mark.parametrize(
    ("west", "lons", "nearest", "bilinear"),
    [
        (0.0, [-0.1, 359.9, 359.8, 0.1], [0.0, 0.0, 1439.0, 0.0], [615.6, 615.6, 1191.2, 40.4]),
        (-180.0, [179.9, -180.1, 179.8, -179.9], [0, 0, 1439, 0], [615.6, 615.6, 1191.2, 40.4]),
    ],
    ids=["0..359.75", "-180..179.75"],
)
def test_stations_at_the_seam_of_a_global_grid(west, lons, nearest, bilinear):
    ds = _global(west)
    np.testing.assert_allclose(_values(ds, lons, "nearest"), nearest, rtol=0, atol=1e-9)
    np.testing.assert_allclose(_values(ds, lons, "bilinear"), bilinear, rtol=0, atol=1e-9)


@pytest.mark.parametrize("method", ["nearest", "bilinear"])
def test_a_global_grid_checks_only_latitude(method):
    ds = _global(0.0)
    assert _values(ds, [359.9], method)  # the seam: on the grid (was refused)
    with pytest.raises(ValueError, match=r"1 station\(s\) outside the grid .*longitude all"):
        extract_at_stations(ds, _stations([359.9]).assign(latitude=51.0), method=method)
