"""Neighbourhood statistics of gridded fields: mean, max and std over k x k windows.

On 2-D grids (``(y, x)`` or ``(latitude, longitude)``) a window is ``k x k`` grid cells
centred on each node; on 1-D ``point`` grids (scattered or reduced-Gaussian nodes) it is the
``k**2`` nearest nodes (a ``cKDTree`` on 3-D unit vectors, the node itself included). All
statistics ignore NaN: the mean and standard deviation are over the finite values in the
window (the standard deviation is the population one, ``sqrt(E[x^2] - E[x]^2)``), the
maximum is the largest finite value, and a window without any finite value gives NaN.
Windows are truncated at the grid edge (no padding values enter the statistics), so a
field split into tiles with a halo of ``k // 2`` cells gives the same values as the whole
field: :func:`neighbourhood_fields` relies on that for dask-backed (lazy) fields.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr
from scipy import ndimage
from scipy.spatial import cKDTree

STATS = ("mean", "max", "std")
MAX_POINT_NEIGHBOURS = 4096
"""Largest neighbour count of a point-grid window (memory guard)."""


def window_size(k: int, scale: float = 1.0) -> int:
    """Odd window edge closest to ``k * scale`` cells (at least 1).

    ``scale`` is training spacing / grid spacing: a window trained as ``k`` cells on one
    grid covers the same distance on a grid with another spacing.
    """
    return max(1, 2 * int(np.floor((k * scale - 1.0) / 2.0 + 0.5)) + 1)


def check_windows(windows: Sequence[int]) -> list[int]:
    """Validate window edges: odd integers >= 3, no duplicates.

    Raises:
        ValueError: Naming the offending values.
    """
    out = [int(k) for k in windows]
    bad = [k for k in out if k < 3 or k % 2 == 0]
    if bad or len(set(out)) != len(out):
        raise ValueError(
            f"neighbourhood windows must be distinct odd integers >= 3 (cells), got {list(windows)}"
        )
    return out


def check_stats(stats: Sequence[str]) -> list[str]:
    """Validate statistic names against :data:`STATS`."""
    out = [str(s) for s in stats]
    bad = [s for s in out if s not in STATS]
    if bad:
        raise ValueError(f"unknown neighbourhood statistics {bad}; expected some of {STATS}")
    return out


def feature_name(field: str, k: int, stat: str) -> str:
    """Column name of a neighbourhood feature: ``fc_<var>_nbr<k>_<stat>``."""
    return f"{field}_nbr{k}_{stat}"


def _box_sum(a: np.ndarray, k: int) -> np.ndarray:
    """Sum over ``k x k`` windows of the last two axes, truncated at the edges.

    ``correlate1d`` sums each window directly (``uniform_filter`` keeps a running sum
    whose rounding depends on where a row starts), so a tile with a halo gives exactly
    the whole grid's values and an all-zero window sums to exactly 0.
    """
    ones = np.ones(k)
    rows = ndimage.correlate1d(a, ones, axis=-1, mode="constant", cval=0.0)
    return ndimage.correlate1d(rows, ones, axis=-2, mode="constant", cval=0.0)


def window_stat(values: np.ndarray, k: int, stat: str) -> np.ndarray:
    """NaN-aware ``stat`` over ``k x k`` windows of the last two axes of ``values``."""
    a = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(a)
    if stat == "max":
        size = (1,) * (a.ndim - 2) + (k, k)
        high = ndimage.maximum_filter(
            np.where(finite, a, -np.inf), size=size, mode="constant", cval=-np.inf
        )
        return np.where(np.isfinite(high), high, np.nan)
    zero = np.where(finite, a, 0.0)
    # Truncated windows: divide by the number of finite values actually inside.
    count = _box_sum(finite.astype(np.float64), k)
    ok = count > 0.5
    denom = np.where(ok, count, 1.0)
    mean = _box_sum(zero, k) / denom
    if stat == "mean":
        return np.where(ok, mean, np.nan)
    second = _box_sum(zero * zero, k) / denom
    return np.where(ok, np.sqrt(np.maximum(second - mean * mean, 0.0)), np.nan)


def point_neighbours(lat: np.ndarray, lon: np.ndarray, k: int) -> np.ndarray:
    """Indices ``(n, k)`` of the ``k`` nearest nodes of each node (itself first).

    Raises:
        ValueError: If the grid has fewer than ``k`` nodes or ``k`` is too large.
    """
    la, lo = np.deg2rad(np.asarray(lat, "float64")), np.deg2rad(np.asarray(lon, "float64"))
    nodes = np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)
    if k > nodes.shape[0] or k > MAX_POINT_NEIGHBOURS:
        raise ValueError(
            f"a point-grid neighbourhood of {k} nodes needs at most "
            f"min({nodes.shape[0]} grid nodes, {MAX_POINT_NEIGHBOURS}) nodes"
        )
    _, idx = cKDTree(nodes).query(nodes, k=k)
    return np.asarray(idx, dtype=np.int64).reshape(nodes.shape[0], k)


def point_stat(values: np.ndarray, neighbours: np.ndarray, stat: str) -> np.ndarray:
    """NaN-aware ``stat`` over the neighbours (``(n, k)`` indices) along the last axis."""
    a = np.asarray(values, dtype=np.float64)
    out = np.empty(a.shape, dtype=np.float64)
    lead = a.reshape(-1, a.shape[-1])
    flat = out.reshape(-1, a.shape[-1])
    # Row by row keeps the gathered (n, k) block small whatever the number of times.
    for i, row in enumerate(lead):
        win = row[neighbours]
        finite = np.isfinite(win)
        count = finite.sum(axis=1)
        ok = count > 0
        if stat == "max":
            res = np.where(finite, win, -np.inf).max(axis=1)
        else:
            zero = np.where(finite, win, 0.0)
            mean = zero.sum(axis=1) / np.maximum(count, 1)
            res = mean
            if stat == "std":
                second = (zero * zero).sum(axis=1) / np.maximum(count, 1)
                res = np.sqrt(np.maximum(second - mean * mean, 0.0))
        flat[i] = np.where(ok, res, np.nan)
    return out


def neighbourhood_fields(
    ds: xr.Dataset,
    fields: Sequence[str],
    spatial: Sequence[str],
    windows: Sequence[int],
    stats: Sequence[str] = STATS,
    *,
    scale: float = 1.0,
) -> xr.Dataset:
    """Add ``<field>_nbr<k>_<stat>`` variables to ``ds`` (computed in memory).

    Args:
        ds: Gridded dataset whose ``fields`` end with the ``spatial`` dims.
        fields: Variables to summarise.
        spatial: ``("y", "x")``, ``("latitude", "longitude")`` or ``("point",)``.
        windows: Window edges ``k`` in cells of the training grid (names use these).
        stats: Statistics among :data:`STATS`.
        scale: Training spacing / this grid's spacing; the windows actually used are
            :func:`window_size` ``(k, scale)`` cells (or its square in nodes on point grids).

    Returns:
        A shallow copy of ``ds`` with the new variables.
    """
    stats = check_stats(stats)
    out = ds.copy()
    for k in check_windows(windows):
        edge = window_size(k, scale)
        nbrs = None
        if len(spatial) == 1:
            nbrs = point_neighbours(ds["latitude"].values, ds["longitude"].values, edge * edge)
        for field in fields:
            da = ds[field].transpose(..., *spatial)
            for stat in stats:
                if nbrs is not None:
                    values = point_stat(da.values, nbrs, stat)
                else:
                    values = window_stat(da.values, edge, stat)
                out[feature_name(field, k, stat)] = (da.dims, values)
    return out
