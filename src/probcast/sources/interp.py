"""Grid values at stations: nearest grid point or bilinear interpolation.

``method: nearest`` (the default) takes the stations' nearest grid points. ``method:
bilinear`` interpolates between the four grid points around each station:

* regular latitude/longitude grids (1-D ``latitude`` and ``longitude``): xarray's
  ``interp`` (linear in latitude and longitude), with longitudes taken in the grid's
  convention (0..360 or -180..180) and a global grid wrapped across its seam;
* 2-D (projected, e.g. Lambert) grids with 2-D ``latitude``/``longitude``: the station's
  fractional grid index is found by Newton iterations on the bilinear map from index space
  to the grid's latitude/longitude (a local plane around the station), and the weights are
  the fractional parts of that index. On a grid that is regular in its projection this is
  bilinear interpolation in the projection's coordinates.

A station outside the grid (beyond its outermost points) gets NaN and is counted in the
cycle's notes (``N station(s) outside the grid``); it is never extrapolated.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from probcast.geo import is_global

METHODS = ("nearest", "bilinear")


def _regular_window(
    ds: xr.Dataset, lat: np.ndarray, lon: np.ndarray
) -> tuple[xr.Dataset, np.ndarray, np.ndarray]:
    """Sorted, longitude-aligned copy of ``ds`` and the station coordinates in it."""
    lo = str(ds["longitude"].dims[0])
    ds = ds.sortby(["latitude", "longitude"])
    glon = ds["longitude"].values.astype("float64")
    start = glon[0]
    slon = start + (np.asarray(lon, dtype="float64") - start) % 360.0
    if is_global(glon):
        # A global grid: repeat its first column 360 degrees on so the seam interpolates.
        seam = ds.isel({lo: [0]}).assign_coords(longitude=(lo, [glon[0] + 360.0]))
        ds = xr.concat([ds, seam], dim=lo, data_vars="minimal", coords="minimal")
    return ds, np.asarray(lat, dtype="float64"), slon


def bilinear_regular(
    ds: xr.Dataset, lat: np.ndarray, lon: np.ndarray
) -> tuple[xr.Dataset, np.ndarray]:
    """Bilinear values on a regular grid; ``(dataset with dim 'station', inside mask)``."""
    grid, slat, slon = _regular_window(ds, lat, lon)
    glat = grid["latitude"].values
    glon = grid["longitude"].values
    inside = (
        (slat >= glat.min()) & (slat <= glat.max()) & (slon >= glon.min()) & (slon <= glon.max())
    )
    la, lo = str(grid["latitude"].dims[0]), str(grid["longitude"].dims[0])
    if np.any(inside):  # load only the rows/columns around the stations
        i0 = max(int(np.searchsorted(glat, slat[inside].min())) - 1, 0)
        i1 = int(np.searchsorted(glat, slat[inside].max())) + 1
        j0 = max(int(np.searchsorted(glon, slon[inside].min())) - 1, 0)
        j1 = int(np.searchsorted(glon, slon[inside].max())) + 1
        grid = grid.isel({la: slice(i0, i1), lo: slice(j0, j1)})
    with xr.set_options(keep_attrs=True):
        out = grid.interp(
            {
                la: xr.DataArray(np.where(inside, slat, glat[0]), dims="station"),
                lo: xr.DataArray(np.where(inside, slon, glon[0]), dims="station"),
            },
            method="linear",
        )
        out = out.where(xr.DataArray(inside, dims="station"))
    return out.assign_coords(latitude=("station", slat), longitude=("station", slon)), inside


def _plane(
    lat2d: np.ndarray,
    lon2d: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    lat: np.ndarray,
    lon: np.ndarray,
) -> np.ndarray:
    """Grid points ``(i, j)`` in a local plane (degrees) centred on each station."""
    dx = ((lon2d[i, j] - lon + 180.0) % 360.0 - 180.0) * np.cos(np.radians(lat))
    dy = lat2d[i, j] - lat
    return np.stack([dx, dy], axis=-1)


def curvilinear_index(
    lat2d: np.ndarray, lon2d: np.ndarray, lat: np.ndarray, lon: np.ndarray, start: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fractional grid indices ``(fi, fj)`` of the stations and whether each is inside.

    Args:
        lat2d: Grid latitudes ``(ny, nx)``.
        lon2d: Grid longitudes ``(ny, nx)``.
        lat: Station latitudes.
        lon: Station longitudes.
        start: ``(n, 2)`` starting indices (the nearest grid points).
    """
    ny, nx = lat2d.shape
    fi = start[:, 0].astype("float64")
    fj = start[:, 1].astype("float64")
    resid = np.full(fi.shape, np.inf)
    for _ in range(8):
        i0 = np.clip(np.floor(fi).astype(int), 0, ny - 2)
        j0 = np.clip(np.floor(fj).astype(int), 0, nx - 2)
        a, b = (fi - i0)[:, None], (fj - j0)[:, None]
        c00 = _plane(lat2d, lon2d, i0, j0, lat, lon)
        c01 = _plane(lat2d, lon2d, i0, j0 + 1, lat, lon)
        c10 = _plane(lat2d, lon2d, i0 + 1, j0, lat, lon)
        c11 = _plane(lat2d, lon2d, i0 + 1, j0 + 1, lat, lon)
        p = (1 - a) * (1 - b) * c00 + (1 - a) * b * c01 + a * (1 - b) * c10 + a * b * c11
        da = (1 - b) * (c10 - c00) + b * (c11 - c01)
        db = (1 - a) * (c01 - c00) + a * (c11 - c10)
        det = da[:, 0] * db[:, 1] - da[:, 1] * db[:, 0]
        det = np.where(det == 0, np.nan, det)
        # Solve [da db] @ [d_a, d_b] = -p.
        step_a = -(p[:, 0] * db[:, 1] - p[:, 1] * db[:, 0]) / det
        step_b = -(da[:, 0] * p[:, 1] - da[:, 1] * p[:, 0]) / det
        fi = np.clip(fi + np.nan_to_num(step_a), -1.0, ny)
        fj = np.clip(fj + np.nan_to_num(step_b), -1.0, nx)
        resid = np.hypot(p[:, 0], p[:, 1])
    tol = 1e-6
    inside = (fi >= -tol) & (fi <= ny - 1 + tol) & (fj >= -tol) & (fj <= nx - 1 + tol)
    return fi, fj, inside & np.isfinite(resid)


