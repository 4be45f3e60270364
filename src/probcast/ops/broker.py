"""Cycle-ready messages from a message broker: the message schema, the settings, one interface.

A **cycle-ready message** is one JSON object (UTF-8)::

    {"cycle": "2026-11-29T00Z", "source": "ecmwf-ingest", "attempt": 1}

``cycle`` (required) is any form :func:`~probcast.ops.pipeline.parse_cycle` accepts; ``source``
(optional, a string) names the sender; ``attempt`` (optional, an integer >= 1) is the sender's
own retry count. Other keys are refused, so a message of another schema is never half-read.

The pipeline file's ``broker:`` block says where the messages are::

    broker:
      url: redis://127.0.0.1:6379/0   # redis://, rediss:// or pubsub://PROJECT
      stream: probcast-cycles         # Redis stream / Pub/Sub topic
      group: stations                 # consumer group / subscription (default: pipeline name)
      dead_letter: probcast-cycles-dead   # stream / topic of messages given up on
      max_tries: 3                    # deliveries before a message goes to the dead letter
      claim_idle_seconds: 60          # a message without heartbeat this long is redelivered
      retry_seconds: 10               # a failed message is redelivered after this

Every broker implements :class:`Broker` (at-least-once: a message is acknowledged only after
its cycle finished); :func:`open_broker` picks the implementation from the URL's scheme.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any, Protocol

from probcast.ops.pipeline import Pipeline, PipelineError, cycle_id, parse_cycle

MESSAGE_KEYS = frozenset({"cycle", "source", "attempt"})
_BROKER_KEYS = frozenset(
    {
        "url",
        "stream",
        "group",
        "dead_letter",
        "max_tries",
        "claim_idle_seconds",
        "retry_seconds",
        "max_len",
    }
)
SCHEMES = ("redis", "rediss", "unix", "pubsub")


class BadMessage(ValueError):
    """A message that is not a cycle-ready message (the text says what is wrong)."""


class BrokerError(RuntimeError):
    """The broker cannot be reached or refused an operation."""


@dataclasses.dataclass(frozen=True)
class CycleMessage:
    """A decoded cycle-ready message."""

    cycle: str
    source: str = ""
    attempt: int = 1


def encode_message(cycle: str, source: str = "", attempt: int = 1) -> bytes:
    """The JSON body of a cycle-ready message (the cycle is checked and normalised)."""
    if attempt < 1:
        raise BadMessage(f"attempt must be an integer >= 1, got {attempt}")
    body = {"cycle": cycle_id(parse_cycle(cycle)), "source": source, "attempt": attempt}
    return json.dumps(body).encode()


def decode_message(raw: bytes | str) -> CycleMessage:
    """Check and decode a message body; :class:`BadMessage` says what is wrong with it."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as err:
        raise BadMessage(f"not JSON: {err}") from err
    if not isinstance(data, dict):
        raise BadMessage(f"expected a JSON object, got {type(data).__name__}")
    unknown = set(data) - MESSAGE_KEYS
    if unknown:
        raise BadMessage(f"unknown keys {sorted(unknown)}; known: {sorted(MESSAGE_KEYS)}")
    if not isinstance(data.get("cycle"), str):
        raise BadMessage(f"'cycle' must be a string like 2026-11-29T00Z, got {data.get('cycle')!r}")
    try:
        cycle = cycle_id(parse_cycle(data["cycle"]))
    except PipelineError as err:
        raise BadMessage(str(err)) from err
    source, attempt = data.get("source", ""), data.get("attempt", 1)
    if not isinstance(source, str):
        raise BadMessage(f"'source' must be a string, got {source!r}")
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise BadMessage(f"'attempt' must be an integer >= 1, got {attempt!r}")
    return CycleMessage(cycle, source, attempt)


@dataclasses.dataclass(frozen=True)
class BrokerConfig:
    """The parsed ``broker:`` block of a pipeline file (see the module docstring)."""

    url: str
    stream: str = "probcast-cycles"
    group: str = "probcast"
    dead_letter: str = "probcast-cycles-dead"
    max_tries: int = 3
    claim_idle_seconds: float = 60.0
    retry_seconds: float = 10.0
    max_len: int = 100_000

    @property
    def scheme(self) -> str:
        """``redis``, ``rediss``, ``unix`` or ``pubsub``."""
        return self.url.partition("://")[0].lower()


