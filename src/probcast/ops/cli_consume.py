"""``probcast consume``: run the cycle of each cycle-ready message of the pipeline's broker.

::

    probcast consume --pipeline ops.yaml                       # until SIGTERM
    probcast consume --pipeline ops.yaml --max-messages 10 --timeout 600
    probcast consume --pipeline ops.yaml --send 2026-11-29T00Z --source ingest
    probcast consume --pipeline ops.yaml --dead-letters        # Redis: the dead letter, JSON

Settings come from the pipeline file's ``broker:`` block (:mod:`probcast.ops.broker`);
``--url`` overrides its URL. One line per message: ``<cycle> <status> id=<id> tries=<n>``.
SIGTERM or SIGINT: the current cycle finishes and its message is acknowledged, then exit 0.
Exit status: 0 when stopped (a limit, a signal), whatever happened to the messages (failures
are redelivered or in the dead letter); 1 when the broker cannot be reached; 2 for a bad
pipeline file or arguments.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading

from probcast.argtypes import positive
from probcast.logs import configure_logging
from probcast.ops.broker import (
    BadMessage,
    Broker,
    BrokerError,
    broker_config,
    describe,
    encode_message,
    open_broker,
)
from probcast.ops.cli import pipeline_args
from probcast.ops.consume import consume
from probcast.ops.cycle import open_store
from probcast.ops.pipeline import Pipeline, PipelineError, load
from probcast.ops.signals import stop_on_signals
from probcast.ops.state import new_owner

PROG = "probcast consume"
log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="run the cycle of each cycle-ready message of the broker"
    )
    pipeline_args(parser)
    parser.add_argument("--url", default=None, help="broker URL (overrides broker.url)")
    parser.add_argument(
        "--max-messages",
        type=positive(int, 1, strict=False),
        default=None,
        help="stop after N >= 1 messages",
    )
    parser.add_argument(
        "--timeout",
        type=positive(float),
        default=None,
        help="stop after S > 0 seconds (an unreachable broker included)",
    )
    parser.add_argument(
        "--block",
        type=positive(float, 0, strict=False, high=3600),
        default=1.0,
        help="longest wait per receive, 0-3600 s (default: %(default)s)",
    )
    send = parser.add_argument_group("sending instead of consuming")
    send.add_argument("--send", metavar="CYCLE", help="publish a cycle-ready message and exit")
    send.add_argument("--source", default="probcast", help="the message's source")
    send.add_argument("--attempt", type=int, default=1, help="the message's attempt number")
    parser.add_argument(
        "--dead-letters", action="store_true", help="print the dead letter (Redis) and exit"
    )
    return parser


def main(argv: list[str]) -> int:
    """``probcast consume`` (module docstring), plus ``--metrics-file``, ``--pushgateway``."""
    from probcast.ops.metrics_export import with_export

    return with_export(_main, argv, "consume")


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    configure_logging()
    try:
        pipe = load(args.pipeline, require_model=not (args.send or args.dead_letters))
        config = broker_config(pipe, url=args.url)
        body = encode_message(args.send, args.source, args.attempt) if args.send else b""
    except (PipelineError, BadMessage) as err:
        print(f"{PROG}: {err}", file=sys.stderr)
        return 2
    try:
        broker = open_broker(config, new_owner())
    except BrokerError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    try:
        if args.send:
            print(f"{json.loads(body)['cycle']} sent id={broker.publish(body)}", flush=True)
            return 0
        if args.dead_letters:
            rows = getattr(broker, "dead_letters", None)
            if rows is None:
                print(f"{PROG}: --dead-letters reads Redis streams only", file=sys.stderr)
                return 2
            for row in rows():
                print(json.dumps(row), flush=True)
            return 0
        return _consume(pipe, broker, args)
    except BrokerError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    finally:
        broker.close()


def _consume(pipe: Pipeline, broker: Broker, args: argparse.Namespace) -> int:
    log.info("consume: %s", dict(describe(broker.config)))
    store = open_store(pipe, args.state)
    stop = threading.Event()
    try:
        with stop_on_signals(stop, PROG):
            consume(
                pipe,
                store,
                broker,
                max_messages=args.max_messages,
                timeout=args.timeout,
                stop=stop,
                block=args.block,
                on_message=lambda h: print(h.line(), flush=True),
            )
    finally:
        store.close()
    return 0
