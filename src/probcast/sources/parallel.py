"""Dask-parallel cycles of ``probcast data build`` (``--workers N`` / ``--scheduler ADDRESS``).

Each cycle is one task, independent of the others: the worker opens the NWP source itself
(once per process, then reused; an archive's inventory comes from ``OUT/_inventory``, which
the driver fills before sending tasks), computes the cycle with
:func:`probcast.sources.build.run_cycle` and writes its partition atomically with
:mod:`probcast.io`, as a serial build does. Only a small :class:`CycleOutcome` comes back,
so the driver's memory does not grow with the archive, and an interrupted parallel build
resumes like a serial one (a partition is there whole or not at all).

Tasks carry the stations and the observations of their own time window only and are sent
in batches of a few per worker, so the driver holds a bounded number of them at once.
Locally the tasks run on Dask's process pool (spawned processes, like ``probcast run
--workers``); with ``scheduler`` they run on that ``dask.distributed`` cluster, whose
workers must see the archive and the output folder. A worker process computes one cycle at
a time (ecCodes' multi-field switch is process-wide), so run cluster workers with
``--nthreads 1`` and as many processes as cores.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pandas as pd

from probcast.sources.build import CycleOutcome, obs_window, open_source, run_cycle
from probcast.sources.config import BuildSpec
from probcast.sources.errors import SourceError

CONNECT_TIMEOUT_S = 20
"""Seconds to wait for the scheduler at ``--scheduler``."""

PER_WORKER = 4
"""Tasks per worker in one batch: enough to keep workers busy, few enough to bound memory."""

_sources: dict[str, Any] = {}
_lock = threading.Lock()


def _cached_source(spec: BuildSpec, out: str) -> Any:
    key = json.dumps(
        [spec.nwp, out, spec.area.as_list() if spec.area else None], sort_keys=True, default=str
    )
    if key not in _sources:
        _sources.clear()  # one build at a time per process
        _sources[key] = open_source(spec, out)
    return _sources[key]


def cycle_task(
    spec: BuildSpec, out: str, init: pd.Timestamp, meta: pd.DataFrame, obs: pd.DataFrame
) -> CycleOutcome:
    """Compute and write one cycle in this worker (one at a time per process)."""
    from pathlib import Path

    with _lock:
        return run_cycle(spec, _cached_source(spec, out), init, meta, obs, Path(out))


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def run_cycles(
    spec: BuildSpec,
    out: str | os.PathLike[str],
    inits: Sequence[pd.Timestamp],
    meta: pd.DataFrame,
    obs: pd.DataFrame,
    *,
    workers: int,
    scheduler: str | None = None,
) -> Iterator[CycleOutcome]:
    """Compute ``inits`` in parallel; yield their outcomes in the order of ``inits``.

    Args:
        spec: The build spec.
        out: Output folder (every worker writes its cycles' partitions there).
        inits: Cycles to compute.
        meta: Stations (``station``, ``latitude``, ``longitude``, ``altitude``).
        obs: Quality-controlled observations (each task gets its own window of them).
        workers: Local worker processes (ignored with ``scheduler``).
        scheduler: ``dask.distributed`` scheduler address, or None for local processes.
    """
    import dask
    from dask import delayed

    def tasks(chunk: Sequence[pd.Timestamp]) -> list[Any]:
        return [
            delayed(cycle_task, pure=False)(spec, str(out), init, meta, obs_window(spec, obs, init))
            for init in chunk
        ]

    if scheduler:
        from distributed import Client

        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, ValueError) as err:
            raise SourceError(
                f"--scheduler {scheduler}: cannot connect to a dask.distributed scheduler "
                f"({' '.join(str(err).split())})"
            ) from None
        with client:
            slots = max(sum(client.nthreads().values()), 1)
            for chunk in _batches(inits, PER_WORKER * slots):
                yield from client.gather(client.compute(tasks(chunk)))
        return
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        for chunk in _batches(inits, PER_WORKER * workers):
            yield from dask.compute(*tasks(chunk), scheduler="processes", pool=pool)
