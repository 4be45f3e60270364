"""Prometheus metrics of the operational commands (``run``, ``watch``, ``serve``, schedulers).

One registry, :data:`REGISTRY`. Each :func:`probcast.ops.cycle.run_cycle` records itself
(:func:`record_cycle`, :func:`record_prediction`) and :mod:`probcast.ops.metrics_export`
writes a textfile or pushes to a Pushgateway; a parallel backfill records its workers'
outcomes in the parent (:mod:`probcast.ops.backfill`); ``probcast serve`` exposes ``GET
/metrics``. With a state store, :func:`record_cycle` also reads the newest finished and failed
cycles and newest input from it, so each export of a short-lived process (a Job per cycle)
carries the pipeline's freshness. Reference: ``docs/monitoring.md``. Recording never fails a
cycle: an error while recording is logged as a warning.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

if TYPE_CHECKING:  # what record_cycle reads (cycle.py imports this module)
    from probcast.ops.cycle import CycleOutcome as Outcome
    from probcast.ops.state import StateStore as Store

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)
"""probcast's metrics (not the client's global registry: no process metrics in textfiles)."""

_CYCLE_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400)
_HTTP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
SOURCES = ("model", "emos", "raw_dressed", "missing")
"""Values of the per-row ``<var>_source`` column of station products."""
STORE_WINDOW = 200  # newest cycles of the state store read for the freshness gauges
CAUSES = {"InputChanged": "input_changed"}  # error types with a cause label of their own


CYCLES = Counter(
    "probcast_cycles",
    "Cycles handled by this process, by outcome (finished, failed, done, busy, error).",
    ["pipeline", "status"],
    registry=REGISTRY,
)
CYCLE_SECONDS = Histogram(
    "probcast_cycle_duration_seconds",
    "Wall time of one run of a cycle's steps, acquire to record (steps already done skipped).",
    ["pipeline"],
    buckets=_CYCLE_BUCKETS,
    registry=REGISTRY,
)
STEP_SECONDS = Histogram(
    "probcast_step_duration_seconds",
    "Wall time of one step of a cycle (acquire, predict, publish, record).",
    ["pipeline", "step"],
    buckets=_CYCLE_BUCKETS,
    registry=REGISTRY,
)
STEP_FAILURES = Counter(
    "probcast_step_failures",
    "Failed steps by cause (input_missing, input_incomplete, input_changed, or the error type).",
    ["pipeline", "step", "cause"],
    registry=REGISTRY,
)
LAST_SUCCESS = Gauge(
    "probcast_cycle_last_success_timestamp_seconds",
    "When (epoch s) a cycle last finished (this process, or its state store).",
    ["pipeline"],
    registry=REGISTRY,
)
LAST_FAILURE = Gauge(
    "probcast_cycle_last_failure_timestamp_seconds",
    "When (epoch s) a cycle last failed (this process, or a still failed one of the store).",
    ["pipeline"],
    registry=REGISTRY,
)
LATEST_CYCLE = Gauge(
    "probcast_latest_cycle_timestamp_seconds",
    "Nominal time (epoch s) of the newest finished cycle (this process, or its state store).",
    ["pipeline"],
    registry=REGISTRY,
)
DELIVERY = Gauge(
    "probcast_cycle_delivery_delay_seconds",
    "From a cycle's nominal time to its products being recorded (newest finished cycle).",
    ["pipeline"],
    registry=REGISTRY,
)
INTERVAL = Gauge(
    "probcast_cycle_interval_seconds",
    "Spacing of the pipeline's cycles (every_hours).",
    ["pipeline"],
    registry=REGISTRY,
)
INPUT_DELAY = Gauge(
    "probcast_input_delay_seconds",
    "Arrival (mtime) of the newest cycle's acquired input minus that cycle's nominal time.",
    ["pipeline"],
    registry=REGISTRY,
)
INPUT_SEEN = Gauge(
    "probcast_input_last_seen_timestamp_seconds",
    "Arrival (mtime, epoch s) of the newest input acquired.",
    ["pipeline"],
    registry=REGISTRY,
)
ROWS = Counter(
    "probcast_forecast_rows",
    "Station forecast rows by variable and source (model, emos, raw_dressed, missing).",
    ["pipeline", "variable", "source"],
    registry=REGISTRY,
)
FALLBACK = Gauge(
    "probcast_fallback_fraction",
    "Share of the last predicted cycle's rows not from the model (EMOS, raw, missing).",
    ["pipeline", "variable"],
    registry=REGISTRY,
)
OUTPUT_BYTES = Gauge(
    "probcast_output_bytes",
    "Size of each product of the last predicted cycle (bytes; folders summed).",
    ["pipeline", "product"],
    registry=REGISTRY,
)
OUTPUT_ROWS = Gauge(
    "probcast_output_rows",
    "Rows of the last predicted cycle's station table.",
    ["pipeline"],
    registry=REGISTRY,
)
PARTIAL = Counter(
    "probcast_partial_cycles",
    "Runs of lead-file cycles: partial (leads missing) and update (a rerun on more leads).",
    ["pipeline", "kind"],
    registry=REGISTRY,
)
MODEL = Info(
    "probcast_model",
    "The model in use: its fingerprint and work directory.",
    ["pipeline"],
    registry=REGISTRY,
)
HTTP_REQUESTS = Counter(
    "probcast_http_requests",
    "Requests to probcast serve by route template, method and status code.",
    ["handler", "method", "status"],
    registry=REGISTRY,
)
HTTP_SECONDS = Histogram(
    "probcast_http_request_duration_seconds",
    "Time to answer a request to probcast serve.",
    ["handler", "method"],
    buckets=_HTTP_BUCKETS,
    registry=REGISTRY,
)

EXTERNAL = {
    "probcast_drift_psi": "probcast monitor: population stability index per feature",
    "probcast_drift_ks": "probcast monitor: Kolmogorov-Smirnov statistic per feature",
    "probcast_skill_crpss_rolling": "probcast monitor: rolling CRPSS per variable/reference",
    "probcast_monitor_alert": "probcast monitor: 1 while an alert of a kind holds, 0 clear",
}
"""Metrics the alert rules and dashboard use that ``probcast monitor`` defines, not this module."""


def _epoch(value: datetime | None) -> float | None:
    """A time (naive: UTC, as the state store keeps them) as epoch seconds."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def failure_cause(error: str) -> str:
    """Label of a step error ``"<step>: <Type>: <message>"``: an input cause, or the type."""
    _, _, rest = error.partition(": ")
    kind, _, message = rest.partition(": ")
    if kind in CAUSES:
        return CAUSES[kind]
    if kind == "StepError":
        for prefix, cause in (
            ("input not found", "input_missing"),
            ("input not complete", "input_incomplete"),
            ("input still growing", "input_incomplete"),
            ("input changed", "input_changed"),
        ):
            if message.startswith(prefix):
                return cause
    return kind if kind.isidentifier() else "unknown"


