"""NetCDF/Zarr forecast files (and kerchunk ``refs.json``) of an archive, sampled at stations.

Files are opened lazily (xarray; remote through fsspec; references through
:mod:`probcast.sources.refs`), their time axes normalised to ``forecast_reference_time`` x
``forecast_period`` by :mod:`probcast.ingest.normalise`, and only the stations' nearest grid
points (or, with ``method="bilinear"``, the cells around them) of the wanted cycle are loaded.
Accumulated ``tp`` in these files is taken as accumulated since initialisation (the ECMWF
convention, and what cfgrib writes for ECMWF ``tp``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from scipy.spatial import cKDTree

from probcast.geo import unit_vectors
from probcast.ingest.encoding import open_cf
from probcast.ingest.normalise import FP, FRT, normalise, tidy_dims, to_time_axes
from probcast.sources import fs, interp
from probcast.sources.cycle import CycleFields
from probcast.sources.errors import SourceError
from probcast.sources.refs import is_refs, open_refs
from probcast.sources.variables import G0


def _open(url: str, storage_options: dict[str, Any]) -> xr.Dataset:
    if is_refs(url):
        return open_refs(url, storage_options)
    fsys, path = fs.filesystem(url, storage_options)
    try:
        if url.rstrip("/").endswith(".zarr"):  # (missing values as declared: ingest.encoding)
            return open_cf(fsys.get_mapper(path), "zarr", chunks={}, decode_timedelta=True)
        local = "file" in (fsys.protocol if isinstance(fsys.protocol, tuple) else (fsys.protocol,))
        if local:
            return open_cf(path, "netcdf4", decode_timedelta=True)
        return open_cf(fsys.open(path, "rb"), "netcdf4", engine="h5netcdf", decode_timedelta=True)
    except (OSError, ValueError) as err:
        raise SourceError(f"{url}: cannot open as NetCDF/Zarr ({err})") from None


def nearest_indexers(ds: xr.Dataset, lat: np.ndarray, lon: np.ndarray) -> dict[str, xr.DataArray]:
    """Indexers (``isel``) of the stations' nearest grid points (dimension ``station``).

    1-D axes: the nearest row and the nearest column (longitudes compared modulo 360). 2-D
    coordinates: grid points and stations as unit vectors in a cKDTree, so the distance is
    the chord on the sphere whatever the longitude convention of either (a 0..360 HRRR
    grid with -180..180 stations) and a degree of longitude counts ``cos(lat)`` of one of
    latitude.
    """
    la, lo = ds["latitude"], ds["longitude"]
    if la.ndim == 1 and lo.ndim == 1:
        lon_grid = lo.values % 360.0
        iy = np.abs(la.values[None, :] - lat[:, None]).argmin(axis=1)
        dlon = np.abs(((lon_grid[None, :] - (lon[:, None] % 360.0)) + 180.0) % 360.0 - 180.0)
        ix = dlon.argmin(axis=1)
        return {
            str(la.dims[0]): xr.DataArray(iy, dims="station"),
            str(lo.dims[0]): xr.DataArray(ix, dims="station"),
        }
    tree = cKDTree(unit_vectors(la.values.ravel(), lo.values.ravel()))
    _, flat = tree.query(unit_vectors(lat, lon))
    iy, ix = np.unravel_index(flat, la.shape)
    return {
        str(la.dims[0]): xr.DataArray(iy, dims="station"),
        str(la.dims[1]): xr.DataArray(ix, dims="station"),
    }


HALF_CELL = 0.5
"""How far (in grid cells) beyond the outermost grid points ``nearest`` still samples."""


def on_grid(
    ds: xr.Dataset, lat: np.ndarray, lon: np.ndarray, idx: dict[str, xr.DataArray]
) -> np.ndarray:
    """Which stations lie on the grid (nearest-node sampling never extrapolates).

    The test of the ``bilinear`` path (:mod:`probcast.sources.interp`) widened by half a
    grid cell, the reach of the outermost nodes: within half a grid step of the edges of
    1-D axes (all longitudes on a global grid); on 2-D coordinates, a fractional grid index
    (:func:`probcast.sources.interp.curvilinear_index`, from the nearest node) within half
    a cell of the grid, and the nearest node no farther than its farthest neighbour (a
    guard for far-away stations). A station outside would otherwise take the value of the
    nearest edge node (Oslo from a grid over India).
    """
    la, lo = ds["latitude"], ds["longitude"]
    lat, lon = np.asarray(lat, dtype="float64"), np.asarray(lon, dtype="float64")
    if la.ndim == 1 and lo.ndim == 1:
        ya, xa = np.asarray(la.values, dtype="float64"), np.asarray(lo.values, dtype="float64")
        half_y = np.median(np.abs(np.diff(ya))) * HALF_CELL if ya.size > 1 else 0.0
        half_x = np.median(np.abs(np.diff(xa))) * HALF_CELL if xa.size > 1 else 0.0
        inside = (lat >= ya.min() - half_y) & (lat <= ya.max() + half_y)
        span = (xa.max() - xa.min()) + 2 * half_x
        if span < 360.0 - 1e-6:  # a regional grid: longitudes in its window (either convention)
            rel = (lon - xa.min() + half_x) % 360.0
            inside &= rel <= span
        return inside
    ys, xs = (np.asarray(v.values) for v in idx.values())
    grid_la, grid_lo = np.asarray(la.values, "float64"), np.asarray(lo.values, "float64")
    ny, nx = grid_la.shape
    xyz = unit_vectors(grid_la, grid_lo)
    node = xyz[ys, xs]
    reach = np.zeros(len(lat))
    for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        y2, x2 = np.clip(ys + dy, 0, ny - 1), np.clip(xs + dx, 0, nx - 1)
        reach = np.maximum(reach, np.linalg.norm(xyz[y2, x2] - node, axis=-1))
    inside = np.linalg.norm(unit_vectors(lat, lon) - node, axis=-1) <= reach
    if ny > 1 and nx > 1:
        start = np.column_stack([ys, xs])
        fi, fj, _ = interp.curvilinear_index(grid_la, grid_lo, lat, lon, start)
        inside &= (fi >= -HALF_CELL) & (fi <= ny - 1 + HALF_CELL)
        inside &= (fj >= -HALF_CELL) & (fj <= nx - 1 + HALF_CELL)
    return inside


def sample(
    ds: xr.Dataset, lat: np.ndarray, lon: np.ndarray, method: str
) -> tuple[xr.Dataset, np.ndarray]:
    """``ds`` at the stations (dimension ``station``) and which stations are on the grid.

    Stations off the grid (:func:`on_grid` for ``nearest``, the interpolation's own test for
    ``bilinear``) get NaN in every field, never the value of the nearest edge node.
    """
    idx = nearest_indexers(ds, lat, lon)
    if method == "nearest":
        inside = on_grid(ds, lat, lon, idx)
        sub, mask = ds.isel(idx), xr.DataArray(inside, dims="station")
        with xr.set_options(keep_attrs=True):  # outside: NaN, as the bilinear path gives
            masked = {k: v.where(mask) for k, v in sub.data_vars.items() if "station" in v.dims}
        return sub.assign(masked), inside
    if ds["latitude"].ndim == 1:
        return interp.bilinear_regular(ds, lat, lon)
    start = np.column_stack([v.values for v in idx.values()])
    return interp.bilinear_curvilinear(ds, lat, lon, start)


def _orography(ds: xr.Dataset) -> np.ndarray | None:
    """Model surface height (m) from ``orog`` (m) or geopotential ``z`` (m2 s-2)."""
    for name, scale in (("orog", 1.0), ("z", 1.0 / G0)):
        if name in ds.data_vars and ds[name].attrs.get("GRIB_typeOfLevel", "surface") == "surface":
            da = ds[name].transpose(..., "station")
            values = np.asarray(da.values, dtype="float64").reshape(-1, ds.sizes["station"])
            finite = [row for row in values if np.isfinite(row).any()]
            if finite:
                return finite[0] * scale
    return None


class XarrayFiles:
    """The NetCDF/Zarr files (and kerchunk reference files) of an archive.

    Args:
        urls: Files.
        storage_options: fsspec options.
        method: ``nearest`` or ``bilinear`` (see :mod:`probcast.sources.interp`).
    """

    def __init__(
        self, urls: Sequence[str], storage_options: dict[str, Any], method: str = "nearest"
    ) -> None:
        if method not in interp.METHODS:
            raise SourceError(f"nwp.method: {method!r} unknown; expected one of {interp.METHODS}")
        self.urls = list(urls)
        self.storage_options = storage_options
        self.method = method
        self._open: dict[str, xr.Dataset] = {}

    def dataset(self, url: str) -> xr.Dataset:
        """The file with normalised time axes (opened once)."""
        if url not in self._open:
            self._open[url] = to_time_axes(tidy_dims(_open(url, self.storage_options)), Path(url))
        return self._open[url]

    def init_times(self) -> list[pd.Timestamp]:
        """Every initialisation in the files."""
        out = []
        for url in self.urls:
            out += [pd.Timestamp(t, tz="UTC") for t in self.dataset(url)[FRT].values]
        return out

    def add_cycle(
        self,
        out: CycleFields,
        init: pd.Timestamp,
        leads: Sequence[float],
        variables: Sequence[str],
        lat: np.ndarray,
        lon: np.ndarray,
    ) -> None:
        """Add the station values of cycle ``init`` found in the files to ``out``."""
        key = np.datetime64(init.tz_convert("UTC").tz_localize(None), "ns")
        for url in self.urls:
            ds = self.dataset(url)
            if key not in ds[FRT].values:
                continue
            lat, lon = np.asarray(lat, dtype="float64"), np.asarray(lon, dtype="float64")
            sub, inside = sample(ds.sel({FRT: key}), lat, lon, self.method)
            sub = sub.load()
            if not inside.all():
                out.missing.append(
                    f"{url}: {int((~inside).sum())} station(s) outside the grid (NaN)"
                )
            orog = _orography(sub)
            if orog is not None:
                out.orog = orog
            sub = normalise(sub, Path(url), role="forecast")
            hours = sub[FP].values / np.timedelta64(1, "h")
            for name, da in sub.data_vars.items():
                var = str(name).removeprefix("fc_")
                if var not in variables and var != "orog":
                    continue
                for i, step in enumerate(hours):
                    values = np.asarray(da.isel({FP: i}).values, dtype="float64")
                    if var == "tp":
                        out.windows.setdefault(var, {})[(0.0, float(step))] = values
                    else:
                        out.instant.setdefault(var, {})[float(step)] = values
