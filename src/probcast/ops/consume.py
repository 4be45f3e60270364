"""The broker trigger: run the cycle of every cycle-ready message, at least once, exactly once.

For each message delivered by a :class:`~probcast.ops.broker.Broker`:

1. delivered more than ``max_tries`` times (its consumers died on it): dead letter, not run;
2. not a cycle-ready message (not JSON, unknown keys, bad cycle): a failed try;
3. otherwise :func:`~probcast.ops.cycle.run_cycle`, with a heartbeat that keeps the message
   from being redelivered while the cycle runs. ``finished`` or ``done`` (the cycle was finished
   before: a redelivered message is a no-op): acknowledged. ``busy`` (another process holds the
   cycle's lease): given back without counting a try. ``failed``: a failed try.

A failed try gives the message back for redelivery after ``retry_seconds`` (to any consumer of
the group), or moves it to the dead letter on its ``max_tries``-th delivery. The loop then
goes on with the next message. It stops after ``max_messages`` messages, after ``timeout``
seconds, or when ``stop`` is set (``probcast consume`` sets it on SIGTERM/SIGINT: the current
cycle finishes and its message is acknowledged first). A broker with a ``set_deadline``
method (Redis) is given the time ``timeout`` ends, so that its own connect and read timeouts
cannot hold a receive past it (a host that never answers); a cycle being run is not cut.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator

from probcast.ops.broker import BadMessage, Broker, BrokerError, Delivery, decode_message
from probcast.ops.cycle import pause, run_cycle
from probcast.ops.pipeline import Pipeline, parse_cycle
from probcast.ops.state import StateStore

log = logging.getLogger(__name__)
RECONNECT_SECONDS = 60.0
"""How long the loop keeps retrying an unreachable broker before giving up."""


@dataclasses.dataclass
class Handled:
    """What the consumer did with one message.

    Attributes:
        id: The broker's message id.
        cycle: The message's cycle (``""`` when it could not be decoded).
        status: ``finished``, ``done`` (acknowledged), ``busy``, ``failed`` (given back for
            redelivery) or ``dead`` (moved to the dead letter).
        deliveries: The delivery count of this delivery.
        error: Why it failed or went to the dead letter.
    """

    id: str
    cycle: str
    status: str
    deliveries: int
    error: str = ""

    def line(self) -> str:
        """One line for the command's output: ``<cycle> <status> id=<id> tries=<n> <error>``."""
        text = f"{self.cycle or '-'} {self.status} id={self.id} tries={self.deliveries}"
        return f"{text} {self.error}".rstrip()


