"""Extract gridded forecasts at station locations into the canonical station table.

Three grid layouts are handled (see docs/gridded.md):

- regular: 1-D ``latitude`` and ``longitude`` dimensions. ``nearest`` picks the closest
  node per axis; ``bilinear`` is xarray's linear interpolation on both axes. A global grid
  (columns all the way round, e.g. 0..359.75) wraps across its seam: a station between its
  last and first columns takes the nearer of them, or interpolates between them.
- curvilinear/projected: 2-D ``latitude(y, x)``/``longitude(y, x)`` (Lambert, polar
  stereographic); and unstructured: 1-D ``point`` with ``latitude(point)``. Nodes are
  3-D unit vectors in a cKDTree, so distances are chord lengths and the date line and
  poles need no special case. ``nearest`` takes the closest node; ``bilinear`` weights the
  four nearest nodes by inverse squared distance (Shepard weighting). That is not an
  exact bilinear scheme on skewed cells but is continuous, needs no cell search, and gives
  exactly the node value at a node.

A station is outside the grid when it lies beyond the grid's latitude/longitude range
(regular; latitude only on a global grid) or farther from its nearest node than the
largest spacing between neighbouring nodes (other layouts).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from scipy.spatial import cKDTree

from probcast import station_ids
from probcast.geo import EARTH_RADIUS_KM, is_global, unit_vectors
from probcast.schema import FC_PREFIX, OBS_PREFIX

FRT, FP = "forecast_reference_time", "forecast_period"
METHODS = ("nearest", "bilinear")


def _fields(ds: xr.Dataset) -> list[str]:
    names = [str(v) for v in ds.data_vars if str(v).startswith((FC_PREFIX, OBS_PREFIX))]
    if not names:
        raise ValueError(f"dataset has no fc_<var>/obs_<var> fields; found {list(ds.data_vars)}")
    return names


def _check_stations(stations: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in ("station", "latitude", "longitude") if c not in stations]
    if missing:
        raise ValueError(
            f"stations table lacks column(s) {missing}; expected station, latitude, longitude"
        )
    out = stations.reset_index(drop=True).copy()
    out["station"] = station_ids.as_text(out["station"])
    bad = ~out["latitude"].between(-90, 90)
    if bad.any():
        raise ValueError(f"station latitude outside [-90, 90]: {list(out.station[bad])[:5]}")
    return out


def _outside(stations: pd.DataFrame, mask: np.ndarray, what: str) -> None:
    if mask.any():
        rows = stations[mask].head(5)
        desc = ", ".join(
            f"{r.station} ({r.latitude:g}, {r.longitude:g})" for r in rows.itertuples()
        )
        raise ValueError(f"{int(mask.sum())} station(s) outside the grid ({what}): {desc}")


def _grid_lon(lon: np.ndarray, grid_lon: np.ndarray) -> np.ndarray:
    """Station longitudes in the grid's convention ([0, 360) or [-180, 180))."""
    if np.nanmax(grid_lon) > 180.0:
        return np.mod(lon, 360.0)
    return np.mod(np.asarray(lon, "float64") + 180.0, 360.0) - 180.0


def _lon_step(lon_g: np.ndarray) -> float:
    """The longitude spacing of a regular grid (median absolute step; 0 for one column)."""
    return float(np.median(np.abs(np.diff(lon_g)))) if lon_g.size > 1 else 0.0


def _regular_global(ds: xr.Dataset, lat: np.ndarray, lon: np.ndarray, method: str) -> xr.Dataset:
    """Stations on a global regular grid, wrapped across its seam (no longitude edge).

    ``nearest`` puts the station longitudes in the window of half a step either side of the
    grid's columns, so a station just short of the seam (359.9 on 0..359.75) takes the
    first column; ``bilinear`` repeats the first column 360 degrees on, so a station
    between the last and first columns interpolates between them.
    """
    lon_g = np.asarray(ds["longitude"].values, "float64")
    west = float(lon_g.min())
    if method == "nearest":
        edge = west - _lon_step(lon_g) / 2
        idx = {
            "latitude": xr.DataArray(lat, dims="station"),
            "longitude": xr.DataArray(edge + np.mod(lon - edge, 360.0), dims="station"),
        }
        return ds.sel(idx, method="nearest")
    ds = ds.sortby(["latitude", "longitude"])
    seam = ds.isel(longitude=[0]).assign_coords(longitude=[west + 360.0])
    ds = xr.concat([ds, seam], dim="longitude", data_vars="minimal", coords="minimal")
    idx = {
        "latitude": xr.DataArray(lat, dims="station"),
        "longitude": xr.DataArray(west + np.mod(lon - west, 360.0), dims="station"),
    }
    return ds.interp(idx, method="linear")


