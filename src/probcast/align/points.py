"""Gridded dataset -> canonical station table in which every grid point is a station.

This is how the station model trains on and predicts gridded data (one code path: training
calls :func:`grid_to_table`; gridded prediction calls :func:`prepare_fields`,
:func:`~probcast.align.neighbourhood.neighbourhood_fields` and :func:`table_rows` per tile,
which is what :func:`grid_to_table` does on the whole grid).

* Station ids: ``y<j>x<i>`` (row and column index) on 2-D grids, ``p<n>`` on ``point``
  grids. Indices come from ``grid_index_<dim>`` coordinates when present (tiles of a
  larger grid keep their global ids), else from the position.
* Statics: ``latitude``/``longitude`` (longitudes wrapped to [-180, 180)), ``altitude``
  from a variable or coordinate named ``altitude``, ``orography``, ``orog``,
  ``surface_altitude``… and ``stat_lsm`` from a land-sea mask (``lsm``, ``land_sea_mask``…),
  when present.
* Ensembles (``realization``): member mean ``fc_<var>`` and spread ``fc_<var>_spread``.
* Neighbourhood predictors ``fc_<var>_nbr<k>_<stat>`` of every ``fc_*`` field (see
  :mod:`probcast.align.neighbourhood`).
* Rows where a raw forecast ``fc_<var>`` of a canonical variable (``required``) is NaN are
  dropped: the raw forecast is the centre of the predictive distribution. Masked areas
  (NaN land or sea) therefore produce no rows and stay NaN in gridded products.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy.spatial import cKDTree

from probcast import periods
from probcast.align.neighbourhood import STATS, check_stats, check_windows, neighbourhood_fields
from probcast.geo import EARTH_RADIUS_KM
from probcast.schema import FC_PREFIX, OBS_PREFIX, VARIABLES

FRT, FP, REALIZATION = "forecast_reference_time", "forecast_period", "realization"
ALTITUDE_NAMES = ("altitude", "orography", "orog", "surface_altitude", "elevation", "hsurf")
LSM_NAMES = ("lsm", "land_sea_mask", "land_binary_mask", "landmask", "land_mask")


def index_coord(dim: str) -> str:
    """Name of the integer coordinate holding the global index along ``dim``."""
    return f"grid_index_{dim}"


def spatial_dims(ds: xr.Dataset) -> tuple[str, ...]:
    """``("latitude", "longitude")``, the dims of 2-D ``latitude`` or ``("point",)``.

    Raises:
        ValueError: Without latitude/longitude coordinates or with a layout not handled.
    """
    if "latitude" not in ds.variables or "longitude" not in ds.variables:
        raise ValueError(
            "gridded dataset has no latitude/longitude coordinates; found "
            f"{sorted(map(str, ds.variables))}"
        )
    lat = ds["latitude"]
    if lat.dims == ("latitude",) and ds["longitude"].dims == ("longitude",):
        return ("latitude", "longitude")
    if lat.ndim in (1, 2) and lat.dims == ds["longitude"].dims:
        return tuple(str(d) for d in lat.dims)
    raise ValueError(
        f"unsupported grid: latitude{lat.dims} and longitude{ds['longitude'].dims}; expected "
        "1-D latitude/longitude axes, 2-D latitude(y, x)/longitude(y, x) or latitude(point)"
    )


def wrap_longitude(lon: Any) -> np.ndarray:
    """Longitudes in [-180, 180) (0-360 grids as training reads them)."""
    return (np.asarray(lon, "float64") + 180.0) % 360.0 - 180.0


def node_latlon(ds: xr.Dataset, dims: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Latitude and longitude of every node, each of the spatial shape."""
    lat, lon = ds["latitude"].values, ds["longitude"].values
    if tuple(dims) == ("latitude", "longitude"):
        lat, lon = np.meshgrid(lat, lon, indexing="ij")
    return np.asarray(lat, "float64"), wrap_longitude(lon)


