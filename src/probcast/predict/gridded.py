"""Gridded prediction: a trained model and a gridded forecast file -> CF product files.

Every grid point of every reference time and period is a row of the station model
(:mod:`probcast.align.points`), predicted as station rows are (:mod:`probcast.predict.station`:
the network where it has every input, the fallbacks of :mod:`probcast.model.fallback`
elsewhere, flagged per point in ``<var>_source``). The grid is processed lazily, one dask task
per spatial tile and time (:mod:`probcast.predict.tiles`), giving distribution parameters,
members (generative heads) or, for targets whose forecast is not their family (a mixture of
networks, a recalibrated target), exact percentiles, probabilities and members
(:class:`ExactSource`). Those fields are written once to a temporary Zarr store next to the
output, then :mod:`probcast.products` builds and writes the products from it; memory stays
bounded by the tile size whatever the grid size.

Output: for ``--output=DIR/NAME.nc`` one file per product, ``DIR/NAME_<product>.nc``
(``parameters``, ``percentiles``, ``probabilities_<var>``, ``members``), all written to a
temporary folder first and moved into place only when every product is complete: a
failure leaves no partial file (and earlier outputs untouched).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from probcast import defaults, dists
from probcast.align import points
from probcast.align.neighbourhood import window_size
from probcast.ingest.grid_values import check_grid
from probcast.model.predictor import TrainedModel
from probcast.predict import grid_output, tiles
from probcast.predict.grid_checks import GridPredictError, check_sources, needed_inputs
from probcast.predict.grid_domain import check_domain
from probcast.predict.input_periods import to_model_periods
from probcast.predict.request import PredictRequest
from probcast.predict.tiles import GridPlan, cached_model, exact_field, source_field
from probcast.products import cf
from probcast.products.build import build_members, build_percentiles, build_probabilities
from probcast.products.coherence import CONSTRAINTS
from probcast.products.table import SOURCES
from probcast.products.units import (
    canonical_thresholds,
    check_thresholds_for,
    check_units_for,
    products_to_units,
)

log = logging.getLogger(__name__)

FRT, FP, REALIZATION = points.FRT, points.FP, points.REALIZATION


def make_plan(
    model: TrainedModel,
    ds: xr.Dataset,
    workdir: str,
    *,
    members: int,
    seed: int,
    percentiles: Sequence[float] = (),
    thresholds: Mapping[str, Sequence[float]] | None = None,
) -> GridPlan:
    """Plan the tile tasks: what each head gives, whether this is the training grid.

    A parametric head gives its parameter fields when they are its predictive distribution
    (one network, or several pooled by quantile averaging: the request's ``combine``);
    otherwise (a mixture of networks, a recalibrated target) the exact quantiles and
    probabilities of its predictive distribution, as station tables get them: at
    ``percentiles`` (%), at ``thresholds`` (default
    :data:`probcast.defaults.PRODUCT_THRESHOLDS`) and ``members`` equidistant levels
    ``i / (members + 1)``. A generative head gives ``members`` drawn members, at least
    :data:`probcast.defaults.MEMBERS`.
    """
    dims = points.spatial_dims(ds)
    grid = model.spec.grid or {}
    same = bool(grid) and grid.get("fingerprint") == points.grid_fingerprint(ds, dims)
    if not same and model.spec.stations and int(model.config.model.embed_dim) > 0:
        log.warning(
            "grid differs from the training grid: every point uses the unknown-station "
            "embedding (train with --config.model.embed_dim=0 for models meant for other grids)"
        )
    fields = [v for v in model.targets if model.pooled_params_are_predictive(v)]
    parametric = tuple((v, tuple(dists.get(model.heads[v]).param_names)) for v in fields)
    others = tuple(v for v in model.targets if v not in fields)
    exact = tuple(v for v in others if not dists.is_generative(model.heads[v]))
    table = defaults.PRODUCT_THRESHOLDS if thresholds is None else thresholds
    return GridPlan(
        workdir=workdir,
        dims=dims,
        required=tuple(f"fc_{v}" for v in model.targets),
        same_grid=same,
        parametric=parametric,
        generative=others,
        members=max(members, defaults.MEMBERS) if len(others) > len(exact) else members,
        seed=seed,
        options=model.options,
        exact=exact,
        levels=tuple(float(p) / 100.0 for p in percentiles),
        thresholds=tuple((v, tuple(map(float, table[v]))) for v in exact if v in table),
        exact_members=members,
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
        The fields of ``plan.outputs`` (``<var>_<param>``, ``<var>`` members along
        ``realization``, exact fields, source codes) on ``(forecast_reference_time,
        forecast_period, *grid)``, dask-backed, one task per tile and time.
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
    for name, dim, layers in plan.outputs:
        if dim is None:
            fields[name] = (full, out[row])
        else:
            fields[name] = ((dim, *full), out[row : row + layers])
        row += layers
    keep = {
        k: v for k, v in prepared.coords.items() if set(v.dims) <= set(full) and k != "valid_time"
    }
    # Zarr needs equal chunks but a smaller last one; a merged last tile can be larger.
    uniform = {d: c[0] for d, c in zip(plan.dims, chunks, strict=True)}
    return xr.Dataset(fields, coords=keep).chunk(uniform)


class ExactSource:
    """The exact fields of a plan's ``exact`` targets, as a product source.

    What the tiles computed (:func:`probcast.predict.tiles.predict_rows`: percentiles at the
    plan's levels, probabilities at its thresholds, members at ``i / (n + 1)``) for the
    product builders of :mod:`probcast.products`; anything else asked for is an error.
    """

    def __init__(self, fields: xr.Dataset, plan: GridPlan, chunks: Mapping[str, int]) -> None:
        self.fields, self.plan, self.chunks = fields, plan, dict(chunks)
        self.variables = plan.exact
        self.grid = fields.coords.to_dataset()

    def _layers(self, var: str, form: str, dim: str, have: Sequence[float], want: Any) -> Any:
        want = np.asarray(want, dtype=np.float64)
        if len(have) != len(want) or not np.allclose(have, want, rtol=1e-9, atol=0.0):
            raise ValueError(f"{var}: {form}s {want.tolist()} asked for, {list(have)} computed")
        da = self.fields[exact_field(var, form)]
        da = da.rename({da.dims[0]: dim})
        return da.chunk({dim: -1, **{d: c for d, c in self.chunks.items() if d in da.dims}})

    def quantiles(self, var: str, q: np.ndarray, dim: str) -> xr.DataArray:
        """The percentile fields (``q``: the plan's levels)."""
        return self._layers(var, "percentile", dim, self.plan.levels, q)

    def exceedance(self, var: str, thresholds: np.ndarray, dim: str) -> xr.DataArray:
        """The probability fields (``thresholds``: the plan's)."""
        have = dict(self.plan.thresholds).get(var, ())
        return self._layers(var, "threshold", dim, have, thresholds)

    def members(self, var: str, n: int | None, method: str, seed: int) -> xr.DataArray:
        """The member fields (``n``: the plan's; ``method`` and ``seed`` do not apply)."""
        have = range(self.plan.exact_members)
        return self._layers(var, "member", REALIZATION, have, range(n or 0))


def exact_products(
    source: ExactSource,
    members: int,
    percentiles: Sequence[float],
    thresholds: Mapping[str, Sequence[float]] | None,
) -> dict[str, xr.Dataset]:
    """The products of the exact targets (as :func:`grid_output.grid_products` names them)."""
    out = {}
    if members:
        out["members"] = build_members(source, n_members=members)
    if percentiles:
        out["percentiles"] = build_percentiles(source, percentiles)
    table = defaults.PRODUCT_THRESHOLDS if thresholds is None else thresholds
    for var in source.variables:
        if var in table:
            out[f"probabilities_{var}"] = build_probabilities(source, var, table[var])
    return out


def _merged(*parts: Mapping[str, xr.Dataset]) -> dict[str, xr.Dataset]:
    """Products of the same names merged; members obey the constraints across parts."""
    out: dict[str, xr.Dataset] = {}
    for part in parts:
        for name, ds in part.items():
            if name in out:
                ds = xr.merge([out[name], ds], compat="no_conflicts", combine_attrs="override")
            out[name] = ds
    members = out.get("members", xr.Dataset())
    for low, high in CONSTRAINTS:
        if low in members and high in members:
            lo, hi = members[low], members[high]
            members[low] = lo.where(~(lo > hi), hi).assign_attrs(lo.attrs)
    return out


def with_sources(
    products: Mapping[str, xr.Dataset],
    fields: xr.Dataset,
    targets: Sequence[str],
    chunks: Mapping[str, int],
) -> dict[str, xr.Dataset]:
    """Each product but ``parameters`` with the ``<var>_source`` flag of every target it holds.

    The flag is the station products' (``int8`` codes of ``model``, ``emos``,
    ``raw_dressed``, ``missing`` with CF ``flag_values``/``flag_meanings``), named by the
    described variable's ``ancillary_variables`` attribute. The parameters product holds
    ``<var>_<param>`` fields only (readers take every ``<var>_*`` field for a parameter).
    """
    out = dict(products)
    for name, ds in products.items():
        described = {
            n: str(da.attrs.get("diagnostic", n))
            for n, da in ds.data_vars.items()
            if name != "parameters" and da.attrs.get("diagnostic", n) in targets
        }
        flags = {}
        for var in dict.fromkeys(described.values()):  # (a set: order by PYTHONHASHSEED)
            codes = fields[source_field(var)]  # the product's coordinates (CF attributes) stay
            codes = codes.drop_vars(list(codes.coords)).astype("int8")
            flags[f"{var}_source"] = codes.chunk(
                {d: chunks[str(d)] for d in codes.dims if d in chunks}
            )
            flags[f"{var}_source"].attrs = {
                "long_name": f"source of the forecasts of {var}",
                "flag_values": np.arange(len(SOURCES), dtype="int8"),
                "flag_meanings": " ".join(SOURCES),
                **{k: v for k, v in ds[next(iter(described))].attrs.items() if k == "grid_mapping"},
            }
        if flags:
            out[name] = ds = ds.assign(flags)
            for n, var in described.items():
                ds[n].attrs["ancillary_variables"] = f"{var}_source"
    return out


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
    try:
        check_thresholds_for(model.targets, request.thresholds)
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
    try:
        ds = to_model_periods(model, ds, name)  # amounts since the start (ECMWF, ARPEGE)
        model.check_periods(ds, name)
    except ValueError as err:
        raise GridPredictError(str(err)) from None
    check_domain(ds, workdir, request.domain_policy, name)
    thresholds = canonical_thresholds(request.thresholds, request.units)
    pct = request.grid_percentiles
    plan = make_plan(
        model, ds, workdir, members=request.members, seed=request.seed, percentiles=pct,
        thresholds=thresholds,
    )  # fmt: skip
    fields = predictive_fields(model, ds, plan, source=name, tile=request.tile, checked=True)
    tile = request.tile
    sizes = {d: tile for d in plan.dims} if len(plan.dims) == 2 else {plan.dims[0]: tile * tile}
    chunks = {FRT: 1, FP: 1, **sizes}
    prov = grid_output.Provenance(
        model_fingerprint=grid_output.model_fingerprint(workdir), input_files=(name,)
    )
    heads = {v: model.heads[v] for v, _ in plan.parametric}
    heads.update({v: dists.GENERATIVE for v in plan.drawn})
    quiet = logging.getLogger("probcast.features")
    level = quiet.level
    quiet.setLevel(max(level, logging.WARNING))  # one "unseen stations" line per tile otherwise
    try:
        with dask_scheduler(request.scheduler), grid_output.staging(output) as folder:
            stored = grid_output.store_fields(fields, folder / "fields.zarr")
            if stored.sizes[FRT] == 1:  # one run: scalar reference time (IMPROVER, CF 2.4)
                stored = stored.squeeze(FRT)
            check_sources(stored, model.targets, name)
            plain = [f"{v}_{p}" for v, names in plan.parametric for p in names]
            products = grid_output.grid_products(
                stored[plain + list(plan.drawn)],
                heads,
                members=request.members,
                percentiles=pct,
                thresholds=thresholds,
                params=request.params,
                chunks=chunks,
                provenance=prov,
            )
            if plan.exact:
                source = ExactSource(stored, plan, chunks)
                exact = exact_products(source, request.members, pct, thresholds)
                exact = {
                    n: cf.add_provenance(p, prov, product=n.split("_")[0]) for n, p in exact.items()
                }
                products = _merged(products, exact)
            products = with_sources(products, stored, model.targets, chunks)
            heads.update({v: dists.GENERATIVE for v in plan.exact})
            products = products_to_units(products, request.units, heads, request.thresholds)
            products = {n: cf.state_periods(p, model.periods) for n, p in products.items()}
            return grid_output.write_set(products, output, folder, inflevel=request.inflevel)
    finally:
        quiet.setLevel(level)
