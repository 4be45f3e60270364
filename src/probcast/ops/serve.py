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
404 for an unknown cycle or station; 413 for a body, or an answer, over the limits
(:mod:`probcast.ops.serve_limits`).
"""

# No ``from __future__ import annotations``: FastAPI reads the annotation of ``forecast``
# (a class built at run time by ``query_model``) from the live function.
import threading
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from fastapi import FastAPI, Header, HTTPException, Query, Response
from fastapi import Path as PathParam

from probcast import station_ids
from probcast.ops.cycle import input_complete
from probcast.ops.input_runs import check_runs
from probcast.ops.metrics_http import instrument_app, publish_model
from probcast.ops.pipeline import Pipeline, PipelineError, cycle_id, parse_cycle
from probcast.ops.serve_format import PARQUET, answer, wants_parquet
from probcast.ops.serve_limits import BodyLimit, Limits
from probcast.ops.serve_points import CycleInput, InputCache, NodeIndex, PointError
from probcast.ops.serve_query import (
    ForecastReply,
    Problem,
    ReadyReply,
    check_variables,
    parse_units_or_400,
    query_model,
)
from probcast.ops.serve_rows import bucketed, complete
from probcast.ops.state import StateStore
from probcast.products.table import PAD_MARK
from probcast.schema import VARIABLES

KEYS = ["station", "init_time", "lead_time", "valid_time"]
SERVED_OPTIONS = ("template", "seed", "combine", "batch_size", "quantile_members", "extrapolation")
"""The pipeline's ``products`` options a served forecast uses as its cycle runs do (the
template gives members their coherence and the input its recent errors)."""
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": Problem, "description": text}
    for code, text in {
        400: "values the request check refuses, or a malformed cycle",
        404: "unknown cycle, cycle without input, unknown station, or no rows",
        413: "request body, or answer, over the server's limits",
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


def _rows(
    cycle: CycleInput, query: Any, limits: Limits, source: str, model: Any
) -> tuple[pd.DataFrame, pd.DataFrame | None, list[str], list[float]]:
    """The input rows, the points' ``(point, station, distance_km)``, the rows to answer.

    The last two are the stations (or grid points) and the lead times the answer has a row
    for, whether or not the input has one.
    """
    mapping = None
    ids: list[str] | None = None
    if query.points is not None:
        if cycle.index is None:
            raise HTTPException(422, cycle.extra["no_index"])
        lat = [p.latitude for p in query.points]
        lon = [p.longitude for p in query.points]
        reach = min(limits.max_distance_km, float(cycle.extra.get("reach_km", np.inf)))
        try:
            pos, dist = cycle.index.nearest(lat, lon, reach, source)
        except PointError as err:
            raise HTTPException(422, str(err)) from err
        ids = [str(s) for s in cycle.index.ids[pos]]
        mapping = pd.DataFrame(
            {"point": np.arange(len(pos)), "station": ids, "distance_km": np.round(dist, 3)}
        )
    elif query.stations is not None:
        ids = list(dict.fromkeys(query.stations))
        known = cycle.extra.get("stations") or _positions(cycle)
        unknown = [s for s in ids if s not in known]
        if unknown:
            raise HTTPException(404, f"unknown stations in {source}: {unknown[:20]}")
    if cycle.kind == "grid":
        if ids is None:
            raise HTTPException(422, f"{source} is a grid: give stations (y<j>x<i>) or points")
        where = _positions(cycle)
        table = _grid_rows(cycle, [where[s] for s in dict.fromkeys(ids)], model, source)
    else:
        assert cycle.table is not None
        table = cycle.table
        if ids is not None:
            table = table[table["station"].isin(set(ids))]
    if query.lead_times is not None:
        table = table[table["lead_time"].isin(query.lead_times)]
    if ids is None:  # every station of a station-table cycle
        assert cycle.table is not None
        ids = list(dict.fromkeys(cycle.table["station"]))
    leads = query.lead_times if query.lead_times is not None else _cycle_leads(cycle)
    return table.reset_index(drop=True), mapping, list(dict.fromkeys(ids)), list(leads)


def _cycle_leads(cycle: CycleInput) -> list[float]:
    """The lead times (hours) of a cycle's input (found once per input)."""
    if "leads" not in cycle.extra:
        if cycle.table is not None:
            hours = pd.unique(cycle.table["lead_time"].dropna().to_numpy(dtype=float))
        else:
            fp = cycle.dataset["forecast_period"].values.ravel()
            hours = fp / np.timedelta64(1, "h") if np.issubdtype(fp.dtype, np.timedelta64) else fp
        cycle.extra["leads"] = sorted(float(h) for h in hours)
    leads: list[float] = cycle.extra["leads"]
    return leads


