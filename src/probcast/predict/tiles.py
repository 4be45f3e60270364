"""One task per spatial tile: halo'd fields -> neighbourhood features -> station table -> model.

Each task receives its tile of every needed ``fc_*`` field with a halo of half the largest
neighbourhood window (``dask.array.overlap``, no padding at the grid edge), computes the
neighbourhood predictors there (:func:`probcast.align.neighbourhood.window_stat`, so the
values equal those of the whole grid), trims the halo, builds the tile's station table with
:func:`probcast.align.points.table_rows` (the training code path) and predicts its rows as
station tables are predicted (:func:`predict_rows`: the network, or the fallbacks of
:mod:`probcast.model.fallback`). Only the outputs leave the task, so memory is bounded by
the tile size, not the grid size. On ``point`` grids a task is one reference time and
period of all points (neighbours are the ``k**2`` nearest nodes, found once).
"""

from __future__ import annotations

import dataclasses
import threading
import zlib
from typing import Any

import dask.array as dsa
import numpy as np
import pandas as pd
import xarray as xr
from dask.callbacks import Callback

from probcast import dists, progress
from probcast.align import points
from probcast.align.neighbourhood import feature_name, point_neighbours, point_stat, window_stat
from probcast.model.fallback import Filler, plan_rows
from probcast.model.predictor import ModelInputs, PredictOptions, TrainedModel
from probcast.predict.model_cache import cached_model
from probcast.products.table import SOURCES, clip_physical

FRT, FP, REALIZATION = points.FRT, points.FP, points.REALIZATION


SOURCE_CODE = {s: i for i, s in enumerate(SOURCES)}
"""``<var>_source`` label -> its code in the grid fields and products (CF ``flag_values``)."""


def source_field(var: str) -> str:
    """Name of the field of the source codes of ``var`` (:data:`SOURCE_CODE`)."""
    return f"{var}__source"


def exact_field(var: str, form: str) -> str:
    """Name of an exact ``percentile``, ``threshold`` or ``member`` field (layers first)."""
    return f"{var}__{form}"


@dataclasses.dataclass(frozen=True)
class GridPlan:
    """What the model predicts on a grid (picklable: the model is loaded from ``workdir``).

    Attributes:
        workdir: The model's workdir.
        dims: Spatial dimensions of the grid.
        required: Raw forecasts ``fc_<var>`` of the targets.
        same_grid: The training grid (station embeddings apply).
        parametric: Targets whose pooled parameters are their predictive distribution, with
            their parameter names: parameter fields.
        generative: Targets without parameter fields: generative heads and ``exact``.
        members: Members drawn per point for the generative heads.
        seed: Seed of the draws.
        options: Request-time options of the model.
        exact: Parametric heads whose forecast is not their family (a mixture of networks,
            a recalibrated target): percentiles, probabilities and members computed exactly.
        levels: Percentile levels in (0, 1) of the ``exact`` targets.
        thresholds: ``(target, thresholds)`` of the ``exact`` targets' probabilities.
        exact_members: Members of the ``exact`` targets: quantiles at ``i / (n + 1)`` (ECC-Q).
    """

    workdir: str
    dims: tuple[str, ...]
    required: tuple[str, ...]
    same_grid: bool
    parametric: tuple[tuple[str, tuple[str, ...]], ...]
    generative: tuple[str, ...]
    members: int
    seed: int
    options: PredictOptions = dataclasses.field(default_factory=PredictOptions)
    exact: tuple[str, ...] = ()
    levels: tuple[float, ...] = ()
    thresholds: tuple[tuple[str, tuple[float, ...]], ...] = ()
    exact_members: int = 0

    @property
    def drawn(self) -> tuple[str, ...]:
        """Targets given as drawn members (generative heads)."""
        return tuple(v for v in self.generative if v not in self.exact)

    @property
    def outputs(self) -> list[tuple[str, str | None, int]]:
        """Output fields: name, layer dimension (``None``: one layer) and layers."""
        out: list[tuple[str, str | None, int]] = [
            (f"{v}_{p}", None, 1) for v, names in self.parametric for p in names
        ]
        out += [(v, REALIZATION, self.members) for v in self.drawn]
        probs = dict(self.thresholds)
        for var in self.exact:
            k = {"percentile": len(self.levels), "threshold": len(probs.get(var, ()))}
            k["member"] = self.exact_members
            out += [(exact_field(var, f), f"{f}_{var}", n) for f, n in k.items() if n]
        return out + [(source_field(v.removeprefix("fc_")), None, 1) for v in self.required]


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
    """Outputs ``(sum of layers, time, period, *tile)`` of one tile.

    A point without any raw forecast of a target (a masked area) is NaN and ``missing``
    for every target, and not predicted.
    """
    table, _ = points.table_rows(block, (), ids=plan.same_grid)
    shape = tuple(block.sizes[d] for d in (FRT, FP, *plan.dims))
    out = np.full((sum(k for *_, k in plan.outputs), len(table)), np.nan, dtype=np.float32)
    has = np.isfinite(table[list(plan.required)].to_numpy(dtype="float64")).any(axis=1)
    values: dict[str, np.ndarray] = {}
    if has.any():
        model = cached_model(plan.workdir).with_options(plan.options)
        rows = table if has.all() else table[has]
        values = predict_rows(model, rows.reset_index(drop=True), plan, _block_seed(block, plan))
    row = 0
    for name, _, k in plan.outputs:
        if name in values:
            out[row : row + k, has] = values[name].T
        if name.endswith(source_field("")):
            out[row, ~has] = SOURCE_CODE["missing"]
        row += k
    return out.reshape(-1, *shape)


