"""Prometheus metrics of the operational commands (``run``, ``watch``, ``serve``, schedulers).

Every metric lives in one registry, :data:`REGISTRY`. The batch side is recorded by
:func:`probcast.ops.cycle.run_cycle` itself (through :func:`track_cycle` and
:func:`record_prediction`), so every caller of ``run_cycle`` (``run``, ``watch``, a
scheduler, a broker consumer) gets it for free; :mod:`probcast.ops.metrics_export` writes it
to a node-exporter textfile or pushes it to a Pushgateway after each cycle. ``probcast
serve`` exposes it at ``GET /metrics`` (:func:`instrument_app`). Reference:
``docs/monitoring.md``.

Recording never fails a cycle: an error while recording is logged as a warning.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

log = logging.getLogger(__name__)

REGISTRY = CollectorRegistry(auto_describe=True)
"""probcast's metrics (not the client's global registry: no process metrics in textfiles)."""

_CYCLE_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400)
_HTTP_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
SOURCES = ("model", "emos", "raw_dressed", "missing")
"""Values of the per-row ``<var>_source`` column of station products."""

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
    "When (epoch s) the newest finished cycle seen by this process finished.",
    ["pipeline"],
    registry=REGISTRY,
)
LAST_FAILURE = Gauge(
    "probcast_cycle_last_failure_timestamp_seconds",
    "When (epoch s) this process last saw a cycle fail.",
    ["pipeline"],
    registry=REGISTRY,
)
LATEST_CYCLE = Gauge(
    "probcast_latest_cycle_timestamp_seconds",
    "Nominal time (epoch s) of the newest finished cycle seen by this process.",
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
    "Arrival (mtime) of the newest acquired input minus its cycle's nominal time.",
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


class Outcome(Protocol):
    """What a cycle run returns (:class:`probcast.ops.cycle.CycleOutcome`)."""

    cycle: str
    status: str
    ran: list[str]
    error: str


class Store(Protocol):
    """The part of :class:`probcast.ops.state.StateStore` read here."""

    def steps_of(self, cycle: str) -> list[dict[str, Any]]: ...  # noqa: D102

    def cycle(self, cycle: str) -> dict[str, Any] | None: ...  # noqa: D102


def _epoch(value: datetime | None) -> float | None:
    """A time (naive: UTC, as the state store keeps them) as epoch seconds."""
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def failure_cause(error: str) -> str:
    """A short cause of a step error ``"<step>: <Type>: <message>"`` for a label."""
    _, _, rest = error.partition(": ")
    kind, _, message = rest.partition(": ")
    if kind == "StepError":
        for prefix, cause in (
            ("input not found", "input_missing"),
            ("input not complete", "input_incomplete"),
            ("input still growing", "input_incomplete"),
            ("input changed", "input_changed"),
        ):
            if message.startswith(prefix):
                return cause
    return kind or "unknown"


def observe_step(pipeline: str, step: str, seconds: float, error: str = "") -> None:
    """Record one step's wall time, and its failure (``error`` as the state store words it)."""
    STEP_SECONDS.labels(pipeline, step).observe(max(0.0, seconds))
    if error:
        STEP_FAILURES.labels(pipeline, step, failure_cause(error)).inc()


def record_cycle(
    pipeline: str,
    cycle: datetime,
    outcome: Outcome,
    store: Store | None = None,
    *,
    seconds: float | None = None,
    every_hours: int | None = None,
) -> None:
    """Record one cycle's outcome; with ``store``, its steps and input times too.

    Args:
        pipeline: The pipeline's name.
        cycle: The cycle (aware UTC).
        outcome: What the run did (``status``: finished, failed, done, busy or error).
        store: The state store (step durations, input path and times are read from it).
        seconds: Wall time of the run (observed for ``finished`` and ``failed``).
        every_hours: The pipeline's cycle spacing.
    """
    CYCLES.labels(pipeline, outcome.status).inc()
    nominal = _epoch(cycle) or 0.0
    if every_hours is not None:
        INTERVAL.labels(pipeline).set(every_hours * 3600)
    now = time.time()
    if outcome.status == "failed":
        LAST_FAILURE.labels(pipeline).set(now)
    if seconds is not None and outcome.status in ("finished", "failed"):
        CYCLE_SECONDS.labels(pipeline).observe(seconds)
    if store is None:
        return
    rows = {r["step"]: r for r in store.steps_of(outcome.cycle)}
    failed_step = outcome.error.partition(":")[0] if outcome.status == "failed" else ""
    for name in [*outcome.ran, failed_step]:
        row = rows.get(name) or {}
        start, stop = _epoch(row.get("started_at")), _epoch(row.get("finished_at"))
        if start is not None and stop is not None:
            observe_step(pipeline, name, stop - start, row.get("error") or "")
    acquired = rows.get("acquire")
    if acquired and acquired["status"] == "finished" and acquired.get("outputs"):
        with contextlib.suppress(OSError):
            mtime = Path(acquired["outputs"][0]).stat().st_mtime
            INPUT_DELAY.labels(pipeline).set(mtime - nominal)
            _set_max(INPUT_SEEN, pipeline, mtime)
    if outcome.status in ("finished", "done"):
        row = store.cycle(outcome.cycle) or {}
        finished = _epoch(row.get("finished_at")) or now
        if _set_max(LATEST_CYCLE, pipeline, nominal):
            DELIVERY.labels(pipeline).set(finished - nominal)
        _set_max(LAST_SUCCESS, pipeline, finished)


