"""``probcast schedule``: run the pipeline's cycles at the fire times of its cron expression.

::

    probcast schedule --pipeline ops.yaml                    # until SIGTERM
    probcast schedule --pipeline ops.yaml --once             # the catch-up window, then exit
    probcast schedule --pipeline ops.yaml --until 2026-11-30T00:00Z
    probcast schedule --pipeline ops.yaml --now 2026-11-29T06:00Z --once   # replay a time

Settings come from the pipeline file's ``schedule:`` block (:mod:`probcast.ops.schedule`).
One line per cycle run: ``<cycle> <status> ran=<steps>``. SIGTERM or SIGINT: the running
cycle finishes, then exit. Exit status: 0 when every cycle run finished (or on a signal), 1 when
one failed, 2 for a bad pipeline file or arguments.
"""

from __future__ import annotations

import argparse
import sys
import threading
from datetime import UTC, datetime

from probcast.logs import configure_logging
from probcast.ops.cli import pipeline_args
from probcast.ops.cycle import open_store
from probcast.ops.pipeline import PipelineError, load
from probcast.ops.schedule import SystemClock, parse_schedule, run_schedule
from probcast.ops.signals import stop_on_signals

PROG = "probcast schedule"


def parse_time(text: str, option: str) -> datetime:
    """``2026-11-29T06:30Z`` (any ISO 8601 date-time; UTC unless an offset is given)."""
    try:
        value = datetime.fromisoformat(text.strip().removesuffix("Z").removesuffix("z"))
    except ValueError as err:
        raise PipelineError(
            f"{option}: expected a time like 2026-11-29T06:30Z, got {text!r}"
        ) from err
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="run the pipeline's cycles at the fire times of its cron schedule"
    )
    pipeline_args(parser)
    parser.add_argument(
        "--once", action="store_true", help="run what is due in the catch-up window, then exit"
    )
    parser.add_argument("--until", help="exit when the next fire time is after this UTC time")
    parser.add_argument("--now", help="pretend the clock reads this UTC time at start (replays)")
    return parser


def main(argv: list[str]) -> int:
    """``probcast schedule`` (module docstring), plus ``--metrics-file``, ``--pushgateway``."""
    from probcast.ops.metrics_export import with_export

    return with_export(_main, argv, "schedule")


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    configure_logging()
    try:
        pipe = load(args.pipeline, require_model=True)
        schedule = parse_schedule(pipe)
        until = parse_time(args.until, "--until") if args.until else None
        clock = SystemClock()
        if args.now:
            clock.offset = parse_time(args.now, "--now") - datetime.now(UTC)
    except PipelineError as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    store = open_store(pipe, args.state)
    stop = threading.Event()
    try:
        with stop_on_signals(stop, "probcast schedule"):
            outcomes = run_schedule(
                pipe,
                store,
                schedule,
                clock=clock,
                until=until,
                once=args.once,
                stop=stop,
                on_cycle=lambda o: print(
                    f"{o.cycle} {o.status} ran={','.join(o.ran) or '-'} {o.error}".rstrip(),
                    flush=True,
                ),
            )
    finally:
        store.close()
    return 1 if any(o.status == "failed" for o in outcomes) else 0
