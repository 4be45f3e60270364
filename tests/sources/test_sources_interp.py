"""Bilinear interpolation to stations (probcast.sources.interp, ``nwp.method``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from probcast.sources.archive import Archive
from probcast.sources.build import build
from probcast.sources.config import parse_spec
from probcast.sources.errors import SourceError
from probcast.sources.interp import bilinear_curvilinear
from probcast.sources.refs import build_refs
from probcast.sources.xarray_points import nearest_indexers, sample
from probcast.testing import archives as synthetic


def _regular(lon0: float = 0.0, nlon: int = 360) -> xr.Dataset:
    lat = np.arange(60.0, 29.0, -1.0)  # descending, as in GRIB
    lon = lon0 + np.arange(nlon) * 1.0
    field = 2.0 * lat[:, None] + 0.5 * ((lon[None, :] - lon0) % 360.0)
    return xr.Dataset(
        {"v": (("latitude", "longitude"), field, {"units": "K"})},
        coords={"latitude": lat, "longitude": lon},
    )


def test_regular_grid_exact_for_a_linear_field():
    ds = _regular(nlon=40)
    lat, lon = np.array([45.25, 30.0, 50.5, 70.0]), np.array([10.4, 0.0, 39.0, 5.0])
    out, inside = sample(ds, lat, lon, "bilinear")
    np.testing.assert_allclose(out["v"].values[:3], 2 * lat[:3] + 0.5 * lon[:3], atol=1e-9)
    assert inside.tolist() == [True, True, True, False]
    assert np.isnan(out["v"].values[3])  # outside: NaN, never extrapolated
    assert out["v"].attrs["units"] == "K"
    near, _ = sample(ds, lat[:1], lon[:1], "nearest")
    assert near["v"].values[0] == 2 * 45.0 + 0.5 * 10.0  # the nearest point, not bilinear


def test_global_grid_wraps_across_the_seam():
    ds = _regular(lon0=0.0, nlon=360)
    out, inside = sample(ds, np.array([45.0, 45.0]), np.array([359.5, -0.5]), "bilinear")
    # Between lon 359 (0.5 * 359) and lon 0 (= 360: value 0): halfway.
    np.testing.assert_allclose(out["v"].values, 90.0 + 0.5 * 179.5, atol=1e-9)
    assert inside.all()


def _rotated(ny: int = 30, nx: int = 40) -> tuple[xr.Dataset, float]:
    """A 2-D grid rotated by 30 degrees; the field is 2 i + 3 j (linear in index space)."""
    theta = np.radians(30.0)
    i, j = np.meshgrid(np.arange(ny, dtype=float), np.arange(nx, dtype=float), indexing="ij")
    step = 0.1
    lon = 10.0 + step * (j * np.cos(theta) - i * np.sin(theta)) / np.cos(np.radians(50.0))
    lat = 50.0 + step * (j * np.sin(theta) + i * np.cos(theta))
    ds = xr.Dataset(
        {"v": (("y", "x"), 2.0 * i + 3.0 * j, {"units": "m s-1"})},
        coords={"latitude": (("y", "x"), lat), "longitude": (("y", "x"), lon)},
    )
    return ds, theta


def test_projected_grid_four_cells_in_index_space():
    ds, theta = _rotated()
    fi, fj = np.array([3.3, 10.5, 20.9]), np.array([7.25, 0.5, 31.1])
    lon = 10.0 + 0.1 * (fj * np.cos(theta) - fi * np.sin(theta)) / np.cos(np.radians(50.0))
    lat = 50.0 + 0.1 * (fj * np.sin(theta) + fi * np.cos(theta))
    out, inside = sample(ds, lat, lon, "bilinear")
    assert inside.all()
    # The local plane is exact only at the station's latitude: a small tolerance.
    np.testing.assert_allclose(out["v"].values, 2 * fi + 3 * fj, atol=0.02)


def test_projected_grid_outside_is_nan():
    ds, _ = _rotated()
    lat, lon = np.array([49.0, 50.5]), np.array([5.0, 10.8])
    start = np.column_stack([v.values for v in nearest_indexers(ds, lat, lon).values()])
    out, inside = bilinear_curvilinear(ds, lat, lon, start)
    assert inside.tolist() == [False, True]
    assert np.isnan(out["v"].values[0]) and np.isfinite(out["v"].values[1])


def test_spec_and_archive_refuse_bilinear_where_it_cannot_apply(tmp_path):
    base = {
        "truth": {"source": "table", "paths": ["obs.csv"]},
        "variables": ["t2m"],
        "period": {"start": "2025-01-01", "end": "2025-01-02"},
        "lead_times": [0],
    }
    with pytest.raises(SourceError, match=r"nwp\.method: 'cubic' unknown"):
        parse_spec({**base, "nwp": {"source": "archive", "paths": "x", "method": "cubic"}})
    with pytest.raises(SourceError, match="bilinear needs source 'archive'"):
        parse_spec({**base, "nwp": {"source": "gfs", "method": "bilinear"}})
    path = synthetic.write_cycle(tmp_path / "a.grib", pd.Timestamp("2025-01-01", tz="UTC"), [0])
    with pytest.raises(SourceError, match="probcast data refs"):
        Archive(str(path), method="bilinear")


def test_build_bilinear_from_refs(tmp_path):
    """A constant-in-space synthetic archive: bilinear gives the exact known values."""
    inits = [pd.Timestamp("2025-01-01", tz="UTC")]
    synthetic.write_archive(tmp_path / "nwp", inits, [0, 6])
    build_refs(str(tmp_path / "nwp" / "*.grib"), tmp_path / "refs.json")
    rows = [
        ("A", "2025-01-01T06:00", 45.3, 5.7, 100.0, 270.0),
        ("B", "2025-01-01T06:00", 80.0, 5.0, 100.0, 270.0),
    ]
    cols = ["station", "time", "latitude", "longitude", "altitude", "t2m"]
    pd.DataFrame(rows, columns=cols).to_csv(tmp_path / "obs.csv", index=False)
    spec = parse_spec(
        {
            "nwp": {
                "source": "archive",
                "paths": str(tmp_path / "refs.json"),
                "method": "bilinear",
            },
            "truth": {"source": "table", "paths": [str(tmp_path / "obs.csv")]},
            "variables": ["t2m", "ws10"],
            "period": {"start": "2025-01-01", "end": "2025-01-01"},
            "lead_times": [0, 6],
        }
    )
    result = build(spec, tmp_path / "out")
    table = pd.read_parquet(tmp_path / "out" / "table.parquet").set_index(["station", "lead_time"])
    assert table.loc[("A", 6.0), "fc_t2m"] == pytest.approx(270.6)
    assert table.loc[("A", 6.0), "fc_ws10"] == pytest.approx(5.0)
    assert table.loc[("A", 6.0), "stat_dz"] == pytest.approx(0.0, abs=1e-3)  # GRIB packing
    assert np.isnan(table.loc[("B", 6.0), "fc_t2m"])  # north of the grid
    notes = result.summary()["cycles_incomplete"]["2025-01-01T00:00Z"]
    assert any("1 station(s) outside the grid" in n for n in notes)