_HIGHEST: dict[tuple[int, str], float] = {}


def _set_max(gauge: Gauge, pipeline: str, value: float) -> bool:
    """Set ``gauge`` to ``value`` if larger (a backfill does not move it back); True if set."""
    key = (id(gauge), pipeline)
    if value < _HIGHEST.get(key, float("-inf")):
        return False
    _HIGHEST[key] = value
    gauge.labels(pipeline).set(value)
    return True


def record_prediction(
    pipeline: str, table: Any, paths: Mapping[str, Any], fingerprint: str, model: Any = ""
) -> None:
    """Record a prediction: sources of its rows, product sizes, the model in use.

    Args:
        pipeline: The pipeline's name.
        table: The station prediction table (``None`` for grids). Rows are counted per
            ``<var>_source`` column (model, emos, raw_dressed, missing) when there is one.
        paths: Product name -> written file or folder.
        fingerprint: The model's fingerprint.
        model: The model's work directory.
    """
    try:
        MODEL.labels(pipeline).info({"fingerprint": fingerprint, "model": str(model)})
        for name, path in paths.items():
            OUTPUT_BYTES.labels(pipeline, name).set(_size(Path(path)))
        if table is None:
            return
        OUTPUT_ROWS.labels(pipeline).set(len(table))
        for column in [c for c in table.columns if str(c).endswith("_source")]:
            variable = str(column).removesuffix("_source")
            counts = table[column].astype(str).value_counts()
            for source, count in counts.items():
                ROWS.labels(pipeline, variable, str(source)).inc(int(count))
            share = 1.0 - counts.get("model", 0) / len(table) if len(table) else 0.0
            FALLBACK.labels(pipeline, variable).set(share)
    except Exception as err:  # metrics never fail a cycle
        log.warning("metrics: could not record the prediction: %s", err)


def record_partial(pipeline: str, *, partial: bool, update: bool) -> None:
    """Count a finished run of a lead-file cycle that was partial and/or an update."""
    for kind, flag in (("partial", partial), ("update", update)):
        if flag:
            PARTIAL.labels(pipeline, kind).inc()


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


@dataclasses.dataclass
class Tracked:
    """Filled in by the ``with track_cycle(...)`` block: the run's outcome."""

    outcome: Outcome | None = None


@contextlib.contextmanager
def track_cycle(pipe: Any, cycle: datetime, store: Store) -> Iterator[Tracked]:
    """Time the block, then record its ``outcome`` (an exception counts as status ``error``).

    Then the export configured by :mod:`probcast.ops.metrics_export` runs (textfile or push).
    """
    from probcast.ops import metrics_export

    tracked, start = Tracked(), time.monotonic()
    try:
        yield tracked
    except Exception as err:
        STEP_FAILURES.labels(pipe.name, "cycle", type(err).__name__).inc()
        CYCLES.labels(pipe.name, "error").inc()
        LAST_FAILURE.labels(pipe.name).set(time.time())
        metrics_export.flush()
        raise
    if tracked.outcome is not None:
        try:
            record_cycle(
                pipe.name,
                cycle,
                tracked.outcome,
                store,
                seconds=time.monotonic() - start,
                every_hours=pipe.every_hours,
            )
        except Exception as err:  # metrics never fail a cycle
            log.warning("metrics: could not record cycle %s: %s", tracked.outcome.cycle, err)
    metrics_export.flush()