def broker_config(pipe: Pipeline, **overrides: Any) -> BrokerConfig:
    """The pipeline's ``broker:`` block, checked (``overrides``: values given on the command line).

    Raises:
        PipelineError: A missing block, an unknown key or a value of the wrong kind (the
            message names the field and what was expected).
    """
    where = f"{pipe.name}: broker"
    data: dict[str, Any] = dict(pipe.broker)
    data.update({k: v for k, v in overrides.items() if v is not None})
    if not data.get("url"):
        raise PipelineError(f"{where}: 'url' is required (e.g. redis://127.0.0.1:6379/0)")
    unknown = set(data) - _BROKER_KEYS
    if unknown:
        raise PipelineError(
            f"{where}: unknown keys {sorted(unknown)}; known: {sorted(_BROKER_KEYS)}"
        )
    url = str(data["url"])
    if url.partition("://")[0].lower() not in SCHEMES or "://" not in url:
        raise PipelineError(f"{where}.url: expected one of {', '.join(SCHEMES)}://..., got {url!r}")
    stream = str(data.get("stream", BrokerConfig.stream))
    values: dict[str, Any] = {
        "url": url,
        "stream": stream,
        "group": str(data.get("group") or pipe.name),
        "dead_letter": str(data.get("dead_letter") or f"{stream}-dead"),
    }
    for key, kind, low in (
        ("max_tries", int, 1),
        ("claim_idle_seconds", float, 0.1),
        ("retry_seconds", float, 0.0),
        ("max_len", int, 1),
    ):
        raw = data.get(key, getattr(BrokerConfig, key))
        try:
            value = kind(raw)
        except (TypeError, ValueError):
            value = None
        if isinstance(raw, bool) or value is None or value < low:
            raise PipelineError(f"{where}.{key}: expected a number >= {low}, got {raw!r}")
        values[key] = value
    if values["dead_letter"] == stream:
        raise PipelineError(f"{where}.dead_letter: must differ from stream {stream!r}")
    return BrokerConfig(**values)


@dataclasses.dataclass
class Delivery:
    """One delivery of a message to this consumer.

    Attributes:
        id: The broker's id of the message (Redis stream entry id, Pub/Sub message id).
        body: The raw body (``b""`` when the entry had none).
        deliveries: How many times the message has been delivered, this time included (1 the
            first time).
        token: What the broker needs to acknowledge it (Pub/Sub ack id).
    """

    id: str
    body: bytes
    deliveries: int = 1
    token: str = ""


class Broker(Protocol):
    """A queue of cycle-ready messages with at-least-once delivery (one consumer's view)."""

    config: BrokerConfig

    def publish(self, body: bytes) -> str:
        """Add a message; returns its id."""

    def receive(self, timeout: float) -> Delivery | None:
        """The next message for this consumer (new, or redelivered), waiting up to ``timeout`` s."""

    def ack(self, msg: Delivery) -> None:
        """The message is done: never deliver it again."""

    def extend(self, msg: Delivery) -> None:
        """Heartbeat: this consumer is still working on ``msg`` (do not redeliver it yet)."""

    def nack(self, msg: Delivery, delay: float, *, counts: bool = True) -> None:
        """Give the message back, to be redelivered after ``delay`` seconds.

        ``counts=False``: the delivery does not count as a try (when the broker can say so).
        """

    def dead_letter(self, msg: Delivery, reason: str) -> None:
        """Move the message to the dead letter (with ``reason``) and acknowledge it, at once."""

    def close(self) -> None:
        """Release the connections."""


def open_broker(config: BrokerConfig, consumer: str, client: Any = None) -> Broker:
    """The broker of ``config.url`` for consumer ``consumer``.

    Args:
        config: The broker settings.
        consumer: This consumer's name (unique per process).
        client: An already made client object (tests; a Pub/Sub adapter takes a pair
            ``(publisher, subscriber)``).
    """
    if config.scheme == "pubsub":
        from probcast.ops.broker_pubsub import PubSubBroker

        return PubSubBroker(config, consumer, client)
    from probcast.ops.broker_redis import RedisBroker

    return RedisBroker(config, consumer, client)


def describe(config: BrokerConfig) -> Mapping[str, Any]:
    """The settings without credentials (for logs)."""
    url = config.url
    scheme, _, rest = url.partition("://")
    if "@" in rest:
        url = f"{scheme}://***@{rest.rpartition('@')[2]}"
    return {**dataclasses.asdict(config), "url": url}
