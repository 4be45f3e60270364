"""The new-data trigger: poll the input folder and run every cycle whose input is complete.

A cycle's input is complete when (rule ``stable``) its size and mtime did not change between
two polls (and a Parquet file ends with its footer), or (rule ``marker``) its marker file
exists. Cycles already finished in the state store are skipped; a cycle that fails is tried
again on later polls, ``retries`` times at most per watcher. The loop is bounded by
``max_cycles`` (cycles run to the end) and ``timeout`` (seconds).

An input with one file per lead time is run (and a finished partial cycle updated) when its
``partial:`` policy says so (:func:`probcast.ops.partial.due`), with the leads seen complete.
"""

from __future__ import annotations

import glob
import logging
import math
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from probcast.ops import partial
from probcast.ops.cycle import CycleOutcome, input_complete, run_cycle, size_and_mtime
from probcast.ops.pipeline import Pipeline, cycle_id
from probcast.ops.state import FINISHED, StateStore

log = logging.getLogger(__name__)


def discover(pipe: Pipeline) -> list[tuple[datetime, Path]]:
    """Every input present that matches the template, oldest cycle first.

    Lead files: one entry per cycle (the first of its files found).
    """
    found: dict[datetime, Path] = {}
    for name in sorted(glob.glob(pipe.input_glob())):
        cycle = pipe.input_cycle(name)
        if cycle is not None:
            found.setdefault(cycle, Path(name))
    return sorted(found.items())


def watch(
    pipe: Pipeline,
    store: StateStore,
    *,
    interval: float = 10.0,
    max_cycles: int | None = None,
    timeout: float | None = None,
    retries: int = 3,
    on_cycle: Callable[[CycleOutcome], None] | None = None,
    stop: threading.Event | None = None,
) -> list[CycleOutcome]:
    """Poll for complete cycles and run each new one (see the module docstring).

    Args:
        pipe: The pipeline.
        store: Its state store.
        interval: Seconds between polls.
        max_cycles: Stop after this many cycles ran to the end (``None``: no limit).
        timeout: Stop after this many seconds (``None``: no limit).
        retries: Attempts per failing cycle before this watcher gives up on it.
        on_cycle: Called with each outcome.
        stop: Once set (``probcast watch`` sets it on SIGTERM/SIGINT), the running cycle
            finishes and the watcher returns instead of starting another or polling again.

    Raises:
        ValueError: ``interval`` not in (0, 86400], ``timeout`` not finite and > 0,
            ``max_cycles`` or ``retries`` below 1.

    Returns:
        The outcomes of the cycles this watcher ran (finished, failed or busy).
    """
    _check_limits(interval, max_cycles, timeout, retries)
    deadline = None if timeout is None else time.monotonic() + timeout
    seen: dict[str, tuple[int, int]] = {}
    tries: dict[str, int] = {}
    outcomes: list[CycleOutcome] = []
    finished = 0
    while stop is None or not stop.is_set():
        for cycle, path in discover(pipe):
            if stop is not None and stop.is_set():
                return outcomes
            cid = cycle_id(cycle)
            if tries.get(cid, 0) >= retries:
                continue
            leads = partial.due(pipe, cycle, store, seen) if pipe.leads else None
            if pipe.leads and leads is None:
                continue
            if not pipe.leads and (
                store.cycle_status(cid) == FINISHED or not _ready(pipe, cycle, path, seen)
            ):
                continue
            outcome = run_cycle(pipe, cycle, store, settle=False, leads=leads)
            if outcome.status == "done":
                continue
            outcomes.append(outcome)
            if on_cycle is not None:
                on_cycle(outcome)
            if outcome.status == "failed":
                tries[cid] = tries.get(cid, 0) + 1
            elif outcome.status == "finished":
                finished += 1
                if max_cycles is not None and finished >= max_cycles:
                    return outcomes
        if deadline is not None and time.monotonic() >= deadline:
            log.info("watch: timeout reached after %d cycles", finished)
            return outcomes
        wait = interval if deadline is None else min(interval, deadline - time.monotonic())
        if stop is None:
            time.sleep(max(0.0, wait))
        else:
            stop.wait(max(0.0, wait))
    return outcomes


MAX_INTERVAL = 86400.0
"""The longest poll interval (a day; ``time.sleep`` overflows far beyond)."""


def _check_limits(
    interval: float, max_cycles: int | None, timeout: float | None, retries: int
) -> None:
    """Refuse limits that disable themselves (``nan`` never ends, ``-1`` busy-loops)."""
    if not (isinstance(interval, int | float) and 0 < interval <= MAX_INTERVAL):
        raise ValueError(f"interval must be a number in (0, {MAX_INTERVAL:g}] s, got {interval}")
    if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
        raise ValueError(f"timeout must be a finite number > 0 s, got {timeout}")
    if max_cycles is not None and max_cycles < 1:
        raise ValueError(f"max_cycles must be >= 1, got {max_cycles}")
    if retries < 1:
        raise ValueError(f"retries must be >= 1 (attempts per failing cycle), got {retries}")


def _ready(pipe: Pipeline, cycle: datetime, path: Path, seen: dict[str, tuple[int, int]]) -> bool:
    key = str(path)
    if pipe.complete_rule == "stable":
        try:
            now = size_and_mtime(path)
        except FileNotFoundError:
            return False
        before = seen.get(key)
        seen[key] = now
        if before != now:
            return False
    return input_complete(pipe, cycle, settle=False) == ""
