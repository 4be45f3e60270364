"""Store lazy arrays block by block: computed in parallel, written in one fixed order.

HDF5 lays chunks out in the file in the order they are written, so a store that writes blocks
as the scheduler's threads finish them gives byte-different files on every run. Here blocks
are computed (and post-processed, e.g. bit-rounded) on a few threads, at most ``workers + 1``
ahead, and written from the calling thread in C order of the block index, variable after
variable: both cores compute while the caller compresses and writes, and reruns are
byte-identical.
"""

from __future__ import annotations

import itertools
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple, TypeVar

import dask
import dask.array as dsa
import numpy as np

T = TypeVar("T")
Finish = Callable[[np.ndarray], tuple[np.ndarray, Any]]
"""Per-block function: block -> (values to write, statistics to return)."""


def _cluster() -> Any:
    """The active dask.distributed client, or ``None`` (local computation)."""
    try:
        from distributed import default_client

        return default_client()
    except (ImportError, ValueError):
        return None


def compute_workers() -> int:
    """Blocks computed at once.

    The cluster's threads when a dask.distributed client is active, else dask's
    ``num_workers`` (1 under a synchronous scheduler).
    """
    client = _cluster()
    if client is not None:
        return max(1, sum(client.nthreads().values()))
    if dask.config.get("scheduler", None) in ("sync", "synchronous", "single-threaded"):
        return 1
    return max(1, int(dask.config.get("num_workers", None) or os.cpu_count() or 1))


def in_order(tasks: Iterable[Callable[[], T]], workers: int) -> Iterator[T]:
    """Run ``tasks`` on ``workers`` threads and yield their results in submission order.

    At most ``workers + 1`` results wait in memory: the threads keep computing while the
    caller consumes (writes) the oldest result.
    """
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="probcast-write")
    pending: deque[Future[T]] = deque()
    try:
        for task in tasks:
            pending.append(pool.submit(task))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _block_slices(chunks: tuple[tuple[int, ...], ...]) -> Iterator[tuple[slice, ...]]:
    """Slices of every dask block, in C order of the block index."""
    edges = [np.cumsum((0, *c)) for c in chunks]
    for index in itertools.product(*(range(len(c)) for c in chunks)):
        yield tuple(slice(int(e[i]), int(e[i + 1])) for e, i in zip(edges, index, strict=True))


def as_is(block: np.ndarray) -> tuple[np.ndarray, None]:
    """Write the block unchanged."""
    return block, None


class StoreJob(NamedTuple):
    """One lazy variable to store: ``target[slices] = finish(block)[0]`` for every block."""

    source: dsa.Array
    target: Any
    finish: Finish = as_is


def _run_block(block: dsa.Array, finish: Finish, scheduler: str | None) -> tuple[np.ndarray, Any]:
    # Locally the pool provides the parallelism and a block is computed on its thread
    # ("sync"); with a dask.distributed client (scheduler None) the block runs on the cluster.
    return finish(np.asarray(block.compute(scheduler=scheduler)))


def store_in_order(jobs: Sequence[StoreJob], workers: int | None = None) -> list[list[Any]]:
    """Compute every block of every job in parallel; write them in a fixed order.

    Args:
        jobs: Variables to store, written one after the other, blocks in C order.
        workers: Computing threads (default :func:`compute_workers`).

    Returns:
        Per job, what ``finish`` returned with each block, in block order.
    """
    blocks = [
        (j, where) for j, job in enumerate(jobs) for where in _block_slices(job.source.chunks)
    ]
    scheduler = None if _cluster() is not None else "sync"
    tasks = (
        lambda j=j, where=where: _run_block(jobs[j].source[where], jobs[j].finish, scheduler)
        for j, where in blocks
    )
    infos: list[list[Any]] = [[] for _ in jobs]
    results = in_order(tasks, workers or compute_workers())
    for (j, where), (values, info) in zip(blocks, results, strict=True):
        jobs[j].target[where] = values
        infos[j].append(info)
    return infos
