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
from probcast.predict.gridded import predict_grid
from probcast.predict.request import PredictRequest, RequestError
from probcast.predict.station import predict_stations
from probcast.products.table import TABLE_SUFFIXES
from probcast.products.table_files import write_predictions
from probcast.products.units import canonical_thresholds, table_to_units
from probcast.validate import validate_keys


@dataclasses.dataclass
class PredictResult:
    """What a run produced.

    Attributes:
        request: The request that was run.
        kind: ``stations`` or ``grid``.
        table: The prediction table (station input).
        families: Variable -> family of the parameter columns (station input).
        forecasts: Variable -> :class:`~probcast.dists.Predictive` (station input).
        paths: Product name -> written path.
        seconds: Wall time of the run.
    """

    request: PredictRequest
    kind: str
    table: pd.DataFrame | None = None
    families: dict[str, str] = dataclasses.field(default_factory=dict)
    forecasts: dict[str, Predictive] = dataclasses.field(default_factory=dict)
    paths: dict[str, Path] = dataclasses.field(default_factory=dict)
    seconds: float = 0.0

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


def _model(request: PredictRequest, model: TrainedModel | None) -> TrainedModel:
    return (model or load(Path(request.model))).with_options(request.options)


def _input_table(source: Any) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):  # a caller's table: its keys and times as a file's
        return validate_keys(source, source="input table")
    return read_table(source)


@dataclasses.dataclass
class StationRunner:
    """Predicts a station table (path or DataFrame)."""

    request: PredictRequest
    model: TrainedModel | None = None

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
        model = _model(req, self.model)
        rows = _input_table(req.input)
        name = "input table" if isinstance(req.input, pd.DataFrame) else str(req.input)
        try:
            model.check_periods(rows, name)
        except ValueError as err:
            raise RequestError(str(err)) from None
        pred = self._predict(model, rows)
        table, units = table_to_units(pred.table, req.units, model.heads, req.thresholds)
        result = PredictResult(req, "stations", table, pred.families, pred.forecasts)
        if req.output is not None:
            meta = {"model": str(req.model), "request": req.describe(), **units}
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
                template=None if req.template is None else _input_table(req.template),
                policy=req.domain_policy,
            )
        except MissingColumnsError as err:
            name = "input table" if isinstance(req.input, pd.DataFrame) else req.input
            raise RequestError(f"{name}: {err}") from None


@dataclasses.dataclass
class GridRunner:
    """Predicts a gridded model run into CF product files."""

    request: PredictRequest

    def execute(self) -> PredictResult:
        """Predict every reference time, period and grid point; write the products."""
        req = self.request
        if req.output is None:
            raise RequestError("a gridded prediction needs an output (DIR/NAME.nc or .zarr)")
        start = time.perf_counter()
        paths = predict_grid(req)
        return PredictResult(req, "grid", paths=paths, seconds=time.perf_counter() - start)


def create_runner(request: PredictRequest, model: TrainedModel | None = None) -> Runner:
    """The runner of ``request``: by its input, stations or grid.

    Args:
        request: What to predict.
        model: An already loaded model of ``request.model`` (station input), to skip loading.
    """
    if request.gridded:
        return GridRunner(request)
    return StationRunner(request, model)


def run(request: PredictRequest, model: TrainedModel | None = None) -> PredictResult:
    """Run ``request`` and return what it produced."""
    return create_runner(request, model).execute()