@contextlib.contextmanager
def heartbeat(broker: Broker, msg: Delivery) -> Iterator[None]:
    """Extend the message's lease every third of ``claim_idle_seconds`` while the block runs."""
    done = threading.Event()
    every = max(0.05, broker.config.claim_idle_seconds / 3)

    def beat() -> None:
        while not done.wait(every):
            try:
                broker.extend(msg)
            except Exception as err:  # never kill the cycle: a missed beat risks a duplicate
                log.warning("heartbeat of message %s failed: %s", msg.id, err)

    thread = threading.Thread(target=beat, name=f"heartbeat-{msg.id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=10)


def _give_back(broker: Broker, msg: Delivery, cycle: str, error: str) -> Handled:
    """A failed try: redeliver later, or dead letter on the last try."""
    cfg = broker.config
    if msg.deliveries >= cfg.max_tries:
        reason = f"failed {msg.deliveries} of max_tries={cfg.max_tries} times; last: {error}"
        broker.dead_letter(msg, reason)
        log.error("message %s (%s) -> dead letter: %s", msg.id, cycle or "?", reason)
        return Handled(msg.id, cycle, "dead", msg.deliveries, reason)
    broker.nack(msg, cfg.retry_seconds)
    log.warning("message %s (%s) failed (try %d): %s", msg.id, cycle or "?", msg.deliveries, error)
    return Handled(msg.id, cycle, "failed", msg.deliveries, error)


def handle(pipe: Pipeline, store: StateStore, broker: Broker, msg: Delivery) -> Handled:
    """Process one delivered message (see the module docstring)."""
    cfg = broker.config
    if msg.deliveries > cfg.max_tries:
        reason = (
            f"delivered {msg.deliveries} times, more than max_tries={cfg.max_tries}, without "
            "being acknowledged (its consumers died or gave up on it)"
        )
        broker.dead_letter(msg, reason)
        log.error("message %s -> dead letter: %s", msg.id, reason)
        return Handled(msg.id, "", "dead", msg.deliveries, reason)
    try:
        message = decode_message(msg.body)
    except BadMessage as err:
        return _give_back(broker, msg, "", f"bad message: {err}")
    log.info(
        "message %s: cycle %s from %s (attempt %d, delivery %d)",
        msg.id,
        message.cycle,
        message.source or "?",
        message.attempt,
        msg.deliveries,
    )
    try:
        with heartbeat(broker, msg):
            outcome = run_cycle(pipe, parse_cycle(message.cycle), store)
    except Exception as err:
        return _give_back(broker, msg, message.cycle, f"{type(err).__name__}: {err}")
    if outcome.status in ("finished", "done"):
        pause("consume:ack")
        broker.ack(msg)
        return Handled(msg.id, message.cycle, outcome.status, msg.deliveries)
    if outcome.status == "busy":
        broker.nack(msg, cfg.retry_seconds, counts=False)
        return Handled(msg.id, message.cycle, "busy", msg.deliveries, "another process runs it")
    return _give_back(broker, msg, message.cycle, outcome.error)


def _receive(
    broker: Broker, wait: float, stop: threading.Event, deadline: float | None = None
) -> Delivery | None:
    """``broker.receive``, retried while the broker is down.

    For up to :data:`RECONNECT_SECONDS`, and never past ``deadline`` (``time.monotonic()``;
    the consumer's ``timeout``): then the last :class:`BrokerError` is raised.
    """
    give_up = time.monotonic() + RECONNECT_SECONDS
    if deadline is not None:
        give_up = min(give_up, deadline)
    pause_s = 0.5
    while True:
        try:
            return broker.receive(wait)
        except BrokerError as err:
            left = give_up - time.monotonic()
            if left <= 0 or stop.is_set():
                raise
            log.warning("%s; retrying in %.1f s", err, min(pause_s, left))
            stop.wait(min(pause_s, left))
            pause_s = min(pause_s * 2, 10.0)


def consume(
    pipe: Pipeline,
    store: StateStore,
    broker: Broker,
    *,
    max_messages: int | None = None,
    timeout: float | None = None,
    stop: threading.Event | None = None,
    block: float = 1.0,
    on_message: Callable[[Handled], None] | None = None,
) -> list[Handled]:
    """Handle messages until a limit is reached (see the module docstring).

    Args:
        pipe: The pipeline.
        store: Its state store.
        broker: The broker (one consumer).
        max_messages: Stop after this many messages were handled (``None``: no limit).
        timeout: Stop after this many seconds (``None``: no limit), an unreachable broker's
            retries and timeouts included (:class:`BrokerError` when it is still down then).
        stop: Stop when set (checked between messages and every ``block`` seconds).
        block: Longest wait for a message in one receive.
        on_message: Called with what was done to each message.

    Returns:
        What was done to each message, in order.
    """
    stop = stop or threading.Event()
    deadline = None if timeout is None else time.monotonic() + timeout
    set_deadline = getattr(broker, "set_deadline", None)
    if callable(set_deadline):  # the broker's own timeouts end by the deadline too
        set_deadline(deadline)
    handled: list[Handled] = []
    while not stop.is_set():
        if max_messages is not None and len(handled) >= max_messages:
            break
        wait = block
        if deadline is not None:
            wait = min(block, deadline - time.monotonic())
            if wait <= 0:
                log.info("consume: timeout reached after %d messages", len(handled))
                break
        msg = _receive(broker, wait, stop, deadline)
        if msg is None:
            continue
        if stop.is_set():  # arrived while stopping: hand it to another consumer at once
            broker.nack(msg, 0.0, counts=False)
            break
        result = handle(pipe, store, broker, msg)
        handled.append(result)
        if on_message is not None:
            on_message(result)
    return handled
