"""``probcast serve``: forecasts on demand over HTTP (FastAPI), for the stations of a cycle.

- ``GET /health``: the pipeline, its model's fingerprint, ``status: ok``.
- ``GET /cycles?limit=N``: the cycles in the state store, newest first.
- ``GET /metrics``: Prometheus metrics (requests, latency, model in use; ``docs/monitoring.md``).
- ``POST /forecast``: ``{"cycle": "2026-11-29T00Z", "stations": ["ST000"], "lead_times": [6],
  "quantiles": [0.1, 0.5, 0.9], "thresholds": {"tp": [1.0]}, "members": 0}`` -> the rows of
  the cycle's input for those stations (all when omitted), predicted with one
  :class:`~probcast.PredictRequest`, as JSON records (quantiles ``<var>_q<level>``,
  probabilities ``<var>_p_gt_<t>``, members ``<var>_mNNN``).

Malformed requests get a 4xx with a message (422 for the wrong shape, 400 for values the
request check refuses, 404 for an unknown cycle or station, 413 for too many rows).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import Any

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from probcast.ops.cli import pipeline_args
from probcast.ops.cycle import open_store
from probcast.ops.metrics_http import instrument_app
from probcast.ops.pipeline import Pipeline, PipelineError, cycle_id, load, parse_cycle
from probcast.ops.state import StateStore

MAX_ROWS = 10_000
MAX_MEMBERS = 200
KEYS = ["station", "init_time", "lead_time", "valid_time"]


class ForecastQuery(BaseModel):
    """The body of ``POST /forecast``."""

    model_config = ConfigDict(extra="forbid")

    cycle: str = Field(min_length=1, max_length=40)
    stations: list[str] | None = Field(default=None, max_length=MAX_ROWS)
    lead_times: list[float] | None = Field(default=None, max_length=1000)
    quantiles: list[float] = Field(default_factory=lambda: [0.1, 0.5, 0.9], max_length=99)
    thresholds: dict[str, list[float]] = Field(default_factory=dict, max_length=50)
    members: int = Field(default=0, ge=0, le=MAX_MEMBERS)


def _records(table: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = json.loads(table.to_json(orient="records", date_format="iso"))
    return out


def create_app(pipe: Pipeline, store: StateStore) -> FastAPI:
    """The API of ``pipe`` (inputs and model from the pipeline file, cycles from ``store``)."""
    app = FastAPI(title="probcast", description="calibrated probabilistic forecasts on demand")
    instrument_app(app, pipe.name, pipe.model)
    cache: dict[str, Any] = {}
    lock = threading.Lock()

    def model() -> Any:
        from probcast.model.artefact import load as load_model

        with lock:
            if "model" not in cache:
                cache["model"] = load_model(pipe.model)
            return cache["model"]

    @app.get("/health")
    def health() -> dict[str, Any]:
        from probcast.predict.grid_output import model_fingerprint

        try:
            fingerprint = model_fingerprint(pipe.model)
        except OSError as err:
            raise HTTPException(503, f"model not readable: {err}") from err
        return {"status": "ok", "pipeline": pipe.name, "model_fingerprint": fingerprint}

    @app.get("/cycles")
    def cycles(limit: int = 100) -> list[dict[str, Any]]:
        if not 1 <= limit <= 10_000:
            raise HTTPException(400, f"limit must lie in [1, 10000], got {limit}")
        rows = store.list_cycles(limit)
        return [{k: v for k, v in r.items() if k != "pipeline"} for r in rows]

    @app.post("/forecast")
    def forecast(query: ForecastQuery) -> dict[str, Any]:
        from probcast.ingest.tables import read_table
        from probcast.predict.request import PredictRequest, RequestError
        from probcast.predict.runner import run

        try:
            cycle = parse_cycle(query.cycle)
        except PipelineError as err:
            raise HTTPException(400, str(err)) from err
        path = pipe.input_path(cycle)
        if not path.exists():
            raise HTTPException(404, f"no input for cycle {cycle_id(cycle)}")
        table = read_table(path)
        if query.stations is not None:
            unknown = sorted(set(query.stations) - set(table["station"].astype(str)))
            if unknown:
                raise HTTPException(404, f"unknown stations in {cycle_id(cycle)}: {unknown[:20]}")
            table = table[table["station"].astype(str).isin(query.stations)]
        if query.lead_times is not None:
            table = table[table["lead_time"].isin(query.lead_times)]
        if table.empty:
            raise HTTPException(404, "no rows match the stations and lead times asked for")
        if len(table) > MAX_ROWS:
            raise HTTPException(413, f"{len(table)} rows asked for; at most {MAX_ROWS} a request")
        try:
            request = PredictRequest(
                model=pipe.model,
                input=table.reset_index(drop=True),
                members=query.members,
                quantiles=tuple(query.quantiles),
                thresholds={k: tuple(v) for k, v in query.thresholds.items()} or None,
                params=False,
            )
            result = run(request, model=model())
        except (RequestError, ValueError, KeyError) as err:
            raise HTTPException(400, f"{type(err).__name__}: {err}") from err
        assert result.table is not None
        pred = result.table
        drop = [c for c in pred.columns if c.startswith(("fc_", "obs_"))]
        return {
            "cycle": cycle_id(cycle),
            "rows": _records(pred.drop(columns=drop)),
        }

    return app


def main(argv: list[str]) -> int:
    """``probcast serve --pipeline ops.yaml [--host 127.0.0.1] [--port 8000]``."""
    parser = argparse.ArgumentParser(prog="probcast serve", description=__doc__.splitlines()[0])
    pipeline_args(parser)
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args(argv)
    try:
        pipe = load(args.pipeline)
    except PipelineError as err:
        print(f"probcast serve: {err}", file=sys.stderr)
        return 2
    import uvicorn

    uvicorn.run(create_app(pipe, open_store(pipe, args.state)), host=args.host, port=args.port)
    return 0