def observe_step(pipeline: str, step: str, seconds: float, error: str = "") -> None:
    """Record one step's wall time, and its failure (``error`` as the state store words it)."""
    STEP_SECONDS.labels(pipeline, step).observe(max(0.0, seconds))
    if error:
        STEP_FAILURES.labels(pipeline, step, failure_cause(error)).inc()


def record_error(pipeline: str, err: BaseException) -> None:
    """Record a run that raised outside its steps (status ``error``, step ``cycle``)."""
    STEP_FAILURES.labels(pipeline, "cycle", type(err).__name__).inc()
    CYCLES.labels(pipeline, "error").inc()
    _set_max(LAST_FAILURE, pipeline, time.time())


def record_cycle(
    pipeline: str,
    cycle: datetime,
    outcome: Outcome,
    store: Store | None = None,
    *,
    seconds: float | None = None,
    every_hours: int | None = None,
) -> None:
    """Record one cycle's outcome; with ``store``, its input and the store's freshness too.

    Args:
        pipeline: The pipeline's name.
        cycle: The cycle (aware UTC).
        outcome: What the run did (``status``: finished, failed, done, busy or error).
        store: The state store (input path and times, newest finished/failed cycles).
        seconds: Wall time of the run (default: ``outcome.seconds``; observed for
            ``finished`` and ``failed``).
        every_hours: The pipeline's cycle spacing.
    """
    CYCLES.labels(pipeline, outcome.status).inc()
    nominal = _epoch(cycle) or 0.0
    if every_hours is not None:
        INTERVAL.labels(pipeline).set(every_hours * 3600)
    now = time.time()
    if outcome.status == "failed":
        _set_max(LAST_FAILURE, pipeline, now)
    if seconds is None:
        seconds = getattr(outcome, "seconds", None)
    if seconds is not None and outcome.status in ("finished", "failed"):
        CYCLE_SECONDS.labels(pipeline).observe(seconds)
    _record_steps(pipeline, outcome, store)
    if store is None:
        return
    _record_input(pipeline, nominal, store.step(outcome.cycle, "acquire"))
    if outcome.status in ("finished", "done"):
        row = store.cycle(outcome.cycle) or {}
        _record_success(pipeline, nominal, _epoch(row.get("finished_at")) or now)
    _record_store(pipeline, store)


def _record_steps(pipeline: str, outcome: Outcome, store: Store | None) -> None:
    """Step times (the run's own, else its rows'); the failed step's cause (never a ran one's)."""
    timed: Mapping[str, float] = getattr(outcome, "steps", None) or {}
    failed = outcome.error.partition(":")[0] if outcome.status == "failed" else ""
    names = [n for n in dict.fromkeys([*outcome.ran, failed]) if n]
    rows: dict[str, dict[str, Any]] = {}
    if store is not None and any(n not in timed for n in names):
        rows = {r["step"]: r for r in store.steps_of(outcome.cycle)}
    for name in names:
        seconds = timed.get(name)
        row = rows.get(name) or {}
        if seconds is None and (name == failed or row.get("status") == "finished"):
            start, stop = _epoch(row.get("started_at")), _epoch(row.get("finished_at"))
            seconds = stop - start if start is not None and stop is not None else None
        if seconds is not None:
            STEP_SECONDS.labels(pipeline, name).observe(max(0.0, seconds))
        if name == failed:
            STEP_FAILURES.labels(pipeline, name, failure_cause(outcome.error)).inc()


