"""Gridded prediction: a trained model and a gridded forecast file -> CF product files.

Every grid point of every reference time and period is a row of the station model
(:mod:`probcast.align.points`). The grid is processed lazily, one dask task per spatial tile
and time (:mod:`probcast.predict.tiles`: halo'd fields -> neighbourhood predictors -> the
tile's station table -> the model), giving distribution parameters (parametric heads) or
members (generative heads). Those fields are written once to a temporary Zarr store next to
the output, then :mod:`probcast.products` builds and writes the products from it; memory
stays bounded by the tile size whatever the grid size.

Output: for ``--output=DIR/NAME.nc`` one file per product, ``DIR/NAME_<product>.nc``
(``parameters``, ``percentiles``, ``probabilities_<var>``, ``members``), all written to a
temporary folder first and moved into place only when every product is complete: a
failure leaves no partial file (and earlier outputs untouched).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import xarray as xr

from probcast.align import points
from probcast.align.neighbourhood import window_size
from probcast.model.artefact import TrainedModel
from probcast.predict import grid_output, tiles
from probcast.predict.grid_checks import GridPredictError, needed_inputs
from probcast.predict.tiles import GridPlan, cached_model

log = logging.getLogger(__name__)

FRT, FP, REALIZATION = points.FRT, points.FP, points.REALIZATION
DEFAULT_PERCENTILES = (5.0, 25.0, 50.0, 75.0, 95.0)
DEFAULT_TILE = 256
GENERATIVE_MEMBERS = 51
"""Members drawn for generative heads when ``members`` is 0."""


def make_plan(
    model: TrainedModel, ds: xr.Dataset, workdir: str, *, members: int, seed: int
) -> GridPlan:
    """Plan the tile tasks: heads, parameter names, whether this is the training grid."""
    from probcast import dists

    dims = points.spatial_dims(ds)
    grid = model.spec.grid or {}
    same = bool(grid) and grid.get("fingerprint") == points.grid_fingerprint(ds, dims)
    if not same and model.spec.stations and int(model.config.model.embed_dim) > 0:
        log.warning(
            "grid differs from the training grid: every point uses the unknown-station "
            "embedding (train with --config.model.embed_dim=0 for models meant for other grids)"
        )
    parametric = tuple(
        (v, tuple(dists.get(h).param_names)) for v, h in model.heads.items() if h != "generative"
    )
    generative = tuple(v for v, h in model.heads.items() if h == "generative")
    return GridPlan(
        workdir=workdir,
        dims=dims,
        required=tuple(f"fc_{v}" for v in model.targets),
        same_grid=same,
        parametric=parametric,
        generative=generative,
        members=members or GENERATIVE_MEMBERS,
        seed=seed,
    )


def predictive_fields(
    model: TrainedModel,
    ds: xr.Dataset,
    plan: GridPlan,
    *,
    source: str = "input",
    tile: int = DEFAULT_TILE,
) -> xr.Dataset:
    """Lazy parameter (and member) fields of the model on the grid of ``ds``.

    Args:
        model: Loaded model.
        ds: Canonical gridded forecast (numpy- or dask-backed).
        plan: From :func:`make_plan`.
        source: Name of the input for error messages.
        tile: Spatial tile edge in cells (2-D grids).

    Returns:
        ``<var>_<param>`` fields (and ``<var>`` members along ``realization``) on
        ``(forecast_reference_time, forecast_period, *grid)``, dask-backed, one task per
        tile and time.
    """
    need = needed_inputs(model, ds, source)
    prepared = points.prepare_fields(ds[need.fields + need.statics])
    edges = tuple(window_size(k, need.scale) for k in need.windows)
    if edges:
        log.info(
            "neighbourhood windows %s cells (trained as %s, spacing ratio %.3g)",
            list(edges),
            need.windows,
            need.scale,
        )
    two_d = len(plan.dims) == 2
    spec = tiles.TileSpec(
        plan=plan,
        fields=tuple(need.fields),
        nbr_fields=tuple(need.nbr_fields),
        windows=tuple(need.windows),
        edges=edges,
        stats=tuple(need.stats),
        statics=tuple(need.statics),
        frt=prepared[FRT].values,
        fp=prepared[FP].values,
        halo=max(edges) // 2 if edges and two_d else 0,
        regular=plan.dims == ("latitude", "longitude"),
        neighbours={} if two_d else tiles.point_neighbours_for(prepared, edges),
    )
    out, chunks = tiles.tiled_outputs(prepared, spec, tile)
    full = (FRT, FP, *plan.dims)
    fields: dict[str, Any] = {}
    row = 0
    for name, layers in plan.outputs:
        if layers == 1:
            fields[name] = (full, out[row])
        else:
            fields[name] = ((REALIZATION, *full), out[row : row + layers])
        row += layers
    keep = {
        k: v for k, v in prepared.coords.items() if set(v.dims) <= set(full) and k != "valid_time"
    }
    # Zarr needs equal chunks but a smaller last one; a merged last tile can be larger.
    uniform = {d: c[0] for d, c in zip(plan.dims, chunks, strict=True)}
    return xr.Dataset(fields, coords=keep).chunk(uniform)


@contextlib.contextmanager
def dask_scheduler(address: str | None) -> Iterator[Any]:
    """Use the dask.distributed cluster at ``address``, else the local threaded scheduler."""
    if address:
        from distributed import Client

        client = Client(address)
        try:
            yield client
        finally:
            client.close()
        return
    import dask

    with dask.config.set(scheduler="threads"):
        yield None


def _check_requests(
    model: TrainedModel, percentiles: Sequence[float], thresholds: Mapping[str, Any] | None
) -> None:
    bad = [p for p in percentiles if not 0.0 < float(p) < 100.0]
    if bad or list(percentiles) != sorted(set(percentiles)):
        raise GridPredictError(
            f"percentiles must be strictly increasing values in (0, 100), got {list(percentiles)}"
        )
    unknown = sorted(set(thresholds or {}) - set(model.targets))
    if unknown:
        raise GridPredictError(
            f"thresholds given for {unknown}, which the model does not predict "
            f"(targets: {model.targets})"
        )


def predict_grid(
    workdir: str | os.PathLike[str],
    source: str | os.PathLike[str],
    output: str | os.PathLike[str],
    *,
    members: int = 0,
    percentiles: Sequence[float] = DEFAULT_PERCENTILES,
    thresholds: Mapping[str, Sequence[float]] | None = None,
    params: bool = True,
    scheduler: str | None = None,
    tile: int = DEFAULT_TILE,
    seed: int = 0,
    inflevel: float = 0.99,
) -> dict[str, Path]:
    """Predict a whole gridded model run and write CF products.

    Args:
        workdir: Trained model workdir.
        source: Gridded forecast: NetCDF, Zarr, GRIB or kerchunk JSON (every reference
            time, period and needed variable is predicted).
        output: ``DIR/NAME.nc`` or ``.zarr``; products go to ``DIR/NAME_<product>.<ext>``.
        members: Members product size (0: none; generative heads then draw 51 members
            for their percentiles and probabilities).
        percentiles: Percentiles in % (empty: none).
        thresholds: Target -> exceedance thresholds (None: ``products.DEFAULT_THRESHOLDS``).
        params: Write the distribution parameters (parametric heads).
        scheduler: Address of a dask.distributed scheduler; default local threads.
        tile: Spatial tile edge in grid cells.
        seed: Seed of random member draws (generative heads).
        inflevel: Information kept by bit rounding (see :func:`probcast.products.write_products`).

    Returns:
        Product name -> written path.

    Raises:
        GridPredictError: The grid lacks what the model needs, or bad requests.
    """
    grid_output.product_paths(output, [])  # validate the name before any work
    workdir = str(Path(workdir).resolve())
    model = cached_model(workdir)
    _check_requests(model, percentiles, thresholds)
    ds = points.open_grid(source, chunks={})
    plan = make_plan(model, ds, workdir, members=members, seed=seed)
    fields = predictive_fields(model, ds, plan, source=str(source), tile=tile)
    sizes = {d: tile for d in plan.dims} if len(plan.dims) == 2 else {plan.dims[0]: tile * tile}
    prov = grid_output.Provenance(
        model_fingerprint=grid_output.model_fingerprint(workdir), input_files=(str(source),)
    )
    quiet = logging.getLogger("probcast.features")
    level = quiet.level
    quiet.setLevel(max(level, logging.WARNING))  # one "unseen stations" line per tile otherwise
    try:
        with dask_scheduler(scheduler), grid_output.staging(output) as folder:
            stored = grid_output.store_fields(fields, folder / "fields.zarr")
            if stored.sizes[FRT] == 1:  # one run: scalar reference time (IMPROVER, CF 2.4)
                stored = stored.squeeze(FRT)
            products = grid_output.grid_products(
                stored,
                model.heads,
                members=members,
                percentiles=percentiles,
                thresholds=thresholds,
                params=params,
                chunks={FRT: 1, FP: 1, **sizes},
                provenance=prov,
            )
            return grid_output.write_set(products, output, folder, inflevel=inflevel)
    finally:
        quiet.setLevel(level)


def run_grid(fv: Any, thresholds: Mapping[str, Sequence[float]] | None, start: float) -> str:
    """``probcast predict`` on a gridded input (parsed absl flags); one-line summary."""
    import time

    if fv.percentiles.strip():
        percentiles = [float(v) for v in fv.percentiles.split(",") if v.strip()]
    elif fv.quantiles.strip():
        percentiles = [100.0 * float(v) for v in fv.quantiles.split(",") if v.strip()]
    else:
        percentiles = list(DEFAULT_PERCENTILES)
    paths = predict_grid(
        fv.model,
        fv.input,
        fv.output,
        members=fv.members,
        percentiles=percentiles,
        thresholds=thresholds,
        params=fv.params,
        scheduler=fv.scheduler,
        tile=fv.tile,
        seed=fv.seed,
    )
    took = time.perf_counter() - start
    return f"wrote {', '.join(str(p) for p in paths.values())} in {took:.1f} s"