def spacing_km(ds: xr.Dataset, dims: Sequence[str] | None = None, sample: int = 4000) -> float:
    """Median distance (km) from a node to its nearest neighbour (sampled nodes)."""
    lat, lon = node_latlon(ds, dims or spatial_dims(ds))
    la, lo = np.deg2rad(lat.ravel()), np.deg2rad(lon.ravel())
    nodes = np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)
    if len(nodes) < 2:
        return float("nan")
    pick = np.random.default_rng(0).choice(len(nodes), min(sample, len(nodes)), replace=False)
    dist = cKDTree(nodes).query(nodes[pick], k=2)[0][:, 1]
    return float(np.median(dist[dist > 0]) * EARTH_RADIUS_KM) if (dist > 0).any() else float("nan")


def grid_fingerprint(ds: xr.Dataset, dims: Sequence[str] | None = None) -> str:
    """sha256 of the grid's shape and node positions (float32), to recognise the same grid."""
    dims = dims or spatial_dims(ds)
    lat, lon = node_latlon(ds, dims)
    digest = hashlib.sha256(repr((tuple(dims), lat.shape)).encode())
    digest.update(np.ascontiguousarray(lat, dtype=np.float32).tobytes())
    digest.update(np.ascontiguousarray(lon, dtype=np.float32).tobytes())
    return digest.hexdigest()


def grid_description(
    ds: xr.Dataset, windows: Sequence[int], stats: Sequence[str] = STATS
) -> dict[str, Any]:
    """What a model trained on ``ds`` must know to rebuild its features on another grid."""
    dims = spatial_dims(ds)
    return {
        "dims": list(dims),
        "shape": [int(ds.sizes[d]) for d in dims],
        "spacing_km": spacing_km(ds, dims),
        "fingerprint": grid_fingerprint(ds, dims),
        "neighbourhood": [int(k) for k in windows],
        "stats": list(stats),
    }


def _static(ds: xr.Dataset, names: Sequence[str], dims: Sequence[str]) -> xr.DataArray | None:
    for name in names:
        if name in ds.variables and set(ds[name].dims) <= set(dims) and ds[name].ndim:
            return ds[name]
    return None


def prepare_fields(ds: xr.Dataset) -> xr.Dataset:
    """Canonical fields on ``(forecast_reference_time, forecast_period, *grid)``.

    Scalar reference time / period become length-1 dims; an ensemble becomes member mean
    ``fc_<var>`` plus spread ``fc_<var>_spread``; static fields keep their own dims.

    Raises:
        ValueError: If there is no ``fc_*`` field.
    """
    dims = spatial_dims(ds)
    for d in (FRT, FP):
        if d not in ds.dims:
            if d not in ds.coords:
                raise ValueError(f"gridded dataset has no {d} coordinate")
            ds = ds.expand_dims(d)
    fields = [str(v) for v in ds.data_vars if str(v).startswith((FC_PREFIX, OBS_PREFIX))]
    if not any(f.startswith(FC_PREFIX) for f in fields):
        raise ValueError(
            f"gridded dataset has no fc_<var> field; found {sorted(map(str, ds.data_vars))}"
        )
    if REALIZATION in ds.dims:
        fc = [f for f in fields if f.startswith(FC_PREFIX) and REALIZATION in ds[f].dims]
        spread = ds[fc].std(REALIZATION)
        ds = ds.mean(REALIZATION, keep_attrs=True).merge(
            spread.rename({f: f"{f}_spread" for f in fc})
        )
    for f in ds.data_vars:
        if str(f).startswith((FC_PREFIX, OBS_PREFIX)):
            ds[f] = ds[f].transpose(FRT, FP, *dims)
    return ds


def _ids(ds: xr.Dataset, dims: Sequence[str]) -> np.ndarray:
    idx = [
        ds[index_coord(d)].values if index_coord(d) in ds.coords else np.arange(ds.sizes[d])
        for d in dims
    ]
    if len(dims) == 1:
        return np.char.add("p", idx[0].astype(str)).astype(object)
    jj, ii = np.meshgrid(idx[0], idx[1], indexing="ij")
    return (
        np.char.add(np.char.add("y", jj.astype(str)), np.char.add("x", ii.astype(str)))
        .astype(object)
        .ravel()
    )


