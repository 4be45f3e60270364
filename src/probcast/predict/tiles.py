"""One task per spatial tile: halo'd fields -> neighbourhood features -> station table -> model.

Each task receives its tile of every needed ``fc_*`` field with a halo of half the largest
neighbourhood window (``dask.array.overlap``, no padding at the grid edge), computes the
neighbourhood predictors there (:func:`probcast.align.neighbourhood.window_stat`, so the
values equal those of the whole grid), trims the halo, builds the tile's station table with
:func:`probcast.align.points.table_rows` (the training code path) and runs the model. Only the
output parameters (or members) leave the task, so memory is bounded by the tile size, not
the grid size. On ``point`` grids a task is one reference time and period of all points
(neighbours are the ``k**2`` nearest nodes, found once).
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import zlib
from pathlib import Path
from typing import Any

import dask.array as dsa
import numpy as np
import pandas as pd
import xarray as xr
from dask.callbacks import Callback

from probcast import progress
from probcast.align import points
from probcast.align.neighbourhood import feature_name, point_neighbours, point_stat, window_stat
from probcast.model.artefact import load
from probcast.model.predictor import PredictOptions, TrainedModel

FRT, FP, REALIZATION = points.FRT, points.FP, points.REALIZATION


@dataclasses.dataclass(frozen=True)
class GridPlan:
    """What the model predicts on a grid (picklable: the model is loaded from ``workdir``)."""

    workdir: str
    dims: tuple[str, ...]
    required: tuple[str, ...]
    same_grid: bool
    parametric: tuple[tuple[str, tuple[str, ...]], ...]
    generative: tuple[str, ...]
    members: int
    seed: int
    options: PredictOptions = dataclasses.field(default_factory=PredictOptions)

    @property
    def outputs(self) -> list[tuple[str, int]]:
        """Output variables with their number of layers (1, or members)."""
        out = [(f"{v}_{p}", 1) for v, names in self.parametric for p in names]
        return out + [(v, self.members) for v in self.generative]


@dataclasses.dataclass(frozen=True)
class TileSpec:
    """Static inputs of every tile task."""

    plan: GridPlan
    fields: tuple[str, ...]
    nbr_fields: tuple[str, ...]
    windows: tuple[int, ...]
    edges: tuple[int, ...]
    stats: tuple[str, ...]
    statics: tuple[str, ...]
    frt: np.ndarray
    fp: np.ndarray
    halo: int
    regular: bool
    neighbours: dict[int, np.ndarray] = dataclasses.field(default_factory=dict)


_LOCK = threading.Lock()


@functools.lru_cache(maxsize=4)
def _cached_model(workdir: str) -> TrainedModel:
    return load(workdir)


def cached_model(workdir: str) -> TrainedModel:
    """The model of ``workdir``, loaded once per process (cluster workers load their own)."""
    with _LOCK:
        return _cached_model(str(Path(workdir).resolve()))


def padded(table: pd.DataFrame, minimum: int = 1024) -> pd.DataFrame:
    """``table`` with its first row repeated up to the next power of two (>= ``minimum``).

    Tiles differ in their number of kept rows; the jitted network compiles once per input
    shape, so bucketing the row count bounds the compilations (time and memory).
    """
    n = len(table)
    size = max(minimum, 1 << max(0, n - 1).bit_length())
    rows = np.concatenate([np.arange(n), np.zeros(size - n, dtype=np.int64)])
    return table.take(rows)


def _block_seed(block: xr.Dataset, plan: GridPlan) -> int:
    first = [int(block[points.index_coord(d)].values[0]) for d in plan.dims]
    key = repr((plan.seed, first, block[FRT].values[0], block[FP].values[0]))
    return zlib.crc32(key.encode())


def predict_block(block: xr.Dataset, plan: GridPlan) -> np.ndarray:
    """Outputs ``(sum of layers, time, period, *tile)`` of one tile; NaN without raw forecast."""
    table, keep = points.table_rows(block, plan.required, ids=plan.same_grid)
    n = len(table)
    shape = tuple(block.sizes[d] for d in (FRT, FP, *plan.dims))
    out = np.full((sum(k for _, k in plan.outputs), keep.size), np.nan, dtype=np.float32)
    if not n:
        return out.reshape(-1, *shape)
    model = cached_model(plan.workdir).with_options(plan.options)
    table = padded(table)
    row = 0
    if plan.parametric:
        params = model.params(table)
        for var, names in plan.parametric:
            for name in names:
                out[row, keep] = params[var][name][:n]
                row += 1
    if plan.generative:
        ens = model.sample(table, plan.members, _block_seed(block, plan))
        for var in plan.generative:
            out[row : row + plan.members, keep] = ens[var][:n].T
            row += plan.members
    return out.reshape(-1, *shape)


def tile_chunks(n: int, tile: int, halo: int) -> tuple[int, ...]:
    """Chunk sizes along one axis: ``tile`` (at least ``halo``), the last merged if < halo."""
    tile = max(tile, halo, 1)
    sizes = [tile] * (n // tile) + ([n % tile] if n % tile else [])
    if len(sizes) > 1 and sizes[-1] < halo:
        last = sizes.pop()
        sizes[-1] += last
    return tuple(sizes)


def _tile_dataset(
    fields: np.ndarray,
    coords: list[np.ndarray],
    statics: list[np.ndarray],
    spec: TileSpec,
    loc: Any,
) -> xr.Dataset:
    """The tile as a canonical dataset with its neighbourhood features (halo trimmed)."""
    plan = spec.plan
    (t0, t1), (p0, p1), *spatial = loc
    if len(plan.dims) == 2:
        (y0, y1), (x0, x1) = spatial
        top = spec.halo if y0 > 0 else 0
        left = spec.halo if x0 > 0 else 0
        trim: tuple[Any, ...] = (..., slice(top, top + y1 - y0), slice(left, left + x1 - x0))
        offsets = [np.arange(y0, y1), np.arange(x0, x1)]
    else:
        trim, offsets = (..., slice(None)), [np.arange(*spatial[0])]
    dims = (FRT, FP, *plan.dims)
    data = {name: (dims, fields[i][trim]) for i, name in enumerate(spec.fields)}
    for i, field in enumerate(spec.fields):
        if field not in spec.nbr_fields:
            continue
        for k, edge in zip(spec.windows, spec.edges, strict=True):
            for stat in spec.stats:
                if spec.neighbours:
                    values = point_stat(fields[i], spec.neighbours[edge], stat)
                else:
                    values = window_stat(fields[i], edge, stat)[trim]
                data[feature_name(field, k, stat)] = (dims, values)
    lat, lon = coords
    geo: dict[str, Any]
    if spec.regular:
        geo = {"latitude": ("latitude", lat[:, 0]), "longitude": ("longitude", lon[0])}
    else:
        geo = {"latitude": (plan.dims, lat), "longitude": (plan.dims, lon)}
    ds = xr.Dataset(data, coords={FRT: spec.frt[t0:t1], FP: spec.fp[p0:p1], **geo})
    for name, values in zip(spec.statics, statics, strict=True):
        ds[name] = (plan.dims, values)
    return ds.assign_coords(
        {points.index_coord(d): (d, o) for d, o in zip(plan.dims, offsets, strict=True)}
    )


def _task(fields: np.ndarray, *arrays: np.ndarray, spec: TileSpec, block_info: Any = None) -> Any:
    loc = block_info[None]["array-location"][1:]
    tile = _tile_dataset(fields, list(arrays[:2]), list(arrays[2:]), spec, loc)
    out = predict_block(tile, spec.plan)
    TILE_PROGRESS.tick()
    return out


class TileProgress(Callback):
    """A progress bar over the tile tasks of local dask computations (threads or sync).

    Each tile task calls :meth:`tick` when done; the bar (total: the tiles of the latest
    :func:`tiled_outputs`) opens at the first tick of a running computation and closes when
    no computation runs any more. Registered by :func:`tiled_outputs` when bars are on
    (:mod:`probcast.progress`). A dask.distributed cluster has its own dashboard instead.
    """

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.total: int | None = None
        self._running = 0
        self._open: Any = None
        self._bar: Any = None

    def _start(self, dsk: Any) -> None:
        with self._lock:
            self._running += 1

    def tick(self) -> None:
        """One tile done (from the thread that computed it)."""
        with self._lock:
            if not self._running:
                return
            if self._bar is None:
                self._open = progress.bar("grid tiles", self.total)
                self._bar = self._open.__enter__()
            bar = self._bar
        bar.advance()

    def _finish(self, dsk: Any, state: Any, errored: bool) -> None:
        with self._lock:
            self._running -= 1
            if self._running or self._open is None:
                return
            opened, self._open, self._bar = self._open, None, None
        opened.__exit__(None, None, None)


TILE_PROGRESS = TileProgress()


def tiled_outputs(
    ds: xr.Dataset, spec: TileSpec, tile: int
) -> tuple[dsa.Array, tuple[tuple[int, ...], ...]]:
    """Lazy ``(layers, time, period, *grid)`` outputs, one task per tile.

    Args:
        ds: Prepared canonical dataset (:func:`probcast.align.points.prepare_fields`).
        spec: Tile inputs.
        tile: Tile edge in cells (2-D grids).

    Returns:
        The dask array and its spatial chunks.
    """
    dims = spec.plan.dims
    if len(dims) == 2:
        chunks = tuple(tile_chunks(ds.sizes[d], tile, spec.halo) for d in dims)
    else:
        chunks = ((ds.sizes[dims[0]],),)
    stacked = dsa.stack(
        [dsa.asarray(ds[f].transpose(FRT, FP, *dims).data) for f in spec.fields]
    ).rechunk((-1, 1, 1, *chunks))
    if spec.halo and len(dims) == 2:
        depth = {3: spec.halo, 4: spec.halo}
        stacked = dsa.overlap.overlap(stacked, depth=depth, boundary={3: "none", 4: "none"})
    lat, lon = points.node_latlon(ds, dims)
    arrays = [dsa.from_array(a, chunks=chunks) for a in (lat, lon)]
    arrays += [dsa.asarray(ds[s].transpose(*dims).data).rechunk(chunks) for s in spec.statics]
    layers = sum(k for _, k in spec.plan.outputs)
    if progress.enabled():
        TILE_PROGRESS.total = len(ds[FRT]) * len(ds[FP]) * int(np.prod([len(c) for c in chunks]))
        TILE_PROGRESS.register()
    out = dsa.map_blocks(
        _task,
        stacked,
        *arrays,
        spec=spec,
        chunks=((layers,), (1,) * ds.sizes[FRT], (1,) * ds.sizes[FP], *chunks),
        dtype=np.float32,
        meta=np.empty((0,) * (3 + len(dims)), dtype=np.float32),
    )
    return out, chunks


def point_neighbours_for(ds: xr.Dataset, edges: tuple[int, ...]) -> dict[int, np.ndarray]:
    """Neighbour indices of every node for each window edge (point grids)."""
    lat, lon = points.node_latlon(ds, points.spatial_dims(ds))
    return {e: point_neighbours(lat, lon, e * e) for e in edges}
