"""Backfill in parallel: the cycles of a period run at once, each in its own process, on Dask.

Each cycle is one task, independent of the others: it opens the pipeline and the state store
itself and goes through :func:`probcast.ops.cycle.run_cycle`, so the lease, the per-step
records and the no-op of a finished cycle hold exactly as in a sequential backfill (two
tasks of one cycle, or a task and a ``probcast run`` of the same cycle elsewhere, run it
once). Locally the tasks run on Dask's process pool (``--workers``: processes, each with its
own JAX runtime and model; memory grows with them); with ``--scheduler ADDRESS`` they run on
a ``dask.distributed`` cluster whose workers see the same files and state store.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime


def run_one(pipeline_file: str, state: str | None, cycle: str) -> str:
    """Run one cycle in this process; its result line as ``probcast run`` prints it."""
    from probcast.ops.cycle import open_store, run_cycle
    from probcast.ops.pipeline import load, parse_cycle

    pipe = load(pipeline_file)
    store = open_store(pipe, state)
    try:
        outcome = run_cycle(pipe, parse_cycle(cycle), store)
    finally:
        store.close()
    ran = ",".join(outcome.ran) or "-"
    return f"{outcome.cycle} {outcome.status} ran={ran} {outcome.error}".rstrip()


def run_parallel(
    pipeline_file: str,
    state: str | None,
    cycles: Sequence[datetime],
    workers: int,
    scheduler: str | None = None,
) -> list[str]:
    """Run ``cycles`` on ``workers`` local processes (or the cluster at ``scheduler``).

    Returns:
        One result line per cycle, in the order of ``cycles``.
    """
    import dask
    from dask import delayed

    from probcast.ops.pipeline import cycle_id

    tasks = [delayed(run_one)(pipeline_file, state, cycle_id(c)) for c in cycles]
    if scheduler:
        from distributed import Client

        with Client(scheduler) as client:
            return list(client.gather(client.compute(tasks)))
    with dask.config.set({"multiprocessing.context": "spawn"}):
        return list(dask.compute(*tasks, scheduler="processes", num_workers=workers))