def _columns(ds: xr.Dataset) -> list[str]:
    names = [str(v) for v in ds.data_vars]
    fc = [v for v in names if v.startswith(FC_PREFIX)]
    return fc + [v for v in names if v.startswith(OBS_PREFIX)]


def default_required(ds: xr.Dataset) -> list[str]:
    """Raw forecasts of canonical variables: ``fc_<var>`` with ``<var>`` in the schema."""
    return [str(v) for v in ds.data_vars if str(v)[len(FC_PREFIX) :] in VARIABLES]


def table_rows(
    ds: xr.Dataset, required: Sequence[str] | None = None, *, ids: bool = True
) -> tuple[pd.DataFrame, np.ndarray]:
    """Flatten prepared fields into a station table; also return the kept-row mask.

    Args:
        ds: Output of :func:`prepare_fields` (plus any neighbourhood fields).
        required: Fields whose NaN drops the row (default :func:`default_required`).
        ids: Build station ids (``False``: every station is ``""``, i.e. unknown).

    Returns:
        ``(table, keep)``: ``keep`` is a boolean mask over all ``(reference time, period,
        node)`` positions in C order; the table holds the kept positions in that order.
    """
    dims = spatial_dims(ds)
    nt, npd = ds.sizes[FRT], ds.sizes[FP]
    ns = int(np.prod([ds.sizes[d] for d in dims]))
    n = nt * npd * ns
    cols = _columns(ds)
    data = {c: np.asarray(ds[c].values, dtype="float64").reshape(n) for c in cols}
    need = list(default_required(ds) if required is None else required)
    keep = np.ones(n, dtype=bool)
    for c in need:
        keep &= np.isfinite(data[c])
    frt = pd.to_datetime(ds[FRT].values).tz_localize("UTC")
    lead = pd.to_timedelta(ds[FP].values) / pd.Timedelta(hours=1)
    t_idx = np.repeat(np.arange(nt), npd * ns)[keep]
    p_idx = np.tile(np.repeat(np.arange(npd), ns), nt)[keep]
    s_idx = np.tile(np.arange(ns), nt * npd)[keep]
    out: dict[str, Any] = {
        "station": _ids(ds, dims)[s_idx] if ids else np.full(len(s_idx), "", dtype=object),
        "init_time": frt[t_idx],
        "lead_time": np.asarray(lead, dtype="float64")[p_idx],
    }
    out["valid_time"] = out["init_time"] + pd.to_timedelta(out["lead_time"], unit="h")
    lat, lon = node_latlon(ds, dims)
    out["latitude"], out["longitude"] = lat.ravel()[s_idx], lon.ravel()[s_idx]
    for col, names in (("altitude", ALTITUDE_NAMES), ("stat_lsm", LSM_NAMES)):
        static = _static(ds, names, dims)
        if static is not None:
            out[col] = np.asarray(static.transpose(*dims).values, "float64").ravel()[s_idx]
    out.update({c: data[c][keep] for c in cols})
    return pd.DataFrame(out), keep


def parse_windows(text: str | Sequence[int]) -> list[int]:
    """``"3,7"`` -> ``[3, 7]`` (``""`` -> no neighbourhood features)."""
    if isinstance(text, str):
        return check_windows([int(v) for v in text.split(",") if v.strip()])
    return check_windows(text)


