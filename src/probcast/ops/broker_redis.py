"""Cycle-ready messages on a Redis stream, read by a consumer group (redis-py).

- **publish**: ``XADD stream MAXLEN ~ max_len * message <json>``.
- **receive**: first ``XAUTOCLAIM`` (messages pending longer than ``claim_idle_seconds``: their
  consumer died, or gave them back with :meth:`RedisBroker.nack`), then ``XREADGROUP >`` (new
  messages), blocking up to the timeout. The delivery count is Redis's own (``XPENDING``).
- **ack**: ``XACK``. **extend** (heartbeat while a cycle runs): ``XCLAIM ... JUSTID`` to this
  consumer, which resets the idle time without counting a delivery.
- **nack**: ``XCLAIM ... IDLE`` sets the idle time so that the message becomes claimable after
  the delay (``RETRYCOUNT`` keeps the count when the try must not count).
- **dead_letter**: ``XADD`` to the dead-letter stream and ``XACK``, in one ``MULTI``/``EXEC``.

The consumer group is created at the stream's start (``0``) on first use, so messages sent
before the first consumer started are read too.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from probcast.ops.broker import BrokerConfig, BrokerError, Delivery

log = logging.getLogger(__name__)
FIELD = b"message"
"""The stream entry's field holding the JSON body."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisBroker:
    """A consumer of ``config.stream`` in group ``config.group`` (see the module docstring).

    Args:
        config: The broker settings (``url``: ``redis://host:port/db``, ``rediss://``,
            ``unix://``).
        consumer: This consumer's name in the group.
        client: A ``redis.Redis`` to use instead of one made from the URL.
    """

    def __init__(self, config: BrokerConfig, consumer: str, client: Any = None) -> None:
        import redis

        self.config = config
        self.consumer = consumer
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError,)
        self.client: Any = client or redis.Redis.from_url(
            config.url, socket_connect_timeout=10, health_check_interval=30
        )
        self._cursor = "0-0"
        self._group_ready = False

    # -- helpers ----------------------------------------------------------------------------

    def _call(self, what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except self._errors as err:
            raise BrokerError(f"redis {what} on {self.config.stream!r} failed: {err}") from err

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            self.client.xgroup_create(self.config.stream, self.config.group, id="0", mkstream=True)
        except self._errors as err:
            if "BUSYGROUP" not in str(err):  # the group exists already: fine
                raise BrokerError(
                    f"cannot create consumer group {self.config.group!r} on "
                    f"{self.config.stream!r} at the Redis server: {err}"
                ) from err
        self._group_ready = True

    def _ms(self, seconds: float) -> int:
        return max(0, int(seconds * 1000))

    def _deliveries(self, entry_id: str) -> int:
        rows = self._call(
            "XPENDING",
            self.client.xpending_range,
            self.config.stream,
            self.config.group,
            min=entry_id,
            max=entry_id,
            count=1,
        )
        return int(rows[0]["times_delivered"]) if rows else 1

    def _delivery(self, entry_id: Any, fields: Any, deliveries: int | None = None) -> Delivery:
        ident = _text(entry_id)
        body = (fields or {}).get(FIELD, b"")
        body = body.encode() if isinstance(body, str) else bytes(body)
        count = deliveries if deliveries is not None else self._deliveries(ident)
        return Delivery(ident, body, count)

    # -- the interface ----------------------------------------------------------------------

    def publish(self, body: bytes) -> str:
        """``XADD`` the message (the stream is trimmed to about ``max_len`` entries)."""
        entry = self._call(
            "XADD",
            self.client.xadd,
            self.config.stream,
            {FIELD: body},
            maxlen=self.config.max_len,
            approximate=True,
        )
        return _text(entry)

    def receive(self, timeout: float) -> Delivery | None:
        """A message pending too long (redelivery), else a new one (waits up to ``timeout`` s)."""
        self._ensure_group()
        claimed = self._call(
            "XAUTOCLAIM",
            self.client.xautoclaim,
            self.config.stream,
            self.config.group,
            self.consumer,
            min_idle_time=self._ms(self.config.claim_idle_seconds),
            start_id=self._cursor,
            count=1,
        )
        self._cursor = _text(claimed[0]) if claimed else "0-0"
        for entry_id, fields in claimed[1] if claimed else []:
            if fields is not None:
                return self._delivery(entry_id, fields)
        block = self._ms(timeout)
        reply = self._call(
            "XREADGROUP",
            self.client.xreadgroup,
            self.config.group,
            self.consumer,
            {self.config.stream: ">"},
            count=1,
            block=block or None,
        )
        for _stream, entries in reply or []:
            for entry_id, fields in entries:
                return self._delivery(entry_id, fields, deliveries=1)
        return None

    def ack(self, msg: Delivery) -> None:
        """``XACK`` the message."""
        self._call("XACK", self.client.xack, self.config.stream, self.config.group, msg.id)

    def extend(self, msg: Delivery) -> None:
        """Reset the message's idle time (``XCLAIM`` to this consumer, ``JUSTID``)."""
        self._claim(msg, idle=0)

    def nack(self, msg: Delivery, delay: float, *, counts: bool = True) -> None:
        """Make the message claimable by any consumer after ``delay`` seconds."""
        idle = self._ms(max(0.0, self.config.claim_idle_seconds - delay))
        self._claim(msg, idle=idle, retrycount=None if counts else max(0, msg.deliveries - 1))

    def _claim(self, msg: Delivery, idle: int, retrycount: int | None = None) -> None:
        self._call(
            "XCLAIM",
            self.client.xclaim,
            self.config.stream,
            self.config.group,
            self.consumer,
            min_idle_time=0,
            message_ids=[msg.id],
            idle=idle,
            retrycount=retrycount,
            justid=True,
        )

    def dead_letter(self, msg: Delivery, reason: str) -> None:
        """Copy the message to the dead-letter stream with why, and ``XACK`` it (one MULTI)."""
        entry = {
            FIELD: msg.body,
            b"id": msg.id,
            b"stream": self.config.stream,
            b"group": self.config.group,
            b"deliveries": str(msg.deliveries),
            b"reason": reason,
            b"consumer": self.consumer,
            b"at": f"{time.time():.3f}",
        }
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(self.config.dead_letter, entry, maxlen=self.config.max_len, approximate=True)
        pipe.xack(self.config.stream, self.config.group, msg.id)
        self._call("MULTI/EXEC", pipe.execute)

    def dead_letters(self, count: int = 100) -> list[dict[str, str]]:
        """The newest ``count`` dead-letter entries, oldest first (fields as text)."""
        rows = self._call("XREVRANGE", self.client.xrevrange, self.config.dead_letter, count=count)
        out = []
        for entry_id, fields in reversed(rows):
            item = {_text(k): _text(v) for k, v in fields.items()}
            item["dead_letter_id"] = _text(entry_id)
            out.append(item)
        return out

    def close(self) -> None:
        """Leave the group if nothing is pending for this consumer, and disconnect."""
        try:
            pending = self.client.xpending_range(
                self.config.stream, self.config.group, "-", "+", 1, consumername=self.consumer
            )
            if not pending:
                self.client.xgroup_delconsumer(self.config.stream, self.config.group, self.consumer)
        except self._errors as err:
            log.debug("redis: could not remove consumer %s: %s", self.consumer, err)
        self.client.close()
