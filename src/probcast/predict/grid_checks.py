"""What a trained model needs from a grid, checked before any computation.

The model's feature spec lists its predictor columns; on a grid they come from ``fc_*``
fields, neighbourhood statistics of those fields (``fc_<var>_nbr<k>_<stat>``, windows
rescaled to the same distance when the grid spacing differs from the training grid's) and
statics (latitude/longitude always; altitude, land-sea mask when the model used them).
Anything missing is a :class:`GridPredictError` that names the file, what is missing, and
what the model was trained on. The values the model reads are checked too
(:func:`check_values`, the checks of every gridded input at training and prediction:
:mod:`probcast.ingest.grid_values`): an infinite value, a field outside the physical range
of its variable (:data:`probcast.schema.VARIABLES`, e.g. degC given as K, with the units the
values would fit) or latitudes / longitudes outside the globe are errors naming the file and
the variable; NaN is a missing value. After the tiles ran, :func:`check_sources` logs where
the points' forecasts came from and refuses a grid no point of which has every input the
network needs, as a station table is refused (:mod:`probcast.model.fallback`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
from collections.abc import Sequence

import dask
import xarray as xr

from probcast import recent
from probcast.align import points
from probcast.align.neighbourhood import STATS, window_size
from probcast.ingest import grid_values
from probcast.ingest.errors import GriddedReadError
from probcast.model.predictor import TrainedModel
from probcast.predict.tiles import SOURCE_CODE, source_field
from probcast.products.table import SOURCES
from probcast.schema import FC_PREFIX

log = logging.getLogger(__name__)

_NBR = re.compile(r"^(?P<field>fc_.+)_nbr(?P<k>\d+)_(?P<stat>[a-z]+)$")
_STATIC_SOURCES = {"altitude": points.ALTITUDE_NAMES, "stat_lsm": points.LSM_NAMES}
_ALWAYS = ("latitude", "longitude", "lead_time")


class GridPredictError(ValueError):
    """The grid cannot be predicted by the model; the message says why and what to do."""


@dataclasses.dataclass(frozen=True)
class Needs:
    """Inputs of the model on one grid.

    Attributes:
        fields: ``fc_*`` fields to read (raw forecasts of the targets first).
        statics: Variables of the grid giving altitude / land-sea mask.
        nbr_fields: Fields with neighbourhood predictors.
        windows: Neighbourhood window edges as trained (cells of the training grid).
        stats: Neighbourhood statistics.
        scale: Training grid spacing / this grid's spacing.
    """

    fields: list[str]
    statics: list[str]
    nbr_fields: list[str]
    windows: list[int]
    stats: list[str]
    scale: float


def _trained_on(model: TrainedModel) -> str:
    base = sorted({_base(c) for c in model.spec.columns if c.startswith(FC_PREFIX)})
    return f"model predicts {', '.join(model.targets)} from {', '.join(base)}"


def _base(column: str) -> str:
    m = _NBR.match(column)
    return m.group("field") if m else column


def _static_var(ds: xr.Dataset, column: str) -> str | None:
    dims = set(points.spatial_dims(ds))
    for name in _STATIC_SOURCES.get(column, ()):
        if name in ds.variables and set(ds[name].dims) <= dims and ds[name].ndim:
            return name
    return None


def needed_inputs(
    model: TrainedModel, ds: xr.Dataset, source: str, *, checked: bool = False
) -> Needs:
    """Check that ``ds`` has what the model needs and return it.

    Args:
        model: The model.
        ds: Canonical grid.
        source: File name for error messages.
        checked: The ``fc_*`` fields and coordinates already passed
            :func:`probcast.ingest.grid_values.check_grid` (only statics are checked).

    Raises:
        GridPredictError: Missing fields or statics, or a grid too small for the
            (rescaled) neighbourhood windows.
    """
    cols = model.spec.columns
    required = [f"{FC_PREFIX}{v}" for v in model.targets]
    fields = list(dict.fromkeys(required + [_base(c) for c in cols if c.startswith(FC_PREFIX)]))
    have = sorted(str(v) for v in ds.data_vars if str(v).startswith(FC_PREFIX))
    missing = [f for f in fields if f not in ds.data_vars]
    if missing:
        raise GridPredictError(
            f"{source}: {_trained_on(model)}; {source} has {', '.join(have) or 'no fc_* field'}"
            f" (missing {', '.join(missing)})"
        )
    statics, absent = [], []
    for col in cols:
        if col.startswith((FC_PREFIX, recent.PREFIX)) or col in _ALWAYS:
            continue  # recent errors: derived (missing on a grid without observations)
        name = _static_var(ds, col)
        if name is None:
            absent.append(col)
        else:
            statics.append(name)
    if absent:
        raise GridPredictError(
            f"{source}: the model uses the static predictor(s) {absent}, which the grid lacks "
            f"(looked for variables {[n for c in absent for n in _STATIC_SOURCES.get(c, (c,))]})"
        )
    check_values(ds, sorted(set(statics)) if checked else [*fields, *sorted(set(statics))], source)
    return _neighbourhood(model, ds, source, fields, sorted(set(statics)))


def check_values(ds: xr.Dataset, names: list[str], source: str) -> None:
    """Refuse infinite, entirely missing or physically impossible values of ``names``.

    The checks of every gridded input (:func:`probcast.ingest.grid_values.check_values`),
    one pass over the data (dask-backed fields are reduced together).

    Raises:
        GridPredictError: Naming the file and the variable: infinite values, values
            outside ``[valid_min, valid_max]`` of a known ``fc_<var>`` field (with the
            units they would fit), or latitude / longitude outside the globe.
    """
    try:
        grid_values.check_values(ds, source, names)
    except GriddedReadError as err:
        raise GridPredictError(str(err)) from None


def _neighbourhood(
    model: TrainedModel, ds: xr.Dataset, source: str, fields: list[str], statics: list[str]
) -> Needs:
    matches = [m for c in model.spec.columns if (m := _NBR.match(c))]
    windows = sorted({int(m.group("k")) for m in matches})
    stats = [s for s in STATS if any(m.group("stat") == s for m in matches)]
    nbr_fields = list(dict.fromkeys(m.group("field") for m in matches))
    if not windows:
        return Needs(fields, statics, [], [], [], 1.0)
    grid = model.spec.grid or {}
    here = points.spacing_km(ds)
    trained = float(grid.get("spacing_km", math.nan))
    scale = trained / here if math.isfinite(trained) and math.isfinite(here) else 1.0
    if not grid:
        log.warning("model has neighbourhood predictors but no training grid record: scale 1")
    dims = points.spatial_dims(ds)
    size = min(ds.sizes[d] for d in dims)
    edges = [window_size(k, scale) for k in windows]
    limit = max(edges) ** 2 if len(dims) == 1 else max(edges)
    if limit > size:
        raise GridPredictError(
            f"{source}: grid {' x '.join(str(ds.sizes[d]) for d in dims)} at {here:.3g} km "
            f"spacing is too small for the model's neighbourhood windows {windows} cells at "
            f"{trained:.3g} km (the same distances are {edges} cells here); predict a larger "
            "domain, or use a model trained with --config.features.neighbourhood=''"
        )
    return Needs(fields, statics, nbr_fields, windows, stats, scale)


def check_sources(fields: xr.Dataset, targets: Sequence[str], source: str) -> None:
    """Log the sources of the points' forecasts, one line (a warning when any fell back).

    Counted from the predicted ``fields`` (:func:`probcast.predict.tiles.source_field`).

    Raises:
        GridPredictError: No point has every input the network needs (as a station table).
    """
    codes = [fields[source_field(v)].data for v in targets]
    (counts,) = dask.compute([[(c == k).sum() for k in range(len(SOURCES))] for c in codes])
    text = "; ".join(
        f"{v}: " + ", ".join(f"{s} {int(k)}" for s, k in zip(SOURCES, c, strict=True) if k)
        for v, c in zip(targets, counts, strict=True)
    )
    fell = sum(int(c[SOURCE_CODE[s]]) for c in counts for s in ("emos", "raw_dressed"))
    if fell and not any(c[SOURCE_CODE["model"]] for c in counts):
        raise GridPredictError(
            f"{source}: no point of the grid has every input the model needs (missing or "
            f"invalid predictor values wherever a raw forecast is given); sources: {text}"
        )
    n = int(sum(counts[0])) if counts else 0
    log.log(logging.WARNING if fell else logging.INFO, "forecast sources of %d points: %s", n, text)
