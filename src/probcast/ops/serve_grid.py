"""Gridded cycles in ``probcast serve``: the station-table rows of a few grid points.

A grid point's rows are built by the training code path
(:func:`probcast.align.points.grid_to_table`) on a box around the point just large enough for
the model's neighbourhood windows (the whole grid on ``point`` grids, whose neighbours are the
nearest nodes), so they equal the rows of the whole grid. Grid points are stations ``y<j>x<i>``
(2-D grids) or ``p<n>`` (``point`` grids), as in tables built from grids.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from probcast.align import points
from probcast.align.neighbourhood import window_size
from probcast.ops.serve_points import CycleInput, NodeIndex

GRID_REACH = 1.0
"""How far (in grid spacings) from its nearest node a point of a 2-D grid is answered: a
point inside the grid is at most 0.71 spacings from one; farther, it lies outside the grid."""


def node_ids(ds: xr.Dataset, dims: Sequence[str]) -> np.ndarray:
    """Station id of every node, in C order (``y<j>x<i>`` or ``p<n>``, global indices)."""
    idx = [
        ds[points.index_coord(d)].values
        if points.index_coord(d) in ds.coords
        else np.arange(ds.sizes[d])
        for d in dims
    ]
    if len(dims) == 1:
        return np.array([f"p{n}" for n in idx[0]], dtype=object)
    jj, ii = np.meshgrid(idx[0], idx[1], indexing="ij")
    pairs = zip(jj.ravel(), ii.ravel(), strict=True)
    return np.array([f"y{j}x{i}" for j, i in pairs], dtype=object)


def read_grid(path: Path) -> CycleInput:
    """Open a gridded cycle input and index its nodes."""
    ds = points.open_grid(path)
    dims = points.spatial_dims(ds)
    lat, lon = points.node_latlon(ds, dims)
    for d in dims:  # global indices, kept by the boxes cut out of the grid
        if points.index_coord(d) not in ds.coords:
            ds = ds.assign_coords({points.index_coord(d): (d, np.arange(ds.sizes[d]))})
    index = NodeIndex(node_ids(ds, dims), lat.ravel(), lon.ravel(), what="grid point")
    reach = GRID_REACH * points.spacing_km(ds, dims) if len(dims) == 2 else float("inf")
    return CycleInput("grid", index, dataset=ds, extra={"dims": dims, "reach_km": reach})


def node_rows(
    ds: xr.Dataset,
    nodes: Sequence[int],
    *,
    windows: Sequence[int] = (),
    stats: Sequence[str] = points.STATS,
    scale: float = 1.0,
    required: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Station-table rows of the grid points ``nodes`` (flat C-order positions).

    Args:
        ds: Canonical grid with ``grid_index_<dim>`` coordinates (:func:`read_grid`).
        nodes: Positions of the grid points.
        windows: Neighbourhood windows of the model (cells of its training grid).
        stats: Neighbourhood statistics.
        scale: Training grid spacing / this grid's spacing.
        required: Fields whose NaN drops a row (default: raw forecasts of canonical variables).

    Returns:
        The rows (masked points have none), in the order of ``nodes`` (each once).
    """
    dims = points.spatial_dims(ds)
    ids = node_ids(ds, dims)
    wanted = list(dict.fromkeys(int(n) for n in nodes))
    if len(dims) == 1:
        table = points.grid_to_table(ds, neighbourhood=windows, stats=stats, scale=scale)
        rows = table[table["station"].isin(set(ids[wanted]))]
        order = {s: k for k, s in enumerate(ids[wanted])}
        return rows.sort_values("station", key=lambda s: s.map(order), kind="stable")
    edges = [window_size(k, scale) for k in windows]
    halo = max(edges) // 2 if edges else 0
    shape = tuple(ds.sizes[d] for d in dims)
    parts = []
    for node in wanted:
        j, i = np.unravel_index(node, shape)
        box = ds.isel(
            {
                dims[0]: slice(max(0, int(j) - halo), int(j) + halo + 1),
                dims[1]: slice(max(0, int(i) - halo), int(i) + halo + 1),
            }
        )
        table = points.grid_to_table(
            box, neighbourhood=windows, stats=stats, scale=scale, required=required
        )
        parts.append(table[table["station"] == ids[node]])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def model_rows(cycle: CycleInput, nodes: Sequence[int], model: Any, source: str) -> pd.DataFrame:
    """Rows of ``nodes`` with the fields, statics and neighbourhood predictors ``model`` needs.

    Raises:
        probcast.predict.grid_checks.GridPredictError: The grid lacks what the model needs.
    """
    from probcast.predict.grid_checks import needed_inputs

    need = cycle.extra.get("needs")
    if need is None:  # the value checks read the whole grid: once per cycle input
        need = needed_inputs(model, cycle.dataset, source)
        cycle.extra["needs"] = need
    ds = cycle.dataset[need.fields + need.statics]
    return node_rows(
        ds,
        nodes,
        windows=need.windows,
        stats=need.stats,
        scale=need.scale,
        required=[f"fc_{v}" for v in model.targets],
    )