def _record_input(pipeline: str, nominal: float, acquired: Mapping[str, Any] | None) -> None:
    """Input arrival of a cycle's finished ``acquire`` (the delay only for the newest cycle)."""
    if not acquired or acquired.get("status") != "finished" or not acquired.get("outputs"):
        return
    outputs = acquired["outputs"]
    first = next(iter(outputs.values())) if isinstance(outputs, Mapping) else outputs[0]
    try:
        mtime = Path(str(first)).stat().st_mtime
    except OSError:
        return
    _set_max(INPUT_SEEN, pipeline, mtime)
    if _newest(("input", pipeline), nominal):
        INPUT_DELAY.labels(pipeline).set(mtime - nominal)


def _record_success(pipeline: str, nominal: float, finished: float) -> None:
    if _set_max(LATEST_CYCLE, pipeline, nominal):
        DELIVERY.labels(pipeline).set(finished - nominal)
    _set_max(LAST_SUCCESS, pipeline, finished)


def _record_store(pipeline: str, store: Store) -> None:
    """The freshness gauges from the store's newest cycles (not only this process's)."""
    from probcast.ops.pipeline import PipelineError, parse_cycle

    newest = True
    for row in store.list_cycles(limit=STORE_WINDOW):
        try:
            nominal = _epoch(parse_cycle(str(row["cycle"]))) or 0.0
        except PipelineError:
            continue
        ended = _epoch(row.get("finished_at"))
        if row.get("status") == "failed" and ended is not None:
            _set_max(LAST_FAILURE, pipeline, ended)
        elif row.get("status") == "finished" and ended is not None:
            _record_success(pipeline, nominal, ended)
            if newest:  # the newest finished cycle's input
                _record_input(pipeline, nominal, store.step(str(row["cycle"]), "acquire"))
                newest = False


_HIGHEST: dict[tuple[Any, str], float] = {}


def _newest(key: tuple[Any, str], value: float) -> bool:
    """Whether ``value`` is at least the highest seen under ``key`` (it becomes the highest)."""
    if value < _HIGHEST.get(key, float("-inf")):
        return False
    _HIGHEST[key] = value
    return True


def _set_max(gauge: Gauge, pipeline: str, value: float) -> bool:
    """Set ``gauge`` to ``value`` if larger (a backfill does not move it back); True if set."""
    if not _newest((id(gauge), pipeline), value):
        return False
    gauge.labels(pipeline).set(value)
    return True


_PREDICTIONS: dict[str, dict[str, Any]] = {}


def record_prediction(
    pipeline: str, table: Any, paths: Mapping[str, Any], fingerprint: str, model: Any = ""
) -> None:
    """Record a prediction: its rows' sources, product sizes and the model in use.

    ``table``: the station table (``None`` for grids; rows counted per ``<var>_source``
    column), ``paths``: product name -> file or folder, ``model``: the model's workdir. The
    summary is kept for :func:`take_prediction` (a parallel backfill hands it to its parent).
    """
    try:
        summary: dict[str, Any] = {
            "fingerprint": fingerprint,
            "model": str(model),
            "bytes": {name: _size(Path(path)) for name, path in paths.items()},
            "rows": None if table is None else len(table),
            "sources": {},
        }
        columns = [] if table is None else [c for c in table.columns if str(c).endswith("_source")]
        for column in columns:
            counts = table[column].astype(str).value_counts()
            summary["sources"][str(column).removesuffix("_source")] = {
                str(source): int(count) for source, count in counts.items()
            }
        _PREDICTIONS[pipeline] = summary
        apply_prediction(pipeline, summary)
    except Exception as err:  # metrics never fail a cycle
        log.warning("metrics: could not record the prediction: %s", err)


def take_prediction(pipeline: str) -> dict[str, Any] | None:
    """The summary of the last prediction recorded in this process (and forget it)."""
    return _PREDICTIONS.pop(pipeline, None)


def apply_prediction(pipeline: str, summary: Mapping[str, Any]) -> None:
    """Set the prediction metrics from a summary of :func:`record_prediction`."""
    MODEL.labels(pipeline).info({"fingerprint": summary["fingerprint"], "model": summary["model"]})
    for name, size in summary["bytes"].items():
        OUTPUT_BYTES.labels(pipeline, name).set(size)
    rows = summary["rows"]
    if rows is None:
        return
    OUTPUT_ROWS.labels(pipeline).set(rows)
    for variable, counts in summary["sources"].items():
        for source, count in counts.items():
            ROWS.labels(pipeline, variable, source).inc(count)
        share = 1.0 - counts.get("model", 0) / rows if rows else 0.0
        FALLBACK.labels(pipeline, variable).set(share)


def record_partial(pipeline: str, *, partial: bool, update: bool) -> None:
    """Count a finished run of a lead-file cycle that was partial and/or an update."""
    for kind, flag in (("partial", partial), ("update", update)):
        if flag:
            PARTIAL.labels(pipeline, kind).inc()


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0
