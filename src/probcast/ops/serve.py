"""``probcast serve``: forecasts on demand over HTTP (FastAPI), for stations or lat/lon points.

- ``GET /health``: liveness: the pipeline, its model's fingerprint, ``status: ok``.
- ``GET /ready``: readiness: the model is loaded and the state store answers (else ``503``).
- ``GET /cycles?limit=N``: the cycles in the state store, newest first;
  ``GET /cycles/{cycle}``: one cycle with its steps.
- ``GET /metrics``: Prometheus metrics (requests, latency, model in use; ``docs/monitoring.md``).
- ``POST /forecast``: ``{"cycle": "2026-11-29T00Z", "stations": ["ST000"] | "points":
  [{"latitude": 45.1, "longitude": 5.2}], "lead_times": [6], "quantiles": [0.1, 0.5, 0.9],
  "thresholds": {"tp": [1.0]}, "members": 0, "params": false}`` -> the cycle's input rows of
  those stations (of the station or grid point nearest each point, within
  ``max_distance_km``), predicted with one :class:`~probcast.PredictRequest`, as JSON records
  or Parquet (``?format=parquet`` or ``Accept: application/vnd.apache.parquet``).

Every error is a 4xx with a JSON body ``{"detail": ...}``: 422 for a body of the wrong shape,
unknown fields or a point too far from any station; 400 for values the request check refuses;
404 for an unknown cycle or station; 413 for a body, or an answer (rows, or values: rows x
columns), over the limits (:mod:`probcast.ops.serve_limits`). A forecast is computed for
bucketed numbers of members, quantiles and thresholds (:mod:`probcast.ops.serve_sizes`), at
most ``max_forecasts`` at once (a ``503`` with ``Retry-After`` after waiting too long), with
the one model folder the pipeline's ``model`` link names when it starts
(:mod:`probcast.ops.serve_model`).
"""

# No ``from __future__ import annotations``: FastAPI reads the annotation of ``forecast``
# (a class built at run time by ``query_model``) from the live function.
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from fastapi import FastAPI, Header, HTTPException, Query, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError

from probcast import station_ids
from probcast.ops.cycle import input_complete
from probcast.ops.input_runs import check_runs
from probcast.ops.metrics_http import instrument_app
from probcast.ops.pipeline import Pipeline, PipelineError, cycle_id, parse_cycle
from probcast.ops.serve_errors import validation_error
from probcast.ops.serve_format import PARQUET, answer, wants_parquet
from probcast.ops.serve_limits import BodyLimit, Gate, Limits
from probcast.ops.serve_model import ServedModel
from probcast.ops.serve_points import CycleInput, InputCache, NodeIndex, PointError
from probcast.ops.serve_query import (
    MAX_MEMBERS,
    ForecastReply,
    Problem,
    ReadyReply,
    check_variables,
    parse_units_or_400,
    query_model,
)
from probcast.ops.serve_rows import bucketed, complete
from probcast.ops.serve_select import KEYS, answer_columns, check_size, rows_of
from probcast.ops.serve_sizes import drop_padding, padded
from probcast.ops.state import StateStore
from probcast.schema import VARIABLES

SERVED_OPTIONS = ("template", "seed", "combine", "batch_size", "quantile_members", "extrapolation")
"""The pipeline's ``products`` options a served forecast uses as its cycle runs do (the
template gives members their coherence and the input its recent errors)."""
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "description": text}
    for code, text in {
        400: "values the request check refuses, or a malformed cycle",
        404: "unknown cycle, cycle without input, unknown station, or no rows",
        413: "request body, or answer (rows, or values), over the server's limits",
        422: "body of the wrong shape, or a point too far from any station or grid point",
    }.items()
}


def read_input(path: Path) -> CycleInput:
    """Read a cycle's input (a station table or a grid) and index its stations / grid points."""
    from probcast.align.points import is_grid_path

    if is_grid_path(path):
        from probcast.ops.serve_grid import read_grid

        return read_grid(path)
    from probcast.ingest.tables import read_table

    table = read_table(path)
    table["station"] = station_ids.as_text(table["station"])
    try:
        index: NodeIndex | None = NodeIndex.of_table(table, path.name)
        error = ""
    except PointError as err:
        index, error = None, str(err)
    extra = {"stations": set(table["station"].unique()), "no_index": error}
    return CycleInput("stations", index, table=table, extra=extra)


