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
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from fastapi import FastAPI, Header, HTTPException, Query, Response
from fastapi import Path as PathParam

from probcast.ops.metrics_http import instrument_app
from probcast.ops.pipeline import Pipeline, PipelineError, cycle_id, parse_cycle
from probcast.ops.serve_format import PARQUET, answer, wants_parquet
from probcast.ops.serve_limits import BodyLimit, Limits
from probcast.ops.serve_points import CycleInput, InputCache, NodeIndex, PointError
from probcast.ops.serve_query import ForecastReply, Problem, ReadyReply, query_model
from probcast.ops.state import StateStore

KEYS = ["station", "init_time", "lead_time", "valid_time"]
PAD = "~pad"
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
    table["station"] = table["station"].astype(str)
    try:
        index: NodeIndex | None = NodeIndex.of_table(table, path.name)
        error = ""
    except PointError as err:
        index, error = None, str(err)
    extra = {"stations": set(table["station"].unique()), "no_index": error}
    return CycleInput("stations", index, table=table, extra=extra)  # type: ignore[arg-type]


def _rows(
    cycle: CycleInput, query: Any, limits: Limits, source: str, model: Any
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The input rows to predict and, for points, ``(point, station, distance_km)``."""
    mapping = None
    ids: list[str] | None = None
    if query.points is not None:
        if cycle.index is None:
            raise HTTPException(422, cycle.extra["no_index"])
        lat = [p.latitude for p in query.points]
        lon = [p.longitude for p in query.points]
        try:
            pos, dist = cycle.index.nearest(lat, lon, limits.max_distance_km, source)
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
    return table.reset_index(drop=True), mapping


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


def bucketed(table: pd.DataFrame, smallest: int = 64) -> pd.DataFrame:
    """``table`` padded to the next power of two rows (at least ``smallest``).

    The network is compiled once per input shape: without padding, every new number of rows
    compiles it again (seconds on a CPU). Pad rows repeat the last row under station ids
    ``<id>~pad<k>`` (unique keys) and are dropped from the answer (:data:`PAD`).
    """
    n = len(table)
    size = max(smallest, 1 << max(0, n - 1).bit_length())
    if size == n:
        return table
    pad = table.iloc[np.full(size - n, n - 1)].copy()
    pad["station"] = [f"{s}{PAD}{k}" for k, s in enumerate(pad["station"].astype(str))]
    return pd.concat([table, pad], ignore_index=True)


def _check_size(table: pd.DataFrame, mapping: pd.DataFrame | None, limits: Limits) -> None:
    if table.empty:
        raise HTTPException(404, "no rows match the stations, points and lead times asked for")
    if mapping is None:
        n = len(table)
    else:
        per_station = table["station"].value_counts()
        n = int(per_station.reindex(mapping["station"]).fillna(0).sum())
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
    inputs = InputCache(read_input)
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
        from probcast.predict.runner import run

        cid = parsed(query.cycle)  # type: ignore[attr-defined]
        path = pipe.input_path(parse_cycle(cid))
        if not path.exists():
            raise HTTPException(404, f"no input for cycle {cid}")
        loaded, model_fingerprint = model()
        try:
            cycle = inputs.get(path)
        except (OSError, ValueError) as err:  # the input exists but cannot be used
            raise HTTPException(503, f"input of cycle {cid} unreadable: {err}") from err
        table, mapping = _rows(cycle, query, limits, f"cycle {cid}", loaded)
        _check_size(table, mapping, limits)
        try:
            request = PredictRequest(
                model=pipe.model,
                input=bucketed(table),
                members=query.members,  # type: ignore[attr-defined]
                quantiles=tuple(query.quantiles),  # type: ignore[attr-defined]
                thresholds={k: tuple(v) for k, v in query.thresholds.items()} or None,  # type: ignore[attr-defined]
                params=query.params,  # type: ignore[attr-defined]
            )
            result = run(request, model=loaded)
        except (RequestError, ValueError, KeyError) as err:
            raise HTTPException(400, f"{type(err).__name__}: {err}") from err
        assert result.table is not None
        pred = result.table.iloc[: len(table)]
        if pred["station"].astype(str).str.contains(PAD, regex=False).any():
            raise RuntimeError("pad rows before the rows asked for: order not kept")  # a bug
        pred = pred.drop(columns=[c for c in pred.columns if c.startswith(("fc_", "obs_"))])
        if mapping is not None:
            pred = mapping.merge(pred, on="station", how="inner", sort=False)
            pred = pred.sort_values(["point", "lead_time"], kind="stable").reset_index(drop=True)
        head = {"cycle": cid, "model_fingerprint": model_fingerprint}
        return answer(pred, result.families, head, wants_parquet(format, accept))

    return app


def main(argv: list[str]) -> int:
    """``probcast serve`` (see :mod:`probcast.ops.cli_serve`)."""
    from probcast.ops.cli_serve import main as serve

    return serve(argv)