def predict_rows(
    model: TrainedModel, table: pd.DataFrame, plan: GridPlan, seed: int
) -> dict[str, np.ndarray]:
    """The plan's outputs of the rows of ``table``, ``(rows, layers)`` by output name.

    Per row and target exactly what :func:`probcast.predict.station.predict_stations` gives
    the row (one shared rule, :func:`probcast.model.fallback.plan_rows`): the network where
    it has every input, else local EMOS, the dressed raw forecast or NaN, with the source.
    """
    rows = plan_rows(model.spec.derive(table), model.spec, model.heads, model.blend, refuse=False)
    fill, m = rows.filler(), len(rows.use)
    inputs = model.inputs(padded(rows.network_rows)) if m else None
    out = {
        source_field(v): np.vectorize(SOURCE_CODE.get, otypes=[np.float32])(labels)[:, None]
        for v, labels in rows.sources.items()
    }
    if plan.parametric:
        params = model.params(inputs) if inputs is not None else {}
        for var, names in plan.parametric:
            given = {k: params[var][k][:m] if m else np.zeros(0, np.float32) for k in names}
            out.update({f"{var}_{k}": v[:, None] for k, v in fill.params(var, given).items()})
    if plan.drawn:
        n = plan.members
        ens = model.sample(inputs, n, seed) if inputs is not None else {}
        for var in plan.drawn:
            part = ens[var][:m] if m else np.zeros((0, n), np.float32)
            out[var] = fill(var, part, "members", n, seed)
    if plan.exact:
        out.update(_exact_outputs(model, inputs, m, fill, plan))
    return out


def _exact_outputs(
    model: TrainedModel, inputs: ModelInputs | None, m: int, fill: Filler, plan: GridPlan
) -> dict[str, np.ndarray]:
    """Quantiles (percentiles, then member levels) and probabilities of the exact targets."""
    n = plan.exact_members
    levels = [*plan.levels, *(i / (n + 1) for i in range(1, n + 1))]
    probs = {v: ts for v, ts in plan.thresholds if v in plan.exact}
    if any(dists.is_generative(h) for h in model.heads.values()):
        # .quantiles also draws generative members: one (unused; parametric heads get no noise)
        options = dataclasses.replace(model.options, quantile_members=1)
        model = model.with_options(options)
    qs = model.quantiles(inputs, levels) if inputs is not None and levels else {}
    ps = model.exceedance(inputs, probs) if inputs is not None and probs else {}
    out = {}
    k = len(plan.levels)
    for var in plan.exact:
        if levels:
            part = qs[var][:m] if m else np.zeros((0, len(levels)), np.float32)
            values, _ = clip_physical(var, fill(var, part, "quantiles", levels))
            if k:
                out[exact_field(var, "percentile")] = values[:, :k]
            if n:
                out[exact_field(var, "member")] = values[:, k:]
        if var in probs:
            part = ps[var][:m] if m else np.zeros((0, len(probs[var])), np.float32)
            out[exact_field(var, "threshold")] = fill(var, part, "exceedance", probs[var])
    return out


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
    layers = sum(k for *_, k in spec.plan.outputs)
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
