"""The clock trigger: run the cycle due at each fire time of a cron expression.

The pipeline file's ``schedule:`` block::

    schedule:
      cron: "30 5,11,17,23 * * *"   # standard 5 fields (minute hour day month weekday), UTC
      delay_minutes: 330            # cycle = the latest cycle at or before fire time - delay
      catch_up_hours: 6             # fire times missed this long ago or less are run on start
      retries: 3                    # runs of one failing cycle by one scheduler process

The cycle of a fire time is the latest cycle of the pipeline's ``every_hours`` grid (counted
from 00Z) at or before ``fire time - delay``: ``30 5 * * *`` with a delay of 330 minutes runs
the 00Z cycle at 05:30. Cron strings are standard 5-field ones (digits, ``*``, ``,``, ``-``,
``/`` and month/weekday names), so the same schedule can be given to a Kubernetes CronJob (with
``timeZone: Etc/UTC``).

:func:`run_schedule` evaluates, at start and after each fire time, every fire time of the
catch-up window and since the last evaluation; each cycle not finished in the state store is
run through :func:`~probcast.ops.cycle.run_cycle` (so a restarted scheduler runs a missed fire
time once, and never reruns a finished cycle).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from cronsim import CronSim, CronSimError

from probcast.ops.cycle import CycleOutcome, run_cycle
from probcast.ops.pipeline import Pipeline, PipelineError, cycle_id
from probcast.ops.state import FINISHED, StateStore

log = logging.getLogger(__name__)
_KEYS = frozenset({"cron", "delay_minutes", "catch_up_hours", "retries"})
_NAMES = re.compile(r"JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC|SUN|MON|TUE|WED|THU|FRI|SAT")
_FIELD = re.compile(r"[0-9*,/-]+")


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A parsed ``schedule:`` block (see the module docstring)."""

    cron: str
    delay: timedelta = timedelta(0)
    catch_up: timedelta = timedelta(hours=6)
    retries: int = 3
    every_hours: int = 24

    def fire_times(self, start: datetime, end: datetime) -> list[datetime]:
        """The fire times after ``start`` and up to ``end`` (included), oldest first."""
        out = []
        for fire in CronSim(self.cron, start.astimezone(UTC)):
            if fire > end:
                break
            out.append(fire)
        return out

    def next_fire(self, after: datetime) -> datetime:
        """The first fire time after ``after``."""
        return next(CronSim(self.cron, after.astimezone(UTC)))

    def cycle_for(self, fire: datetime) -> datetime:
        """The cycle a fire time runs: the latest cycle at or before ``fire - delay``."""
        target = (fire - self.delay).astimezone(UTC)
        step = self.every_hours * 3600
        epoch = int(target.timestamp()) // step * step
        return datetime.fromtimestamp(epoch, UTC)

    def due(self, start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
        """``(fire time, cycle)`` of the fire times in (start, end], one per cycle."""
        seen: dict[datetime, datetime] = {}
        for fire in self.fire_times(start, end):
            seen.setdefault(self.cycle_for(fire), fire)
        return sorted((fire, cycle) for cycle, fire in seen.items())


def check_cron(cron: str, where: str = "schedule.cron") -> str:
    """``cron`` if it is a standard 5-field cron expression; else :class:`PipelineError`."""
    text = " ".join(str(cron).split())
    fields = text.split(" ")
    if len(fields) != 5:
        raise PipelineError(
            f"{where}: expected 5 fields (minute hour day-of-month month day-of-week), "
            f"got {len(fields)} in {cron!r}"
        )
    for field in fields:
        if not _FIELD.fullmatch(_NAMES.sub("0", field.upper())):
            raise PipelineError(
                f"{where}: {field!r} in {cron!r} is not standard cron (digits, *, ',', -, /, "
                "month and weekday names)"
            )
    try:
        next(CronSim(text, datetime(2000, 1, 1, tzinfo=UTC)))
    except (CronSimError, StopIteration) as err:
        raise PipelineError(f"{where}: {cron!r} is not a valid cron expression: {err}") from err
    return text


def parse_schedule(pipe: Pipeline) -> Schedule:
    """The pipeline's ``schedule:`` block, checked (errors name the field)."""
    where = f"{pipe.name}: schedule"
    data = dict(pipe.schedule)
    unknown = set(data) - _KEYS
    if unknown:  # first: a misspelt key is why another is missing
        raise PipelineError(f"{where}: unknown keys {sorted(unknown)}; known: {sorted(_KEYS)}")
    if not data.get("cron"):
        raise PipelineError(f"{where}: 'cron' is required (e.g. cron: \"30 5 * * *\")")
    numbers: dict[str, float] = {}
    for key, default in (("delay_minutes", 0), ("catch_up_hours", 6), ("retries", 3)):
        raw = data.get(key, default)
        try:
            value = float(raw)
        except (TypeError, ValueError):
            value = -1.0
        low = 1 if key == "retries" else 0
        if isinstance(raw, bool) or value < low:
            raise PipelineError(f"{where}.{key}: expected a number >= {low}, got {raw!r}")
        numbers[key] = value
    return Schedule(
        cron=check_cron(str(data["cron"]), f"{where}.cron"),
        delay=timedelta(minutes=numbers["delay_minutes"]),
        catch_up=timedelta(hours=numbers["catch_up_hours"]),
        retries=int(numbers["retries"]),
        every_hours=pipe.every_hours,
    )


class Clock(Protocol):
    """Where the scheduler reads the time and waits (a fake one in tests)."""

    def now(self) -> datetime:
        """The current time (aware UTC)."""

    def wait_until(self, when: datetime, stop: threading.Event) -> None:
        """Return at ``when`` or as soon as ``stop`` is set."""


@dataclasses.dataclass
class SystemClock:
    """The machine's clock, shifted by ``offset`` (``probcast schedule --now`` replays)."""

    offset: timedelta = timedelta(0)

    def now(self) -> datetime:
        """UTC now plus the offset."""
        return datetime.now(UTC) + self.offset

    def wait_until(self, when: datetime, stop: threading.Event) -> None:
        """Sleep until ``when`` in steps of at most 1 s, so a stop is seen at once."""
        while not stop.is_set():
            left = (when - self.now()).total_seconds()
            if left <= 0:
                return
            stop.wait(min(left, 1.0))


def run_schedule(
    pipe: Pipeline,
    store: StateStore,
    schedule: Schedule,
    *,
    clock: Clock | None = None,
    until: datetime | None = None,
    once: bool = False,
    stop: threading.Event | None = None,
    on_cycle: Callable[[CycleOutcome], None] | None = None,
) -> list[CycleOutcome]:
    """Run the due cycles at each fire time (see the module docstring).

    Args:
        pipe: The pipeline.
        store: Its state store.
        schedule: The parsed ``schedule:`` block.
        clock: The clock (default: the machine's).
        until: Stop when the next fire time is after this time.
        once: Evaluate the catch-up window once and return.
        stop: Stop when set (the running cycle finishes first).
        on_cycle: Called with each cycle's outcome.

    Returns:
        The outcomes of the cycles run (finished, failed or busy).
    """
    clock = clock or SystemClock()
    stop = stop or threading.Event()
    now = clock.now()
    last = now - schedule.catch_up
    tries: dict[str, int] = {}
    outcomes: list[CycleOutcome] = []
    while not stop.is_set():
        for fire, cycle in schedule.due(min(last, now - schedule.catch_up), now):
            cid = cycle_id(cycle)
            if stop.is_set() or tries.get(cid, 0) >= schedule.retries:
                continue
            if store.cycle_status(cid) == FINISHED:
                continue
            log.info("schedule: fire time %s -> cycle %s", fire.isoformat(), cid)
            outcome = run_cycle(pipe, cycle, store)
            if outcome.status == "failed":
                tries[cid] = tries.get(cid, 0) + 1
            outcomes.append(outcome)
            if on_cycle is not None:
                on_cycle(outcome)
        last = now
        nxt = schedule.next_fire(now)
        if once or (until is not None and nxt > until):
            break
        clock.wait_until(nxt, stop)
        now = max(clock.now(), nxt)
    return outcomes