def grid_to_table(
    ds: xr.Dataset,
    *,
    neighbourhood: Sequence[int] | str = (3, 7),
    stats: Sequence[str] = STATS,
    scale: float = 1.0,
    required: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Turn a canonical gridded dataset into a canonical station table.

    One row per grid point, reference time and period whose raw forecasts are present.

    Args:
        ds: Canonical gridded dataset: ``fc_<var>`` (and optional ``obs_<var>``) on
            ``(forecast_reference_time, forecast_period[, realization], *grid)``.
        neighbourhood: Window edges in cells (``"3,7"`` or ``(3, 7)``; empty for none).
        stats: Neighbourhood statistics (``mean``, ``max``, ``std``).
        scale: Training grid spacing / this grid's spacing (windows are rescaled).
        required: Fields whose NaN drops a row (default: raw forecasts of canonical
            variables).

    Returns:
        The table; ``table.attrs["grid"]`` describes the grid and the neighbourhood
        settings (:func:`grid_description`), which the feature spec records; the dataset's
        statistic periods (:mod:`probcast.periods`) are kept in ``table.attrs``.
    """
    windows = parse_windows(neighbourhood)
    stats = check_stats(stats)
    prepared = prepare_fields(ds)
    fields = [str(v) for v in prepared.data_vars if str(v).startswith(FC_PREFIX)]
    dims = spatial_dims(prepared)
    if windows:
        prepared = neighbourhood_fields(prepared, fields, dims, windows, stats, scale=scale)
    table, _ = table_rows(prepared, required)
    table.attrs["grid"] = grid_description(prepared, windows, stats)
    if periods.ATTR in ds.attrs:  # as stated (a period with no fixed length too)
        table.attrs[periods.ATTR] = ds.attrs[periods.ATTR]
    return table


GRID_SUFFIXES = (".nc", ".nc4", ".netcdf", ".zarr", ".grib", ".grib2", ".grb", ".grb2", ".json")


def is_grid_path(path: str | os.PathLike[str]) -> bool:
    """True for a gridded file or store by suffix (NetCDF, Zarr, GRIB, kerchunk JSON)."""
    p = Path(os.fspath(path).removeprefix("reference://"))
    return p.suffix.lower() in GRID_SUFFIXES or (p.is_dir() and (p / "zarr.json").exists())


def open_grid(path: str | os.PathLike[str], chunks: dict[str, int] | None = None) -> xr.Dataset:
    """Open a gridded file in the canonical model; lazily when it is already canonical.

    NetCDF/Zarr files whose data variables are all ``fc_*``/``obs_*`` and whose coordinates
    have the canonical names (as probcast writes them) are opened with xarray directly,
    chunked by ``chunks`` (units converted lazily from their ``units`` attribute; the
    values read once by the checks of
    :func:`probcast.ingest.grid_values.check_grid`); every other file goes through
    :func:`probcast.ingest.gridded.open_gridded` (names, units and times normalised; loaded
    into memory), then the same checks. Training and prediction read grids here.
    """
    from probcast.ingest.encoding import open_cf
    from probcast.ingest.grid_values import check_grid
    from probcast.ingest.gridded import open_gridded, sniff_format

    src = Path(os.fspath(path).removeprefix("reference://"))
    fmt = sniff_format(src)
    if fmt in ("netcdf4", "netcdf3", "zarr"):
        ds = open_cf(src, fmt, chunks={}, decode_timedelta=True)  # missing values as declared
        names = [str(v) for v in ds.data_vars if "grid_mapping_name" not in ds[v].attrs]
        canonical = {"latitude", "longitude", "forecast_reference_time", "forecast_period"}
        if (
            names
            and all(v.startswith((FC_PREFIX, OBS_PREFIX)) for v in names)
            and (
                canonical <= set(map(str, ds.variables))  # else names and times normalised
            )
        ):
            ds = check_grid(ds, str(src))  # units from the attribute, value checks
            return _rechunk(ds, chunks) if chunks is not None else ds.load()
        ds.close()
    ds = check_grid(open_gridded(path), str(src))
    return _rechunk(ds, chunks) if chunks is not None else ds


def _rechunk(ds: xr.Dataset, chunks: dict[str, int]) -> xr.Dataset:
    return ds.chunk({d: c for d, c in chunks.items() if d in ds.dims})