def _positions(cycle: CycleInput) -> dict[str, int]:
    """Station id -> position in the cycle's index (built once per input)."""
    if "positions" not in cycle.extra:
        assert cycle.index is not None
        cycle.extra["positions"] = {str(s): k for k, s in enumerate(cycle.index.ids)}
    positions: dict[str, int] = cycle.extra["positions"]
    return positions


def _grid_rows(cycle: CycleInput, nodes: list[int], model: Any, source: str) -> pd.DataFrame:
    from probcast.ops.serve_grid import model_rows
    from probcast.predict.grid_checks import GridPredictError

    try:
        return model_rows(cycle, nodes, model, source)
    except GridPredictError as err:  # the pipeline's model does not fit its grid
        raise HTTPException(503, str(err)) from err


def _check_size(
    cycle: CycleInput,
    mapping: pd.DataFrame | None,
    ids: list[str],
    leads: list[float],
    limits: Limits,
) -> None:
    """Lead times the cycle has none of are a 404; an answer over the row limit a 413."""
    have = set(_cycle_leads(cycle))
    absent = [h for h in leads if float(h) not in have]
    if absent:
        raise HTTPException(
            404, f"lead time(s) {absent[:20]} h not in the cycle (it has {sorted(have)[:50]} h)"
        )
    n = (len(mapping) if mapping is not None else len(ids)) * len(leads)
    if n > limits.max_rows:
        raise HTTPException(413, f"{n} rows asked for; at most {limits.max_rows} a request")


