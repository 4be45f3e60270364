"""extract_at_stations on regular, curvilinear and point grids (with hypothesis invariants)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st

from probcast.align import extract_at_stations

FRT, FP = "forecast_reference_time", "forecast_period"


def regular(ny: int = 5, nx: int = 6, descending: bool = True, lon0: float = -10.0) -> xr.Dataset:
    lat = np.linspace(60, 50, ny) if descending else np.linspace(50, 60, ny)
    lon = lon0 + np.arange(nx) * 1.5
    rng = np.random.default_rng(1)
    data = rng.normal(280, 5, (2, 3, ny, nx))
    return xr.Dataset(
        {"fc_t2m": ((FRT, FP, "latitude", "longitude"), data)},
        coords={
            FRT: pd.date_range("2024-01-01", periods=2, freq="12h").to_numpy(),
            FP: np.array([0, 6, 12], "m8[h]").astype("m8[ns]"),
            "latitude": lat,
            "longitude": lon,
        },
    )


def curvilinear(ny: int = 6, nx: int = 7) -> xr.Dataset:
    """A rotated, sheared lon/lat mesh (like a Lambert grid) on (y, x)."""
    j, i = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    lat = 40 + 0.3 * j + 0.05 * i
    lon = -100 + 0.4 * i - 0.08 * j
    ds = regular(ny, nx).rename({"latitude": "y", "longitude": "x"}).drop_vars(["y", "x"])
    return ds.assign_coords(latitude=(("y", "x"), lat), longitude=(("y", "x"), lon))


def node_table(ds: xr.Dataset, picks: list[tuple[int, ...]]) -> pd.DataFrame:
    lat, lon = ds["latitude"].values, ds["longitude"].values
    rows = []
    for k, idx in enumerate(picks):
        if lat.ndim == 1 and ds["latitude"].dims == ("latitude",):
            la, lo = lat[idx[0]], lon[idx[1]]
        else:
            la, lo = lat[idx], lon[idx]
        rows.append({"station": f"s{k}", "latitude": float(la), "longitude": float(lo)})
    return pd.DataFrame(rows)


def node_values(ds: xr.Dataset, idx: tuple[int, ...]) -> np.ndarray:
    if ds["latitude"].dims == ("latitude",):
        return ds["fc_t2m"].values[:, :, idx[0], idx[1]].ravel()
    return ds["fc_t2m"].values[(slice(None), slice(None), *idx)].ravel()


@settings(max_examples=25, deadline=None)
@given(
    i=st.integers(0, 4),
    j=st.integers(0, 5),
    method=st.sampled_from(["nearest", "bilinear"]),
    descending=st.booleans(),
)
def test_regular_grid_nodes_are_exact(i: int, j: int, method: str, descending: bool):
    ds = regular(descending=descending)
    table = extract_at_stations(ds, node_table(ds, [(i, j)]), method=method)
    np.testing.assert_array_equal(table["fc_t2m"].to_numpy(), node_values(ds, (i, j)))


@settings(max_examples=25, deadline=None)
@given(j=st.integers(0, 5), i=st.integers(0, 6), method=st.sampled_from(["nearest", "bilinear"]))
def test_curvilinear_nodes_are_exact(j: int, i: int, method: str):
    ds = curvilinear()
    table = extract_at_stations(ds, node_table(ds, [(j, i)]), method=method)
    np.testing.assert_array_equal(table["fc_t2m"].to_numpy(), node_values(ds, (j, i)))


@settings(max_examples=20, deadline=None)
@given(
    lat=st.floats(50, 60), lon=st.floats(-10, -2.5), method=st.sampled_from(["nearest", "bilinear"])
)
def test_valid_time_is_init_plus_lead_and_values_bounded(lat: float, lon: float, method: str):
    ds = regular()
    stations = pd.DataFrame({"station": ["a"], "latitude": [lat], "longitude": [lon]})
    table = extract_at_stations(ds, stations, method=method)
    assert len(table) == 2 * 3
    expected = table["init_time"] + pd.to_timedelta(table["lead_time"], unit="h")
    pd.testing.assert_series_equal(table["valid_time"], expected, check_names=False)
    assert table["init_time"].dt.tz is not None
    assert table["fc_t2m"].between(float(ds["fc_t2m"].min()), float(ds["fc_t2m"].max())).all()


def test_bilinear_is_linear_on_a_plane():
    ds = regular(descending=False)
    lat2, lon2 = xr.broadcast(ds["latitude"], ds["longitude"])
    plane = 2.0 * lat2 - 3.0 * lon2
    ds["fc_t2m"] = plane.expand_dims({FRT: ds[FRT], FP: ds[FP]}).transpose(FRT, FP, ...)
    stations = pd.DataFrame({"station": ["a"], "latitude": [53.3], "longitude": [-7.1]})
    out = extract_at_stations(ds, stations, method="bilinear")
    np.testing.assert_allclose(out["fc_t2m"], 2.0 * 53.3 + 3.0 * 7.1)


def test_longitude_conventions_and_columns():
    ds = regular(lon0=350.0)  # grid in [0, 360)
    stations = pd.DataFrame(
        {"station": [7], "latitude": [55.0], "longitude": [-8.5], "altitude": [12.0]}
    )
    table = extract_at_stations(ds, stations)
    assert list(table.columns) == [
        "station",
        "init_time",
        "lead_time",
        "valid_time",
        "latitude",
        "longitude",
        "altitude",
        "fc_t2m",
    ]
    assert table["station"].iloc[0] == "7" and table["longitude"].iloc[0] == -8.5
    np.testing.assert_array_equal(
        table["fc_t2m"],
        ds["fc_t2m"].sel(latitude=55.0, longitude=351.5, method="nearest").values.ravel(),
    )


def test_point_grid_and_ensemble_mean_spread():
    ds = curvilinear().stack(point=("y", "x")).reset_index("point", drop=True)
    ds = ds.transpose(FRT, FP, "point")
    ens = xr.concat([ds, ds + 2.0], dim="realization").transpose(FRT, FP, "realization", "point")
    ens = ens.assign_coords(latitude=ds["latitude"], longitude=ds["longitude"])
    stations = node_table(curvilinear(), [(2, 3)])
    table = extract_at_stations(ens, stations, method="bilinear")
    np.testing.assert_allclose(table["fc_t2m"], node_values(curvilinear(), (2, 3)) + 1.0)
    np.testing.assert_allclose(table["fc_t2m_spread"], np.sqrt(1.0))


def test_truth_on_time_axis():
    ds = regular().isel({FP: 0}, drop=True).rename({FRT: "time", "fc_t2m": "obs_t2m"})
    table = extract_at_stations(ds, node_table(ds, [(1, 1)]))
    assert list(table.columns[:2]) == ["station", "time"] and len(table) == 2


@pytest.mark.parametrize("make", [regular, curvilinear])
@pytest.mark.parametrize("method", ["nearest", "bilinear"])
def test_station_outside_grid_is_an_error(make, method: str):
    stations = pd.DataFrame(
        {"station": ["in", "far"], "latitude": [55.0, 10.0], "longitude": [-8.0, 30.0]}
    )
    if make is curvilinear:
        stations.loc[0, ["latitude", "longitude"]] = [41.0, -99.0]
    with pytest.raises(ValueError, match=r"1 station\(s\) outside the grid .*far \(10, 30\)"):
        extract_at_stations(make(), stations, method=method)


def test_bad_arguments():
    ds = regular()
    good = pd.DataFrame({"station": ["a"], "latitude": [55.0], "longitude": [-8.0]})
    with pytest.raises(ValueError, match=r"method must be one of"):
        extract_at_stations(ds, good, method="cubic")
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['longitude'\]"):
        extract_at_stations(ds, good.drop(columns="longitude"))
    with pytest.raises(ValueError, match=r"no fc_<var>/obs_<var> fields"):
        extract_at_stations(ds.rename({"fc_t2m": "t2m"}), good)
