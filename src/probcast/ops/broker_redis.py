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

**Timeouts.** The client connects within :data:`CONNECT_TIMEOUT_S` and waits at most
:data:`READ_TIMEOUT_S` for an answer (beyond the wait of a blocking ``XREADGROUP``, so
``--block`` may exceed it); redis-py's own retries are off (the caller retries). With a
deadline (:meth:`RedisBroker.set_deadline`, set by :func:`~probcast.ops.consume.consume`
from its ``timeout``), :meth:`RedisBroker.receive` and :meth:`RedisBroker.close` shorten
both to the time left plus :data:`GRACE_S`, so a host that never accepts, or accepts and
never answers, cannot hold them past the deadline by more than about ``2 * GRACE_S``. The
client's connections are remade when the timeouts change (every ``GRACE_S`` or so in the
last seconds before the deadline); the calls made for a received message (heartbeat, ack,
nack, dead letter) get the full timeouts back.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from probcast.ops.broker import BrokerConfig, BrokerError, Delivery, describe

log = logging.getLogger(__name__)
FIELD = b"message"
"""The stream entry's field holding the JSON body."""
CONNECT_TIMEOUT_S = 10.0
"""Longest wait for a connection to the server (without a deadline)."""
READ_TIMEOUT_S = 10.0
"""Longest wait for an answer, beyond a blocking read's own wait (without a deadline)."""
GRACE_S = 0.5
"""How long a call bounded by the deadline may outlast it (see the module docstring)."""


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
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self.config = config
        self.consumer = consumer
        self.deadline: float | None = None
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError,)
        self._down_errors: tuple[type[BaseException], ...] = (
            redis.ConnectionError,
            redis.TimeoutError,
        )
        self._timeout_error: type[BaseException] = redis.TimeoutError
        self._timeouts = (CONNECT_TIMEOUT_S, READ_TIMEOUT_S)
        self._down = False
        self.client: Any = client or redis.Redis.from_url(
            config.url,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=READ_TIMEOUT_S,
            health_check_interval=30,
            retry=Retry(NoBackoff(), 0),
        )
        self._cursor = "0-0"
        self._group_ready = False

    def set_deadline(self, deadline: float | None) -> None:
        """Make :meth:`receive` and :meth:`close` end by ``deadline`` (see the module docstring).

        Args:
            deadline: A ``time.monotonic()`` time, or None for the full timeouts.
        """
        self.deadline = deadline

    # -- helpers ----------------------------------------------------------------------------

    def _fit(self, block: float = 0.0, *, bounded: bool = True) -> None:
        """Set the client's timeouts for a call that waits ``block`` s (module docstring).

        ``bounded``: the call must end by the deadline (when there is one); otherwise it gets
        the full timeouts. The connections are remade only when the timeouts in use are too
        short for the call, or would let it outlast the deadline by more than ``GRACE_S``.
        """
        pool = getattr(self.client, "connection_pool", None)
        settings = getattr(pool, "connection_kwargs", None)
        if pool is None or not isinstance(settings, dict):  # a client object given by a test
            return
        connect, read = CONNECT_TIMEOUT_S, block + READ_TIMEOUT_S
        most = float("inf")
        if bounded and self.deadline is not None:
            left = max(0.0, self.deadline - time.monotonic())
            connect, read = min(connect, left + GRACE_S), min(read, max(block, left) + GRACE_S)
            most = max(block, left) + 2 * GRACE_S
        now_connect, now_read = self._timeouts
        if (
            now_read >= block + GRACE_S
            and now_read >= min(read, READ_TIMEOUT_S) - GRACE_S
            and now_connect >= connect - GRACE_S
            and max(now_connect, now_read) <= most
        ):
            return
        settings.update(socket_connect_timeout=connect, socket_timeout=read)
        pool.disconnect()
        pool.reset()  # connections made from now on take the new timeouts
        self._timeouts = (connect, read)

    def _failed(self, what: str, err: BaseException) -> str:
        """``what`` failed: the message, and whether the server could not be reached."""
        self._down = isinstance(err, self._down_errors)
        text = f"{what} at {describe(self.config)['url']} failed: {err}"
        if isinstance(err, self._timeout_error):
            connect, read = self._timeouts
            text += f" (timeouts: connect {connect:.3g} s, answer {read:.3g} s)"
        return text

    def _call(self, what: str, func: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            out = func(*args, **kwargs)
        except self._errors as err:
            raise BrokerError(self._failed(f"redis {what} on {self.config.stream!r}", err)) from err
        self._down = False
        return out

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        try:
            self.client.xgroup_create(self.config.stream, self.config.group, id="0", mkstream=True)
        except self._errors as err:
            if "BUSYGROUP" not in str(err):  # the group exists already: fine
                what = f"creating consumer group {self.config.group!r} on {self.config.stream!r}"
                raise BrokerError(self._failed(what, err)) from err
        self._down = False
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
        self._fit(bounded=False)
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
        """A message pending too long (redelivery), else a new one (waits up to ``timeout`` s).

        Ends by the deadline (:meth:`set_deadline`), give or take ``GRACE_S``, whatever the
        server does.
        """
        self._fit()
        self._ensure_group()
        self._fit()
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
                return self._received(entry_id, fields)
        block = self._ms(timeout)
        self._fit(block / 1000)
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
                return self._received(entry_id, fields, deliveries=1)
        return None

    def _received(self, entry_id: Any, fields: Any, deliveries: int | None = None) -> Delivery:
        """The delivery; the calls made for it (heartbeat, ack) get the full timeouts."""
        msg = self._delivery(entry_id, fields, deliveries)
        self._fit(bounded=False)
        return msg

    def ack(self, msg: Delivery) -> None:
        """``XACK`` the message."""
        self._fit(bounded=False)
        self._call("XACK", self.client.xack, self.config.stream, self.config.group, msg.id)

    def extend(self, msg: Delivery) -> None:
        """Reset the message's idle time (``XCLAIM`` to this consumer, ``JUSTID``)."""
        self._claim(msg, idle=0)

    def nack(self, msg: Delivery, delay: float, *, counts: bool = True) -> None:
        """Make the message claimable by any consumer after ``delay`` seconds."""
        idle = self._ms(max(0.0, self.config.claim_idle_seconds - delay))
        self._claim(msg, idle=idle, retrycount=None if counts else max(0, msg.deliveries - 1))

    def _claim(self, msg: Delivery, idle: int, retrycount: int | None = None) -> None:
        self._fit(bounded=False)
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
        self._fit(bounded=False)
        pipe = self.client.pipeline(transaction=True)
        pipe.xadd(self.config.dead_letter, entry, maxlen=self.config.max_len, approximate=True)
        pipe.xack(self.config.stream, self.config.group, msg.id)
        self._call("MULTI/EXEC", pipe.execute)

    def dead_letters(self, count: int = 100) -> list[dict[str, str]]:
        """The newest ``count`` dead-letter entries, oldest first (fields as text)."""
        self._fit(bounded=False)
        rows = self._call("XREVRANGE", self.client.xrevrange, self.config.dead_letter, count=count)
        out = []
        for entry_id, fields in reversed(rows):
            item = {_text(k): _text(v) for k, v in fields.items()}
            item["dead_letter_id"] = _text(entry_id)
            out.append(item)
        return out

    def close(self) -> None:
        """Leave the group if nothing is pending for this consumer, and disconnect.

        The group is left alone when the last call could not reach the server; the calls are
        bounded by the deadline (:meth:`set_deadline`).
        """
        try:
            if not self._down:
                self._fit()
                pending = self.client.xpending_range(
                    self.config.stream, self.config.group, "-", "+", 1, consumername=self.consumer
                )
                if not pending:
                    self.client.xgroup_delconsumer(
                        self.config.stream, self.config.group, self.consumer
                    )
        except self._errors as err:
            log.debug("redis: could not remove consumer %s: %s", self.consumer, err)
        self.client.close()
