"""The operational commands: ``probcast run``, ``probcast watch`` (and ``probcast serve``).

``main(["run", ...])`` dispatches to the command's entry module (``probcast.ops.cli_run``,
which adds ``--metrics-file`` and ``--pushgateway``); each command's parser is also
reachable alone (``probcast.ops.cli.run_main``, ``watch_main``, ``serve_main``) for the
top-level ``probcast`` dispatcher. ``python -m probcast.ops.cli run --pipeline ops.yaml
--cycle 2026-11-29T00Z`` works without it.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from collections.abc import Callable

from probcast.argtypes import positive
from probcast.logs import configure_logging
from probcast.ops.cycle import open_store, run_cycle
from probcast.ops.partial import status as leads_status
from probcast.ops.pipeline import PipelineError, cycle_id, cycle_range, load, parse_cycle


def state_url(text: str) -> str:
    """``--state``: a database URL SQLAlchemy can open (argparse's ``type``)."""
    from probcast.ops.pipeline_check import state_url as check

    try:
        return check(text, "--state")
    except PipelineError as err:
        raise argparse.ArgumentTypeError(str(err).removeprefix("--state: ")) from None


def pipeline_args(parser: argparse.ArgumentParser) -> None:
    """The options every operational command takes: ``--pipeline`` and ``--state``."""
    parser.add_argument("--pipeline", required=True, help="the pipeline YAML file")
    parser.add_argument(
        "--state",
        default=None,
        type=state_url,
        help="state store URL, e.g. sqlite:///ops.state.sqlite (default: the file's state)",
    )


def run_main(argv: list[str]) -> int:
    """``probcast run``: one cycle (``--cycle``) or a period (``--from``/``--to``)."""
    parser = argparse.ArgumentParser(
        prog="probcast run", description="run NWP cycles through a pipeline (idempotent)"
    )
    pipeline_args(parser)
    parser.add_argument("--cycle", help="the cycle, e.g. 2026-11-29T00Z")
    parser.add_argument("--from", dest="start", help="first cycle of a backfill")
    parser.add_argument("--to", dest="stop", help="last cycle of a backfill (included)")
    parser.add_argument("--status", action="store_true", help="print the steps, run nothing")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="backfill: cycles run at once, each in its own process (Dask)",
    )
    parser.add_argument(
        "--scheduler", help="backfill: a dask.distributed scheduler address to run the cycles on"
    )
    args = parser.parse_args(argv)
    configure_logging()
    try:
        pipe = load(args.pipeline, require_model=not args.status)
        if args.cycle and not (args.start or args.stop):
            cycles = [parse_cycle(args.cycle)]
        elif args.start and args.stop and not args.cycle:
            cycles = cycle_range(parse_cycle(args.start), parse_cycle(args.stop), pipe.every_hours)
        else:
            raise PipelineError("give --cycle, or --from and --to")
    except PipelineError as err:
        print(f"probcast run: {err}", file=sys.stderr)
        return 2
    if args.workers < 1:
        print("probcast run: --workers must be >= 1", file=sys.stderr)
        return 2
    if not args.status and len(cycles) > 1 and (args.workers > 1 or args.scheduler):
        from probcast.ops.backfill import run_parallel

        lines = run_parallel(args.pipeline, args.state, cycles, args.workers, args.scheduler)
        for line in lines:
            print(line)
        return 1 if any(line.split()[1] == "failed" for line in lines) else 0
    store = open_store(pipe, args.state)
    failed = 0
    try:
        for cycle in cycles:
            if args.status:
                cid = cycle_id(cycle)
                rows = [
                    {k: r[k] for k in ("step", "status", "attempts", "finished_at", "error")}
                    for r in store.steps_of(cid)
                ]
                status = {"cycle": cid, "status": store.cycle_status(cid), "steps": rows}
                if pipe.leads:  # one file per lead: the leads used, partial, the attempts
                    status.update(leads_status(store, cid))
                print(json.dumps(status, default=str))
                continue
            outcome = run_cycle(pipe, cycle, store)
            ran = ",".join(outcome.ran) or "-"
            print(f"{outcome.cycle} {outcome.status} ran={ran} {outcome.error}".rstrip())
            failed += outcome.status == "failed"
    finally:
        store.close()
    return 1 if failed else 0


def watch_main(argv: list[str]) -> int:
    """``probcast watch``: run each new complete cycle that appears in the input folder."""
    from probcast.ops.watch import MAX_INTERVAL, watch

    parser = argparse.ArgumentParser(
        prog="probcast watch", description="poll the pipeline's input folder and run new cycles"
    )
    pipeline_args(parser)
    parser.add_argument(
        "--interval",
        type=positive(float, high=MAX_INTERVAL),
        default=10.0,
        help="seconds between polls, > 0 and <= 86400 (default: %(default)s)",
    )
    parser.add_argument(
        "--max-cycles",
        type=positive(int, 1, strict=False),
        default=None,
        help="stop after N >= 1 cycles",
    )
    parser.add_argument(
        "--timeout", type=positive(float), default=None, help="stop after S > 0 seconds"
    )
    parser.add_argument(
        "--retries",
        type=positive(int, 1, strict=False),
        default=3,
        help="attempts per failing cycle, >= 1 (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    configure_logging()
    try:
        pipe = load(args.pipeline, require_model=True)
    except PipelineError as err:
        print(f"probcast watch: {err}", file=sys.stderr)
        return 2
    from probcast.ops.signals import stop_on_signals

    store = open_store(pipe, args.state)
    stop = threading.Event()  # SIGTERM/SIGINT: the running cycle finishes, then exit
    try:
        with stop_on_signals(stop, "probcast watch"):
            outcomes = watch(
                pipe,
                store,
                interval=args.interval,
                max_cycles=args.max_cycles,
                timeout=args.timeout,
                retries=args.retries,
                on_cycle=lambda o: print(f"{o.cycle} {o.status} {o.error}".rstrip(), flush=True),
                stop=stop,
            )
    finally:
        store.close()
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def serve_main(argv: list[str]) -> int:
    """``probcast serve``: the on-demand HTTP API (see :mod:`probcast.ops.serve`)."""
    from probcast.ops.serve import main as serve

    return serve(argv)


SUBCOMMANDS: dict[str, Callable[[list[str]], int]] = {
    "run": run_main,
    "watch": watch_main,
    "serve": serve_main,
}


def main(argv: list[str] | None = None) -> int:
    """``python -m probcast.ops.cli {run,watch,serve} ...``: the same as ``probcast run`` etc.

    Dispatches to the commands' entry modules (``probcast.ops.cli_run``, ...), so the
    options they add (``--metrics-file``, ``--pushgateway``) are there too.
    """
    import importlib

    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in SUBCOMMANDS:
        print("usage: probcast.ops.cli {run,watch,serve} [ARGS...]", file=sys.stderr)
        return 2
    command: Callable[[list[str]], int] = importlib.import_module(
        f"probcast.ops.cli_{args[0]}"
    ).main
    return command(args[1:])


if __name__ == "__main__":
    sys.exit(main())
