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
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import xarray as xr

from probcast import defaults, dists
from probcast.align import points
from probcast.align.neighbourhood import window_size
from probcast.ingest.grid_values import check_grid
from probcast.model.predictor import TrainedModel
from probcast.predict import grid_output, tiles
from probcast.predict.grid_checks import GridPredictError, needed_inputs
from probcast.predict.grid_domain import check_domain
from probcast.predict.request import PredictRequest
from probcast.predict.tiles import GridPlan, cached_model
from probcast.products.units import canonical_thresholds, check_units_for, products_to_units

log = logging.getLogger(__name__)

FRT, FP, REALIZATION = points.FRT, points.FP, points.REALIZATION


def make_plan(
    model: TrainedModel, ds: xr.Dataset, workdir: str, *, members: int, seed: int
) -> GridPlan:
    """Plan the tile tasks: what each head gives, whether this is the training grid.

    A parametric head gives its parameter fields when they are its predictive distribution
    (one network, or several pooled by quantile averaging: the request's ``combine``);
    otherwise (a mixture of networks) it gives members drawn from the pool, like a
    generative head: ``members`` of them, at least :data:`probcast.defaults.MEMBERS`.
    """
    dims = points.spatial_dims(ds)
    grid = model.spec.grid or {}
    same = bool(grid) and grid.get("fingerprint") == points.grid_fingerprint(ds, dims)
    if not same and model.spec.stations and int(model.config.model.embed_dim) > 0:
        log.warning(
            "grid differs from the training grid: every point uses the unknown-station "
            "embedding (train with --config.model.embed_dim=0 for models meant for other grids)"
        )
    exact = [v for v in model.targets if model.pooled_params_are_predictive(v)]
    parametric = tuple((v, tuple(dists.get(model.heads[v]).param_names)) for v in exact)
    sampled = tuple(v for v in model.targets if v not in exact)
    return GridPlan(
        workdir=workdir,
        dims=dims,
        required=tuple(f"fc_{v}" for v in model.targets),
        same_grid=same,
        parametric=parametric,
        generative=sampled,
        members=max(members, defaults.MEMBERS) if sampled else members,
        seed=seed,
        options=model.options,
    )


def predictive_fields(
    model: TrainedModel,
    ds: xr.Dataset,
    plan: GridPlan,
    *,
    source: str = "input",
    tile: int = 256,
    checked: bool = False,
) -> xr.Dataset:
    """Lazy parameter (and member) fields of the model on the grid of ``ds``.

    Args:
        model: Loaded model.
        ds: Canonical gridded forecast (numpy- or dask-backed).
        plan: From :func:`make_plan`.
        source: Name of the input for error messages.
        tile: Spatial tile edge in cells (2-D grids).
        checked: ``ds`` already passed :func:`probcast.ingest.grid_values.check_grid`
            (its fields are not checked again).

    Returns:
        ``<var>_<param>`` fields (and ``<var>`` members along ``realization``) on
        ``(forecast_reference_time, forecast_period, *grid)``, dask-backed, one task per
        tile and time.
    """
    need = needed_inputs(model, ds, source, checked=checked)
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


def _check_thresholds(model: TrainedModel, thresholds: Mapping[str, Any] | None) -> None:
    unknown = sorted(set(thresholds or {}) - set(model.targets))
    if unknown:
        raise GridPredictError(
            f"thresholds given for {unknown}, which the model does not predict "
            f"(targets: {model.targets})"
        )


def predict_grid(request: PredictRequest) -> dict[str, Path]:
    """Predict a whole gridded model run and write CF products.

    Every reference time, period and grid point of ``request.input`` (NetCDF, Zarr, GRIB
    or kerchunk JSON path, or an ``xr.Dataset``) is predicted; products go to
    ``DIR/NAME_<product>.<ext>`` for ``request.output = DIR/NAME.<ext>``: ``parameters``,
    ``percentiles``, ``probabilities_<var>`` (``request.thresholds``, default
    :data:`probcast.defaults.PRODUCT_THRESHOLDS`) and ``members`` (when asked for).
    The input passes the checks of every grid (:func:`probcast.ingest.grid_values.check_grid`:
    units from the ``units`` attribute, physical ranges); with ``request.units`` the
    thresholds are read, and the products written, in the user's units
    (:func:`probcast.products.units.products_to_units`).

    Returns:
        Product name -> written path.

    Raises:
        GridPredictError: The grid lacks what the model needs, or bad requests.
    """
    output = str(request.output)
    grid_output.product_paths(output, [])  # validate the name before any work
    workdir = str(Path(request.model).resolve())
    model = cached_model(workdir).with_options(request.options)
    _check_thresholds(model, request.thresholds)
    try:
        check_units_for(model.targets, request.units)
    except ValueError as err:
        raise GridPredictError(str(err)) from None
    source = request.input
    name = "<in-memory dataset>" if isinstance(source, xr.Dataset) else str(source)
    if isinstance(source, xr.Dataset):
        ds = check_grid(source, name)  # what open_grid does for files
    else:
        ds = points.open_grid(source, chunks={})
    try:
        points.spatial_dims(ds)
    except ValueError as err:  # no latitude/longitude: name the file
        raise GridPredictError(f"{name}: {err}") from None
    check_domain(ds, workdir, request.domain_policy, name)
    plan = make_plan(model, ds, workdir, members=request.members, seed=request.seed)
    fields = predictive_fields(model, ds, plan, source=name, tile=request.tile, checked=True)
    tile = request.tile
    sizes = {d: tile for d in plan.dims} if len(plan.dims) == 2 else {plan.dims[0]: tile * tile}
    prov = grid_output.Provenance(
        model_fingerprint=grid_output.model_fingerprint(workdir), input_files=(name,)
    )
    heads = {v: model.heads[v] for v, _ in plan.parametric}
    heads.update({v: dists.GENERATIVE for v in plan.generative})
    quiet = logging.getLogger("probcast.features")
    level = quiet.level
    quiet.setLevel(max(level, logging.WARNING))  # one "unseen stations" line per tile otherwise
    try:
        with dask_scheduler(request.scheduler), grid_output.staging(output) as folder:
            stored = grid_output.store_fields(fields, folder / "fields.zarr")
            if stored.sizes[FRT] == 1:  # one run: scalar reference time (IMPROVER, CF 2.4)
                stored = stored.squeeze(FRT)
            products = grid_output.grid_products(
                stored,
                heads,
                members=request.members,
                percentiles=request.grid_percentiles,
                thresholds=canonical_thresholds(request.thresholds, request.units),
                params=request.params,
                chunks={FRT: 1, FP: 1, **sizes},
                provenance=prov,
            )
            products = products_to_units(products, request.units, heads, request.thresholds)
            return grid_output.write_set(products, output, folder, inflevel=request.inflevel)
    finally:
        quiet.setLevel(level)