def bilinear_curvilinear(
    ds: xr.Dataset, lat: np.ndarray, lon: np.ndarray, start: np.ndarray
) -> tuple[xr.Dataset, np.ndarray]:
    """Bilinear values on a 2-D grid; ``(dataset with dim 'station', inside mask)``."""
    lat2d = ds["latitude"].values.astype("float64")
    lon2d = ds["longitude"].values.astype("float64")
    ydim, xdim = (str(d) for d in ds["latitude"].dims)
    ny, nx = lat2d.shape
    fi, fj, inside = curvilinear_index(lat2d, lon2d, lat, lon, start)
    fi, fj = np.clip(fi, 0, ny - 1), np.clip(fj, 0, nx - 1)
    i0 = np.clip(np.floor(fi).astype(int), 0, ny - 2)
    j0 = np.clip(np.floor(fj).astype(int), 0, nx - 2)
    a = xr.DataArray(fi - i0, dims="station")
    b = xr.DataArray(fj - j0, dims="station")
    i1, j1 = i0.min(), j0.min()
    window = ds.isel({ydim: slice(i1, i0.max() + 2), xdim: slice(j1, j0.max() + 2)})
    window = window.drop_vars(["latitude", "longitude"]).load()

    def at(di: int, dj: int) -> xr.Dataset:
        return window.isel(
            {
                ydim: xr.DataArray(i0 - i1 + di, dims="station"),
                xdim: xr.DataArray(j0 - j1 + dj, dims="station"),
            }
        )

    with xr.set_options(keep_attrs=True):
        out = (
            at(0, 0) * (1 - a) * (1 - b)
            + at(0, 1) * (1 - a) * b
            + at(1, 0) * a * (1 - b)
            + at(1, 1) * a * b
        )
        out = out.where(xr.DataArray(inside, dims="station"))
    return out.assign_coords(latitude=("station", lat), longitude=("station", lon)), inside
