"""The build area (``area: [north, west, south, east]``): validation, stations, grid crops."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from probcast.sources.area import Area, crop, parse_area
from probcast.sources.build import build
from probcast.sources.cli import main
from probcast.sources.config import load_spec, parse_spec
from probcast.sources.errors import SourceError
from probcast.sources.refs import build_refs
from probcast.sources.xarray_points import sample
from probcast.testing import archives as synthetic

T0 = pd.Timestamp("2025-01-01T00", tz="UTC")


@pytest.mark.parametrize(
    ("area", "message"),
    [
        ("[40, 0, 50, 10]", "north 40 must be greater than south 50"),
        ("[95, 0, 50, 10]", "north 95 is outside -90..90"),
        ("[60, -200, 50, 10]", "west -200 is outside -180..360"),
        ("[60, 0, 50, 400]", "east 400 is outside -180..360"),
        ("[60, 0, 50]", r"expected \[north, west, south, east\]"),
        ("[60, x, 50, 10]", r"expected \[north, west, south, east\]"),
        ("north", r"expected \[north, west, south, east\]"),
    ],
)
def test_bad_area_names_file_and_field(tmp_path, area, message):
    path = tmp_path / "build.yaml"
    path.write_text(
        "nwp: {source: archive, paths: x.grib}\ntruth: {source: table, paths: [o.csv]}\n"
        "variables: [t2m]\nperiod: {start: 2025-01-01, end: 2025-01-02}\nlead_times: [0]\n"
        f"area: {area}\n"
    )
    with pytest.raises(SourceError, match=message) as err:
        load_spec(path)
    assert str(err.value).startswith(f"{path}: area")


def test_contains_both_conventions_and_the_antimeridian():
    lat = np.array([50.0, 50.0, 50.0, 50.0, 30.0])
    lon = np.array([5.0, 365.0 - 360.0, -5.0, 355.0, 5.0])
    for area in (Area(60, -10, 40, 10), Area(60, 350, 40, 10)):
        assert area.contains(lat, lon).tolist() == [True, True, True, True, False]
    across = np.array([175.0, -175.0, 185.0, 0.0])
    for area in (Area(60, 170, 40, -170), Area(60, 170, 40, 190)):
        assert area.contains(np.full(4, 50.0), across).tolist() == [True, True, True, False]
    assert Area(60, -180, 40, 180).contains(np.full(4, 50.0), across).all()
    assert parse_area(None, "x") is None
    assert parse_area([60, 170, 40, -170], "x") == Area(60.0, 170.0, 40.0, -170.0)


def _regular(lon0: float = 0.0, nlon: int = 360, step: float = 1.0) -> xr.Dataset:
    lat = np.arange(60.0, 29.0, -1.0)  # descending, as in GRIB
    lon = lon0 + np.arange(nlon) * step
    field = 2.0 * lat[:, None] + 0.5 * ((lon[None, :] - lon0) % 360.0) + np.sin(lon)[None, :]
    return xr.Dataset(
        {"v": (("latitude", "longitude"), field, {"units": "K"})},
        coords={"latitude": lat, "longitude": lon},
    )


@pytest.mark.parametrize("method", ["nearest", "bilinear"])
def test_crop_keeps_the_values_at_stations_inside(method):
    ds = _regular(lon0=-20.0, nlon=80)
    area = Area(50.2, 0.3, 40.7, 10.1)
    lat = np.array([50.2, 40.7, 45.5, 47.9])
    lon = np.array([0.3, 10.1, 5.5, 9.99])
    cut = crop(ds, area)
    assert cut.sizes["latitude"] < 16 and cut.sizes["longitude"] < 16  # was 31 x 80
    want, _ = sample(ds, lat, lon, method)
    got, inside = sample(cut, lat, lon, method)
    assert inside.all()
    np.testing.assert_allclose(got["v"].values, want["v"].values, rtol=0, atol=1e-12)


def test_crop_never_cuts_a_global_seam():
    ds = _regular(lon0=0.0, nlon=360)
    assert crop(ds, Area(50, 170, 40, -170)).sizes["longitude"] == 21 + 4  # 170..190
    assert crop(ds, Area(50, 350, 40, 10)).sizes["longitude"] == 360  # wraps at 0: kept
    assert crop(ds, Area(50, 358, 40, 359.5)).sizes["longitude"] == 360  # touches the end
    assert crop(ds, Area(50, 170, 40, 190)).sizes["longitude"] == 21 + 4
    shifted = _regular(lon0=-180.0, nlon=360)
    cut = crop(shifted, Area(50, 170, 40, 190))  # crosses the grid's own seam: lat only
    assert cut.sizes == {"latitude": 11 + 4, "longitude": 360}
    lat, lon = np.array([45.0, 45.0]), np.array([179.5, -179.5])
    want, _ = sample(shifted, lat, lon, "bilinear")
    got, _ = sample(cut, lat, lon, "bilinear")
    np.testing.assert_allclose(got["v"].values, want["v"].values, atol=1e-12)


def test_crop_projected_grid():
    theta = np.radians(30.0)
    i, j = np.meshgrid(np.arange(30.0), np.arange(40.0), indexing="ij")
    lon = 10.0 + 0.1 * (j * np.cos(theta) - i * np.sin(theta)) / np.cos(np.radians(50.0))
    lat = 50.0 + 0.1 * (j * np.sin(theta) + i * np.cos(theta))
    ds = xr.Dataset(
        {"v": (("y", "x"), 2.0 * i + 3.0 * j)},
        coords={"latitude": (("y", "x"), lat), "longitude": (("y", "x"), lon)},
    )
    area = Area(51.6, 10.5, 51.0, 11.5)
    cut = crop(ds, area)
    assert cut.sizes["y"] * cut.sizes["x"] < ds.sizes["y"] * ds.sizes["x"] / 2
    slat, slon = np.array([51.1, 51.5, 51.3]), np.array([10.6, 11.4, 11.0])
    assert area.contains(slat, slon).all()
    for method in ("nearest", "bilinear"):
        want, _ = sample(ds, slat, slon, method)
        got, _ = sample(cut, slat, slon, method)
        np.testing.assert_allclose(got["v"].values, want["v"].values, atol=1e-9)


@pytest.fixture
def archive(tmp_path):
    synthetic.write_archive(tmp_path / "nwp", [T0], [0, 6])
    rows = [
        ("A", "2025-01-01T06:00", 50.0, 5.0, 100.0, 271.0),
        ("C", "2025-01-01T06:00", 60.0, 25.0, 100.0, 272.0),
        ("D", "2025-01-01T06:00", 35.0, -5.0, 100.0, 273.0),
    ]
    cols = ["station", "time", "latitude", "longitude", "altitude", "t2m"]
    pd.DataFrame(rows, columns=cols).to_csv(tmp_path / "obs.csv", index=False)
    return tmp_path


def _spec(root, paths, **extra):
    return {
        "nwp": {"source": "archive", "paths": paths},
        "truth": {"source": "table", "paths": [str(root / "obs.csv")]},
        "variables": ["t2m", "ws10"],
        "period": {"start": "2025-01-01", "end": "2025-01-01"},
        "lead_times": [0, 6],
        **extra,
    }


def test_build_keeps_stations_inside_and_counts_the_others(archive, capsys):
    root = archive
    spec = _spec(root, str(root / "nwp" / "*.grib"), area=[55, 0, 45, 10])
    config = root / "build.json"
    config.write_text(json.dumps(spec))
    assert main(["build", "--config", str(config), "--out", str(root / "out")]) == 0
    printed = capsys.readouterr().out
    assert "area [55.0, 0.0, 45.0, 10.0]: 2 station(s) outside, left out (C, D)" in printed
    summary = json.loads((root / "out" / "build-summary.json").read_text())
    assert summary["stations_outside_area"] == ["C", "D"]
    assert summary["area"] == [55.0, 0.0, 45.0, 10.0]
    table = pd.read_parquet(root / "out" / "table.parquet")
    assert set(table["station"]) == {"A"}
    assert table.loc[table["lead_time"] == 6.0, "obs_t2m"].tolist() == [271.0]
    with pytest.raises(SourceError, match=r"area: \[1.0, 100.0, 0.0, 101.0\].*holds none"):
        build(parse_spec(_spec(root, str(root / "nwp" / "*.grib"), area=[1, 100, 0, 101])), root)


def test_build_from_references_reads_a_cropped_grid(archive):
    root = archive
    build_refs(str(root / "nwp" / "*.grib"), root / "refs.json")
    full = build(parse_spec(_spec(root, str(root / "refs.json"))), root / "full")
    spec = parse_spec(_spec(root, str(root / "refs.json"), area=[55, 0, 45, 10]))
    part = build(spec, root / "part")
    assert part.outside_area == ["C", "D"] and full.outside_area == []
    a = pd.read_parquet(root / "part" / "table.parquet")
    b = pd.read_parquet(root / "full" / "table.parquet")
    pd.testing.assert_frame_equal(a, b[b["station"] == "A"].reset_index(drop=True))
    from probcast.sources.build import open_source

    source = open_source(spec, root / "part")
    ds = source.xarray.dataset(str(root / "refs.json"))
    assert ds.sizes["latitude"] == 11 + 4 and ds.sizes["longitude"] == 11 + 4  # of 41 x 41
