"""Backfill in parallel: the cycles of a period run at once, each in its own process, on Dask.

Each cycle is one task, independent of the others: it opens the pipeline and the state store
itself and goes through :func:`probcast.ops.cycle.run_cycle`, so the lease, the per-step
records and the no-op of a finished cycle hold exactly as in a sequential backfill (two
tasks of one cycle, or a task and a ``probcast run`` of the same cycle elsewhere, run it
once). Locally the tasks run on Dask's process pool (``--workers``: processes, each with its
own JAX runtime and model; memory grows with them); with ``--scheduler ADDRESS`` they run on
a ``dask.distributed`` cluster whose workers see the same files and state store.

The workers export no metrics (their processes have no export configured): each task returns
its outcome and the summary of its prediction, and the parent records them
(:func:`probcast.ops.metrics.record_cycle` with the state store,
:func:`probcast.ops.metrics.apply_prediction`) and exports (textfile, Pushgateway) as each
cycle completes, as a sequential backfill does.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)


def run_one(pipeline_file: str, state: str | None, cycle: str) -> dict[str, Any]:
    """Run one cycle in this process.

    Returns:
        The :class:`probcast.ops.cycle.CycleOutcome` as a dict, with ``prediction``: the
        summary of this run's prediction (:func:`probcast.ops.metrics.take_prediction`),
        or ``None`` when it predicted nothing.
    """
    from probcast.ops import metrics
    from probcast.ops.cycle import open_store, run_cycle
    from probcast.ops.pipeline import load, parse_cycle

    pipe = load(pipeline_file)
    metrics.take_prediction(pipe.name)  # an earlier task's, in this worker process
    store = open_store(pipe, state)
    try:
        outcome = run_cycle(pipe, parse_cycle(cycle), store)
    finally:
        store.close()
    return {**dataclasses.asdict(outcome), "prediction": metrics.take_prediction(pipe.name)}


def result_line(result: dict[str, Any]) -> str:
    """A task's result as ``probcast run`` prints it: ``<cycle> <status> ran=<steps> <error>``."""
    ran = ",".join(result["ran"]) or "-"
    return f"{result['cycle']} {result['status']} ran={ran} {result['error']}".rstrip()


def run_parallel(
    pipeline_file: str,
    state: str | None,
    cycles: Sequence[datetime],
    workers: int,
    scheduler: str | None = None,
) -> list[str]:
    """Run ``cycles`` on ``workers`` local processes (or the cluster at ``scheduler``).

    Each outcome is recorded in this process's metrics and exported as its task completes.

    Returns:
        One result line per cycle, in the order of ``cycles``.
    """
    from dask import delayed

    from probcast.ops import metrics, metrics_export
    from probcast.ops.cycle import open_store
    from probcast.ops.pipeline import cycle_id, load

    pipe = load(pipeline_file)
    store = open_store(pipe, state)
    results: dict[str, dict[str, Any]] = {}

    def done(result: dict[str, Any]) -> None:
        results[result["cycle"]] = result
        _record(pipe, store, result)

    tasks = [delayed(run_one)(pipeline_file, state, cycle_id(c)) for c in cycles]
    try:
        _compute(tasks, workers, scheduler, done)
    except Exception as err:  # a task raised (a lost lease...): counted, then reported
        metrics.record_error(pipe.name, err)
        metrics_export.flush()
        raise
    finally:
        store.close()
    return [result_line(results[cycle_id(c)]) for c in cycles]


def _compute(
    tasks: list[Any], workers: int, scheduler: str | None, done: Callable[[Any], None]
) -> None:
    """Compute ``tasks``, calling ``done(result)`` in this process as each one completes."""
    import dask

    if scheduler:
        from distributed import Client, as_completed

        with Client(scheduler) as client:
            for future in as_completed(client.compute(tasks)):
                done(future.result())
        return
    from dask.callbacks import Callback

    def posttask(key: Any, result: Any, *_: Any) -> None:  # in this process, per task
        if isinstance(result, dict) and "cycle" in result:
            done(result)

    with dask.config.set({"multiprocessing.context": "spawn"}), Callback(posttask=posttask):
        dask.compute(*tasks, scheduler="processes", num_workers=workers)


def _record(pipe: Any, store: Any, result: dict[str, Any]) -> None:
    """Record a task's outcome and prediction in this process's metrics, then export them."""
    from probcast.ops import metrics, metrics_export
    from probcast.ops.cycle import CycleOutcome
    from probcast.ops.pipeline import parse_cycle

    names = {f.name for f in dataclasses.fields(CycleOutcome)}
    outcome = CycleOutcome(**{k: v for k, v in result.items() if k in names})
    try:
        metrics.record_cycle(
            pipe.name, parse_cycle(outcome.cycle), outcome, store, every_hours=pipe.every_hours
        )
        if result.get("prediction"):
            metrics.apply_prediction(pipe.name, result["prediction"])
    except Exception as err:  # metrics never fail a backfill
        log.warning("metrics: could not record cycle %s: %s", outcome.cycle, err)
    metrics_export.flush()