def _regular(ds: xr.Dataset, st: pd.DataFrame, method: str) -> xr.Dataset:
    lat_g, lon_g = ds["latitude"].values, ds["longitude"].values
    lon = _grid_lon(st["longitude"].to_numpy(), lon_g)
    lat = st["latitude"].to_numpy("float64")
    pad = 0.0 if method == "bilinear" else 0.5
    dlat = np.abs(np.diff(lat_g)).max(initial=0.0) * pad
    dlon = np.abs(np.diff(lon_g)).max(initial=0.0) * pad
    wraps = is_global(lon_g)
    out = (lat < lat_g.min() - dlat) | (lat > lat_g.max() + dlat)
    if not wraps:  # a regional grid: its longitude range too
        out |= (lon < lon_g.min() - dlon) | (lon > lon_g.max() + dlon)
    lon_range = "all (global)" if wraps else f"{lon_g.min():g}..{lon_g.max():g}"
    _outside(st, out, f"latitude {lat_g.min():g}..{lat_g.max():g}, longitude {lon_range}")
    if wraps:
        return _regular_global(ds, lat, lon, method)
    idx = {
        "latitude": xr.DataArray(lat, dims="station"),
        "longitude": xr.DataArray(lon, dims="station"),
    }
    if method == "nearest":
        return ds.sel(idx, method="nearest")
    return ds.sortby(["latitude", "longitude"]).interp(idx, method="linear")


def _spatial_dims(ds: xr.Dataset) -> tuple[str, ...]:
    return tuple(str(d) for d in ds["latitude"].dims)


def _scattered(ds: xr.Dataset, st: pd.DataFrame, method: str) -> xr.Dataset:
    dims = _spatial_dims(ds)
    nodes = unit_vectors(ds["latitude"].values.ravel(), ds["longitude"].values.ravel())
    tree = cKDTree(nodes)
    spacing = tree.query(nodes, k=2)[0][:, 1].max()
    k = 1 if method == "nearest" else 4
    dist, idx = tree.query(unit_vectors(st["latitude"].to_numpy(), st["longitude"].to_numpy()), k=k)
    dist, idx = dist.reshape(len(st), k), idx.reshape(len(st), k)
    _outside(
        st,
        dist[:, 0] > spacing,
        f"more than one grid spacing ({spacing * EARTH_RADIUS_KM:.1f} km) from the nearest node",
    )
    flat = (
        ds.stack(_node=dims, create_index=False) if len(dims) > 1 else ds.rename({dims[0]: "_node"})
    )
    flat = flat.drop_vars([c for c in flat.coords if "_node" in flat[c].dims])
    w = 1.0 / np.maximum(dist, 1e-12) ** 2
    w = w / w.sum(axis=1, keepdims=True)
    exact = dist[:, 0] == 0.0  # on a node: that node's value alone, bit for bit
    idx[exact] = idx[exact, :1]
    w[exact] = np.arange(k) == 0
    picked = flat.isel(_node=xr.DataArray(idx, dims=("station", "_k")))
    return (picked * xr.DataArray(w, dims=("station", "_k"))).sum("_k", skipna=False)


def _to_table(values: xr.Dataset, st: pd.DataFrame, fields: list[str]) -> pd.DataFrame:
    """Flatten (station, reference time, period) fields into the canonical station table."""
    if "realization" in values.dims:  # ensemble -> member mean plus spread predictors
        spread = values[[f for f in fields if f.startswith(FC_PREFIX)]].std("realization")
        values = values.mean("realization").merge(
            spread.rename({f: f"{f}_spread" for f in spread.data_vars})
        )
        fields = [*fields, *[f"{f}_spread" for f in spread.data_vars]]
    values = values.assign_coords(station=("station", st["station"].to_numpy()))
    keep = [c for c in values.coords if c not in values.dims]
    df = values[fields].drop_vars(keep).to_dataframe().reset_index()
    static = [c for c in st.columns if c != "station"]
    if "time" in df.columns and FRT not in df.columns:  # truth fields on a valid time axis
        df["time"] = pd.to_datetime(df["time"]).dt.tz_localize("UTC")
        df = df.merge(st, on="station", how="left")
        cols = ["station", "time", *static, *fields]
        return df[cols].sort_values(["station", "time"]).reset_index(drop=True)
    df["init_time"] = pd.to_datetime(df.pop(FRT)).dt.tz_localize("UTC")
    df["lead_time"] = pd.to_timedelta(df.pop(FP)) / pd.Timedelta(hours=1)
    df["valid_time"] = df["init_time"] + pd.to_timedelta(df["lead_time"], unit="h")
    df = df.merge(st, on="station", how="left")
    first = ["station", "init_time", "lead_time", "valid_time"]
    return df[first + static + fields].sort_values(first[:3]).reset_index(drop=True)


def extract_at_stations(
    ds: xr.Dataset, stations: pd.DataFrame, method: str = "nearest"
) -> pd.DataFrame:
    """Extract the ``fc_*``/``obs_*`` fields of a canonical gridded dataset at stations.

    Args:
        ds: Canonical gridded dataset (forecast layout, or truth with a ``time`` axis).
        stations: Table with ``station``, ``latitude``, ``longitude`` (extra columns such
            as ``altitude`` are copied to every row).
        method: ``nearest`` or ``bilinear`` (see the module docstring per grid layout).

    Returns:
        Canonical station table (``station, init_time, lead_time, valid_time``, station
        columns, fields); truth-only datasets give ``station, time`` instead. Ensemble
        members are reduced to their mean (``fc_<var>``) and spread (``fc_<var>_spread``).

    Raises:
        ValueError: Unknown method, missing columns or a station outside the grid.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if "latitude" not in ds.coords or "longitude" not in ds.coords:
        raise ValueError("dataset has no latitude/longitude coordinates")
    fields = _fields(ds)
    st = _check_stations(stations)
    if ds["latitude"].ndim == 1 and ds["latitude"].dims == ("latitude",):
        values = _regular(ds[fields], st, method)
    else:
        values = _scattered(ds[fields], st, method)
    return _to_table(values, st, fields)
