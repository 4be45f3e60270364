"""The runner: one :class:`~probcast.predict.request.PredictRequest` in, products out.

``create_runner(request).execute()`` (anemoi-inference's shape) or simply
``run(request)``: a station table gives a prediction table (returned, and written when the
request names an output), a grid gives CF product files. The CLI, the demo and any service
build a request and call this; none of them assembles a prediction itself.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from probcast.dists import Predictive
from probcast.features import MissingColumnsError
from probcast.ingest.tables import read_table
from probcast.model.artefact import load
from probcast.model.predictor import TrainedModel
from probcast.model.scale import check_scale
from probcast.predict.gridded import predict_grid
from probcast.predict.model_cache import is_workdir, model_mismatch, pinned
from probcast.predict.request import PredictRequest, RequestError
from probcast.predict.station import predict_stations
from probcast.products.table import TABLE_SUFFIXES
from probcast.products.table_files import write_predictions
from probcast.products.units import (
    canonical_thresholds,
    check_thresholds_for,
    check_units_for,
    table_to_units,
)
from probcast.validate import validate_keys, validate_station_table


@dataclasses.dataclass
class PredictResult:
    """What a run produced.

    Attributes:
        request: The request that was run.
        kind: ``stations`` or ``grid``.
        table: The prediction table (station input).
        families: Variable -> family of the parameter columns (station input).
        forecasts: Variable -> :class:`~probcast.dists.Predictive` (station input): one
            per target, the parameters' family where they are the predictive
            distribution, else members (by default) or quantiles.
        paths: Product name -> written path.
        seconds: Wall time of the run.
        model: The model that predicted: its workdir, or ``<in-memory TrainedModel>`` for
            a model object without one (recorded in the written table's metadata too).
    """

    request: PredictRequest
    kind: str
    table: pd.DataFrame | None = None
    families: dict[str, str] = dataclasses.field(default_factory=dict)
    forecasts: dict[str, Predictive] = dataclasses.field(default_factory=dict)
    paths: dict[str, Path] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0
    model: str = ""

    def summary(self) -> str:
        """One line for a terminal."""
        if self.kind == "stations" and self.table is not None:
            where = f" to {self.paths['table']}" if "table" in self.paths else ""
            shape = f"{len(self.table)} rows x {self.table.shape[1]} columns"
            return f"predicted {shape}{where} in {self.seconds:.1f} s"
        written = ", ".join(str(p) for p in self.paths.values())
        return f"wrote {written} in {self.seconds:.1f} s"


class Runner(Protocol):
    """Runs one request."""

    request: PredictRequest

    def execute(self) -> PredictResult:
        """Run the request."""
        ...


def given_model(request: PredictRequest, model: TrainedModel, *, grid: bool = False) -> str:
    """The name under which ``model``, handed to :func:`run` with ``request``, is recorded.

    ``request.model`` names the model's workdir: the object must be that workdir's model
    (same training config and metadata), else the request is refused rather than recording
    one model and predicting with another. A ``request.model`` that is no model workdir
    gives the object's in-memory name (station tables; a grid needs the workdir, whose
    model the cluster's workers load).

    Raises:
        RequestError: The object is another model than ``request.model``'s, or a grid's
            ``request.model`` is no model workdir.
    """
    path = request.model
    if is_workdir(path):
        why = model_mismatch(model, path)
        if why:
            source = model.meta.get("data_source")
            trained = f" (trained on {source})" if source else ""
            raise RequestError(
                f"model: the model object given to run(){trained} is not the model of "
                f"request.model {str(path)!r}: {why}; pass the model loaded from "
                f"{str(path)!r}, or name the object's own workdir in the request"
            )
        return str(path)
    if grid:
        raise RequestError(
            f"model: a gridded prediction needs request.model to be the workdir of the model "
            f"given to run(); {str(path)!r} is not a model workdir"
        )
    return f"<in-memory {type(model).__name__}>"


def _model(request: PredictRequest, model: TrainedModel | None) -> tuple[TrainedModel, str]:
    """The model to predict with, with the request's options, and its recorded name."""
    if model is None:
        return load(Path(request.model)).with_options(request.options), str(request.model)
    return model.with_options(request.options), given_model(request, model)


def _check_variables(model: TrainedModel, request: PredictRequest) -> None:
    """Thresholds and units only of variables the model predicts (before any work)."""
    try:
        check_thresholds_for(model.targets, request.thresholds)
        check_units_for(model.targets, request.units)
    except ValueError as err:
        raise RequestError(str(err)) from None


def _input_table(source: Any, name: str, validated: bool = False) -> pd.DataFrame:
    """A station table of a path or a caller's DataFrame, validated as a file is.

    ``validated``: the DataFrame already passed
    :func:`~probcast.validate.validate_station_table` (only its keys are coerced again).
    """
    if not isinstance(source, pd.DataFrame):
        return read_table(source)
    if validated:
        return validate_keys(source, source=name)
    return validate_station_table(source, source=name)


@dataclasses.dataclass
class StationRunner:
    """Predicts a station table (path or DataFrame).

    Attributes:
        request: What to predict.
        model: An already loaded model of ``request.model`` (see :func:`given_model`).
        validated: Internal, not a request option: the input and template DataFrames
            already passed :func:`~probcast.validate.validate_station_table` (a service's
            rows of a table it read with :func:`~probcast.ingest.tables.read_table`), so
            only their keys and times are coerced, not their values checked again.
    """

    request: PredictRequest
    model: TrainedModel | None = None
    validated: bool = False

    def execute(self) -> PredictResult:
        """Predict every row; write the table when the request names an output."""
        start = time.perf_counter()
        req = self.request
        suffix = Path(req.output).suffix.lower() if req.output is not None else ".csv"
        if suffix not in TABLE_SUFFIXES:  # before the prediction's work, not after it
            raise RequestError(
                f"output {req.output}: unknown table format {suffix!r}; expected one of "
                f"{TABLE_SUFFIXES}"
            )
        model, used = _model(req, self.model)
        _check_variables(model, req)
        rows = _input_table(req.input, "input table", self.validated)
        name = "input table" if isinstance(req.input, pd.DataFrame) else str(req.input)
        try:
            model.check_periods(rows, name)
        except ValueError as err:
            raise RequestError(str(err)) from None
        check_scale(model.domain, rows, req.domain_policy, name)  # a column in other units
        pred = self._predict(model, rows)
        table, units = table_to_units(pred.table, req.units, model.heads, req.thresholds)
        result = PredictResult(req, "stations", table, pred.families, pred.forecasts, model=used)
        if req.output is not None:
            meta = {"model": used, "request": req.describe(), **units}
            meta |= {"periods": model.periods} if model.periods else {}
            path = write_predictions(table, Path(req.output), families=pred.families, metadata=meta)
            result.paths["table"] = path
        result.seconds = time.perf_counter() - start
        return result

    def _predict(self, model: TrainedModel, table: pd.DataFrame) -> Any:
        """The prediction of ``table``; a table of another model's layout names the input."""
        req = self.request
        try:
            return predict_stations(
                model,
                table,
                members=req.members,
                quantiles=req.station_quantiles,
                thresholds=canonical_thresholds(req.thresholds, req.units),
                seed=req.seed,
                params=req.params,
                template=None
                if req.template is None
                else _input_table(req.template, "template table", self.validated),
                policy=req.domain_policy,
            )
        except MissingColumnsError as err:
            name = "input table" if isinstance(req.input, pd.DataFrame) else req.input
            raise RequestError(f"{name}: {err}") from None


@dataclasses.dataclass
class GridRunner:
    """Predicts a gridded model run into CF product files.

    Attributes:
        request: What to predict.
        model: An already loaded model of ``request.model`` (see :func:`given_model`): the
            plan and every tile of this process use it (cluster workers load the workdir's).
    """

    request: PredictRequest
    model: TrainedModel | None = None

    def execute(self) -> PredictResult:
        """Predict every reference time, period and grid point; write the products."""
        req = self.request
        if req.output is None:
            raise RequestError("a gridded prediction needs an output (DIR/NAME.nc or .zarr)")
        start = time.perf_counter()
        if self.model is None:
            paths = predict_grid(req)
        else:
            given_model(req, self.model, grid=True)
            with pinned(req.model, self.model):
                paths = predict_grid(req)
        seconds = time.perf_counter() - start
        return PredictResult(req, "grid", paths=paths, seconds=seconds, model=str(req.model))


def create_runner(request: PredictRequest, model: TrainedModel | None = None) -> Runner:
    """The runner of ``request``: by its input, stations or grid.

    Args:
        request: What to predict.
        model: An already loaded model of ``request.model``, to skip loading it: it must be
            that workdir's model (:func:`given_model`); with a ``request.model`` that is no
            model workdir (a model built in memory), station tables are predicted with it
            and recorded as ``<in-memory TrainedModel>``.
    """
    if request.gridded:
        return GridRunner(request, model)
    return StationRunner(request, model)


def run(request: PredictRequest, model: TrainedModel | None = None) -> PredictResult:
    """Run ``request`` and return what it produced.

    Args:
        request: What to predict.
        model: An already loaded model of ``request.model`` (see :func:`create_runner`).

    Raises:
        RequestError: A request that cannot be run: a model object of another workdir,
            thresholds or units of a variable the model does not predict, an input of
            another model's layout (all before any prediction).
        ExtrapolationError: A station input on another scale than the training data (a
            column in other units, a dead feed: :mod:`probcast.model.scale`), or rows
            beyond the hard tolerance that the policy refuses (a ``ValueError``).
    """
    return create_runner(request, model).execute()
