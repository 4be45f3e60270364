"""Values of a regular latitude/longitude grid at given points, reading only the cells used.

Gridded truth (ERA5, ARCO-ERA5) is a regular grid, often very large (ARCO-ERA5: 721 x 1440
points per hour, 1 PB in all). :func:`sample` computes, for every target point, the grid
cells it needs (one for ``nearest``, four for ``bilinear``) in index space, reads only those
rows and columns of a lazily opened dataset (orthogonal indexing: Zarr reads only the chunks
that hold them) and combines them. It works for any grid order and convention:

* latitude ascending or descending (ERA5 runs from 90 to -90);
* longitude 0..360 or -180..180, target longitudes in either convention; a global grid
  (columns spanning 360 degrees) wraps across its seam, a regional one does not;
* a target point outside the grid gets NaN (never extrapolated).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from probcast.geo import is_global
from probcast.sources.errors import SourceError

METHODS = ("nearest", "bilinear")


@dataclass
class Weights:
    """Cells and weights of every target point: ``value = sum_k w[k] * grid[iy[k], ix[k]]``."""

    iy: np.ndarray  # (k, n) grid rows
    ix: np.ndarray  # (k, n) grid columns
    w: np.ndarray  # (k, n) weights (sum 1)
    inside: np.ndarray  # (n,) bool


def _axis(values: np.ndarray, name: str, source: str) -> tuple[float, float]:
    values = np.asarray(values, dtype="float64")
    if values.ndim != 1 or values.size < 2:
        raise SourceError(f"{source}: {name}: expected a 1-D axis of at least 2 values")
    step = np.diff(values)
    if not np.allclose(step, step[0], rtol=1e-4, atol=1e-6) or step[0] == 0:
        raise SourceError(f"{source}: {name}: expected a regular axis (equal spacing)")
    return float(values[0]), float((values[-1] - values[0]) / (values.size - 1))


def weights(
    lat_axis: np.ndarray,
    lon_axis: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
    method: str = "bilinear",
    *,
    source: str = "<grid>",
) -> Weights:
    """Cells and weights of points ``(lat, lon)`` on the regular grid ``lat_axis x lon_axis``.

    Raises:
        SourceError: An irregular axis or an unknown method.
    """
    if method not in METHODS:
        raise SourceError(f"{source}: method {method!r} unknown; expected one of {METHODS}")
    lat0, dlat = _axis(lat_axis, "latitude", source)
    lon0, dlon = _axis(lon_axis, "longitude", source)
    ny, nx = len(lat_axis), len(lon_axis)
    wraps = is_global(lon_axis)
    fy = (np.asarray(lat, dtype="float64") - lat0) / dlat
    fx = ((np.asarray(lon, dtype="float64") - lon0) * np.sign(dlon)) % 360.0 / abs(dlon)
    eps = 1e-9
    inside = (fy >= -eps) & (fy <= ny - 1 + eps)
    if not wraps:
        inside &= fx <= nx - 1 + eps
    fy = np.clip(np.where(inside, fy, 0.0), 0.0, ny - 1)
    fx = np.where(inside, fx, 0.0)
    if method == "nearest":
        iy = np.rint(fy).astype(int)[None]
        ix = (np.rint(fx).astype(int) % nx)[None]
        return Weights(iy, ix, np.ones_like(fy)[None], inside)
    y0 = np.minimum(np.floor(fy).astype(int), ny - 2)
    x0 = np.floor(fx).astype(int)
    if not wraps:
        x0 = np.minimum(x0, nx - 2)
    ty, tx = fy - y0, fx - x0
    iy = np.stack([y0, y0, y0 + 1, y0 + 1])
    ix = np.stack([x0, x0 + 1, x0, x0 + 1]) % nx
    w = np.stack([(1 - ty) * (1 - tx), (1 - ty) * tx, ty * (1 - tx), ty * tx])
    return Weights(iy, ix, w, inside)


def sample(
    ds: xr.Dataset,
    lat: np.ndarray,
    lon: np.ndarray,
    method: str = "bilinear",
    *,
    source: str = "<grid>",
) -> xr.Dataset:
    """Every field of ``ds`` (dims ``..., latitude, longitude``) at the points (dim ``point``).

    Only the grid rows and columns around the points are read (and loaded); the other
    dimensions (e.g. ``time``) are kept as they are in ``ds``, so select them first.
    """
    wt = weights(ds["latitude"].values, ds["longitude"].values, lat, lon, method, source=source)
    rows, iy = np.unique(wt.iy, return_inverse=True)
    cols, ix = np.unique(wt.ix, return_inverse=True)
    iy, ix = iy.reshape(wt.iy.shape), ix.reshape(wt.ix.shape)
    sub = ds.isel(latitude=rows, longitude=cols).load()
    out = {}
    for name, da in sub.data_vars.items():
        if "latitude" not in da.dims or "longitude" not in da.dims:
            continue
        arr = np.asarray(da.transpose(..., "latitude", "longitude").values, dtype="float64")
        vals = (arr[..., iy, ix] * wt.w).sum(axis=-2)
        vals[..., ~wt.inside] = np.nan
        dims = [d for d in da.dims if d not in ("latitude", "longitude")]
        out[name] = xr.DataArray(vals, dims=[*dims, "point"], attrs=da.attrs)
    coords = {k: v for k, v in sub.coords.items() if "latitude" not in v.dims}
    coords = {k: v for k, v in coords.items() if "longitude" not in v.dims}
    return xr.Dataset(out, coords=coords)