def read_cycle_input(path: Path, cycle: datetime | None = None) -> CycleInput:
    """:func:`read_input`, after checking that the file holds the cycle's run and no other.

    Raises:
        InputRunsError: A stale or misnamed file, or one that cannot be opened yet.
    """
    if cycle is not None:
        check_runs(path, cycle)
    return read_input(path)


def read_template(path: Path, cycle: datetime | None = None) -> pd.DataFrame:
    """The pipeline's template table (past forecasts and observations)."""
    from probcast.ingest.tables import read_table

    return read_table(path)


def create_app(pipe: Pipeline, store: StateStore, limits: Limits | None = None) -> FastAPI:
    """The API of ``pipe`` (inputs and model from the pipeline file, cycles from ``store``)."""
    limits = limits or Limits()
    app = FastAPI(
        title="probcast",
        description="calibrated probabilistic forecasts on demand",
        responses={413: ERRORS[413]},
    )
    app.add_middleware(BodyLimit, limit=limits.max_body_bytes)  # inside the metrics
    app.add_exception_handler(RequestValidationError, validation_error)  # finite, small
    instrument_app(app, pipe.name, pipe.model)
    inputs = InputCache(read_cycle_input)
    templates = InputCache(read_template, size=1)

    def template(path: str) -> pd.DataFrame:
        """The pipeline's template table, read once (again when the file changes)."""
        try:
            return templates.get(Path(path))
        except (OSError, ValueError) as err:
            raise HTTPException(503, f"template {path} unreadable: {err}") from err

    served = ServedModel(pipe.name, pipe.model)
    gate = Gate(limits.max_forecasts)
    Query_ = query_model(limits.max_points)

    def parsed(text: str) -> str:
        try:
            return cycle_id(parse_cycle(text))
        except PipelineError as err:
            raise HTTPException(400, str(err)) from err

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Liveness: the process answers and the model's files are readable."""
        return {"status": "ok", "pipeline": pipe.name, "model_fingerprint": served.fingerprint()}

    @app.get("/ready", response_model=ReadyReply, responses={503: {"model": Problem}})
    def ready() -> dict[str, Any]:
        """Readiness: the model is loaded (loaded now if needed) and the state store answers."""
        try:
            _, current, _ = served.get()
            n = len(store.list_cycles(10_000))
        except Exception as err:  # any failure means "not ready", said in the 503
            raise HTTPException(503, f"not ready: {type(err).__name__}: {err}") from err
        return {
            "status": "ready",
            "pipeline": pipe.name,
            "model_fingerprint": current,
            "cycles": n,
        }

    @app.get("/cycles")
    def cycles(limit: int = Query(100, ge=1, le=10_000)) -> list[dict[str, Any]]:
        """The cycles of the state store, newest first."""
        rows = store.list_cycles(limit)
        return [{k: v for k, v in r.items() if k != "pipeline"} for r in rows]

    @app.get("/cycles/{cycle}", responses={400: ERRORS[400], 404: ERRORS[404]})
    def one_cycle(
        cycle: str = PathParam(min_length=8, max_length=40, examples=["2026-11-29T00Z"]),
    ) -> dict[str, Any]:
        """One cycle of the state store with its steps, and whether its input exists."""
        cid = parsed(cycle)
        row = store.cycle(cid)
        if row is None:
            raise HTTPException(404, f"cycle {cid} is not in the state store")
        row.pop("pipeline", None)
        steps = [{k: v for k, v in s.items() if k != "pipeline"} for s in store.steps_of(cid)]
        present = pipe.input_path(parse_cycle(cid)).exists()
        return {**row, "input_present": present, "steps": steps}

    @app.post(
        "/forecast",
        response_model=ForecastReply,
        responses={
            **ERRORS,
            200: {"content": {PARQUET: {"schema": {"type": "string", "format": "binary"}}}},
            503: {
                "model": Problem,
                "description": "the cycle's input unreadable or unfit, or the server busy",
            },
        },
    )
    def forecast(
        query: Query_,  # type: ignore[valid-type]
        format: Literal["json", "parquet"] | None = Query(None, description="else Accept"),
        accept: str | None = Header(None, max_length=1000),
    ) -> Response:
        """Predict the cycle's rows of the stations (or points) asked for, now."""
        cid = parsed(query.cycle)  # type: ignore[attr-defined]
        when = parse_cycle(cid)
        path = pipe.input_path(when)
        if not path.exists():
            raise HTTPException(404, f"no input for cycle {cid}")
        why = input_complete(pipe, when, settle=False)  # a marker rule, a Parquet footer
        if why:
            raise HTTPException(503, f"cycle {cid}: {why}")
        with gate:  # at most max_forecasts at once: memory and CPU stay bounded
            return predict(query, cid, when, path, wants_parquet(format, accept))

    def predict(query: Any, cid: str, when: datetime, path: Path, parquet: bool) -> Response:
        """The forecast of ``query`` for the cycle ``cid`` of input ``path``."""
        from probcast.predict.request import PredictRequest, RequestError
        from probcast.predict.runner import StationRunner

        loaded, model_fingerprint, folder = served.get()  # one folder, whatever the link does
        try:
            cycle = inputs.get(path, when)
            cycle = cycle.for_model(loaded, str(path))  # (amounts since the start de-accumulated)
        except (OSError, ValueError) as err:  # unreadable, or holds other runs than the cycle
            raise HTTPException(503, f"input of cycle {cid} unusable: {err}") from err
        table, mapping, ids, leads = rows_of(cycle, query, limits, f"cycle {cid}", loaded)
        check_size(cycle, mapping, ids, leads, limits, answer_columns(loaded, query))
        options = {k: v for k, v in pipe.request.items() if k in SERVED_OPTIONS}
        if cycle.kind == "stations" and options.get("template") is not None:
            options["template"] = template(str(options["template"]))
        else:  # a grid's rows: the grid products' members are not shuffled either
            options.pop("template", None)
        units = parse_units_or_400(query.units)
        check_variables(query.thresholds, units, list(loaded.targets))
        # computed for bucketed sizes (compiled once each), the extra columns dropped below
        pad = padded(query.members, query.quantiles, query.thresholds, MAX_MEMBERS)
        try:
            request = PredictRequest(
                model=folder,
                input=bucketed(table, usable=cycle.table) if len(table) else table,
                members=pad.members,
                quantiles=pad.quantiles,
                thresholds=pad.thresholds or None,
                params=query.params,
                units=units or None,
                **options,
            )
        except RequestError as err:
            raise HTTPException(400, f"{type(err).__name__}: {err}") from err
        if table.empty:  # nothing usable asked for: every row answered as missing
            flags = [f"{v}_source" for v in loaded.targets]
            result, pred = None, pd.DataFrame(columns=[*KEYS, *flags])
        else:
            try:
                result = StationRunner(request, loaded, validated=True).execute()
            except RequestError as err:
                raise HTTPException(400, f"{type(err).__name__}: {err}") from err
            except (ValueError, KeyError) as err:  # the input lacks what the model needs
                raise HTTPException(
                    503, f"input of cycle {cid} unfit: {type(err).__name__}: {err}"
                ) from err
            assert result.table is not None
            pred = result.table.iloc[: len(table)]
            if station_ids.pad_rows(pred["station"]).any():
                raise RuntimeError("pad rows before the rows asked for: order not kept")
            pred = drop_padding(pred, pad, list(loaded.targets))
        pred = pred.drop(columns=[c for c in pred.columns if c.startswith(("fc_", "obs_"))])
        pred = complete(pred, ids, leads, when, list(loaded.targets))
        if mapping is not None:
            pred = mapping.merge(pred, on="station", how="left", sort=False)
            pred = pred.sort_values(["point", "lead_time"], kind="stable").reset_index(drop=True)
        head = {
            "cycle": cid,
            "model_fingerprint": model_fingerprint,
            "units": {v: units.get(v, VARIABLES[v].units) for v in loaded.targets},
            "periods": loaded.periods,
        }
        families = {} if result is None else result.families
        return answer(pred, families, head, parquet)

    return app


def main(argv: list[str]) -> int:
    """``probcast serve`` (see :mod:`probcast.ops.cli_serve`)."""
    from probcast.ops.cli_serve import main as serve

    return serve(argv)