def create_app(pipe: Pipeline, store: StateStore, limits: Limits | None = None) -> FastAPI:
    """The API of ``pipe`` (inputs and model from the pipeline file, cycles from ``store``)."""
    limits = limits or Limits()
    app = FastAPI(
        title="probcast",
        description="calibrated probabilistic forecasts on demand",
        responses={413: ERRORS[413]},
    )
    app.add_middleware(BodyLimit, limit=limits.max_body_bytes)  # inside the metrics
    instrument_app(app, pipe.name, pipe.model)
    inputs = InputCache(read_cycle_input)
    templates = InputCache(read_template, size=1)

    def template(path: str) -> pd.DataFrame:
        """The pipeline's template table, read once (again when the file changes)."""
        try:
            return templates.get(Path(path))
        except (OSError, ValueError) as err:
            raise HTTPException(503, f"template {path} unreadable: {err}") from err

    cache: dict[str, Any] = {}
    lock = threading.Lock()
    Query_ = query_model(limits.max_points)

    def model() -> tuple[Any, str]:
        """The model and its fingerprint, loaded again when its files change.

        A registry alias moved by a promotion or rollback takes effect at the next request.
        """
        from probcast.model.artefact import load as load_model

        current = fingerprint()
        with lock:
            if cache.get("fingerprint") != current:
                try:
                    cache["model"] = load_model(pipe.model)
                except (OSError, ValueError) as err:  # incomplete, damaged, unreadable
                    raise HTTPException(503, f"model not loadable: {err}") from err
                cache["fingerprint"] = current
                publish_model(pipe.name, pipe.model, current)  # a promotion shows in /metrics
            return cache["model"], current

    def fingerprint() -> str:
        from probcast.predict.grid_output import model_fingerprint

        try:
            return str(model_fingerprint(pipe.model))
        except OSError as err:
            raise HTTPException(503, f"model not readable: {err}") from err

    def parsed(text: str) -> str:
        try:
            return cycle_id(parse_cycle(text))
        except PipelineError as err:
            raise HTTPException(400, str(err)) from err

    @app.get("/health")
    def health() -> dict[str, Any]:
        """Liveness: the process answers and the model's files are readable."""
        return {"status": "ok", "pipeline": pipe.name, "model_fingerprint": fingerprint()}

    @app.get("/ready", response_model=ReadyReply, responses={503: {"model": Problem}})
    def ready() -> dict[str, Any]:
        """Readiness: the model is loaded (loaded now if needed) and the state store answers."""
        try:
            _, current = model()
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
            503: {"model": Problem, "description": "the cycle's input unreadable or unfit"},
        },
    )
    def forecast(
        query: Query_,  # type: ignore[valid-type]
        format: Literal["json", "parquet"] | None = Query(None, description="else Accept"),
        accept: str | None = Header(None, max_length=1000),
    ) -> Response:
        """Predict the cycle's rows of the stations (or points) asked for, now."""
        from probcast.predict.request import PredictRequest, RequestError
        from probcast.predict.runner import StationRunner

        cid = parsed(query.cycle)  # type: ignore[attr-defined]
        when = parse_cycle(cid)
        path = pipe.input_path(when)
        if not path.exists():
            raise HTTPException(404, f"no input for cycle {cid}")
        why = input_complete(pipe, when, settle=False)  # a marker rule, a Parquet footer
        if why:
            raise HTTPException(503, f"cycle {cid}: {why}")
        loaded, model_fingerprint = model()
        try:
            cycle = inputs.get(path, when)
            cycle = cycle.for_model(loaded, str(path))  # (amounts since the start de-accumulated)
        except (OSError, ValueError) as err:  # unreadable, or holds other runs than the cycle
            raise HTTPException(503, f"input of cycle {cid} unusable: {err}") from err
        table, mapping, ids, leads = _rows(cycle, query, limits, f"cycle {cid}", loaded)
        _check_size(cycle, mapping, ids, leads, limits)
        options = {k: v for k, v in pipe.request.items() if k in SERVED_OPTIONS}
        if cycle.kind == "stations" and options.get("template") is not None:
            options["template"] = template(str(options["template"]))
        else:  # a grid's rows: the grid products' members are not shuffled either
            options.pop("template", None)
        units = parse_units_or_400(query.units)  # type: ignore[attr-defined]
        check_variables(query.thresholds, units, list(loaded.targets))  # type: ignore[attr-defined]
        try:
            request = PredictRequest(
                model=pipe.model,
                input=bucketed(table, usable=cycle.table) if len(table) else table,
                members=query.members,  # type: ignore[attr-defined]
                quantiles=tuple(query.quantiles),  # type: ignore[attr-defined]
                thresholds={k: tuple(v) for k, v in query.thresholds.items()} or None,  # type: ignore[attr-defined]
                params=query.params,  # type: ignore[attr-defined]
                units=units or None,
                **options,
            )
        except RequestError as err:
            raise HTTPException(400, f"{type(err).__name__}: {err}") from err
        if table.empty:  # nothing usable asked for: every row answered as missing
            keys = ["station", "init_time", "lead_time", "valid_time"]
            flags = [f"{v}_source" for v in loaded.targets]
            result, pred = None, pd.DataFrame(columns=[*keys, *flags])
        else:
            try:
                result = StationRunner(request, loaded, validated=True).execute()  # (read)
            except RequestError as err:
                raise HTTPException(400, f"{type(err).__name__}: {err}") from err
            except (ValueError, KeyError) as err:  # the input lacks what the model needs
                raise HTTPException(
                    503, f"input of cycle {cid} unfit: {type(err).__name__}: {err}"
                ) from err
            assert result.table is not None
            pred = result.table.iloc[: len(table)]
            if pred["station"].astype(str).str.contains(PAD_MARK, regex=False).any():
                raise RuntimeError("pad rows before the rows asked for: order not kept")
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
        return answer(pred, families, head, wants_parquet(format, accept))

    return app


def main(argv: list[str]) -> int:
    """``probcast serve`` (see :mod:`probcast.ops.cli_serve`)."""
    from probcast.ops.cli_serve import main as serve

    return serve(argv)
