"""Request limits of ``probcast serve``: body size (before parsing), points, rows, values.

:class:`Limits` bounds what one request may ask for: stations or points, rows (points x
lead times) and values of the answer (rows x columns: keys, parameters, members, quantiles,
probabilities), and how many forecasts are computed at once (:class:`Gate`: a request
waiting longer than :data:`QUEUE_SECONDS` for its turn is a ``503`` with ``Retry-After``).

:class:`BodyLimit` is a pure ASGI middleware: a request whose ``Content-Length`` exceeds the
limit is answered ``413`` before its body is read; a body sent without a length (chunked) is
counted as it streams in and refused with ``413`` as soon as it passes the limit (the
application then sees the client disconnect and its own answer is dropped), so it never
buffers more than the limit. Every refusal is a JSON body
``{"detail": "..."}``, like every other error of the API.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_POINTS = 10_000
MAX_ROWS = 100_000
MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_DISTANCE_KM = 50.0
MAX_CELLS = 4_000_000
"""Values of one answer (rows x columns): about 100-150 MB of JSON."""
MAX_FORECASTS = 4
"""Forecasts computed at once (the others wait their turn)."""
QUEUE_SECONDS = 30.0
"""How long a forecast waits for its turn before a ``503``."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one request may ask for.

    Attributes:
        max_points: Stations or lat/lon points per request.
        max_rows: Rows of the answer (points x lead times).
        max_body_bytes: Size of the request body.
        max_distance_km: How far a lat/lon point may lie from the station or grid point
            that answers it.
        max_cells: Values of the answer (rows x columns).
        max_forecasts: Forecasts computed at once.
    """

    max_points: int = MAX_POINTS
    max_rows: int = MAX_ROWS
    max_body_bytes: int = MAX_BODY_BYTES
    max_distance_km: float = MAX_DISTANCE_KM
    max_cells: int = MAX_CELLS
    max_forecasts: int = MAX_FORECASTS

    def __post_init__(self) -> None:
        for name in ("max_points", "max_rows", "max_body_bytes", "max_cells", "max_forecasts"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.max_distance_km > 0:
            raise ValueError(f"max_distance_km must be > 0, got {self.max_distance_km}")


def too_many_cells(rows: int, columns: int, limit: int) -> str:
    """The message of a ``413`` for an answer of ``rows`` x ``columns`` values."""
    fit = max(1, limit // max(1, columns))
    return (
        f"the answer would hold {rows * columns} values ({rows} rows x {columns} columns); "
        f"at most {limit} a request: split it into requests of at most {fit} rows "
        "(fewer stations, points or lead times each), or ask for fewer members, quantiles "
        "or thresholds"
    )


class Gate:
    """At most ``limit`` forecasts computed at once; a request waits ``wait`` s at most.

    Used as ``with gate:``; a request not let in within ``wait`` seconds gets a ``503``
    with ``Retry-After``.
    """

    def __init__(self, limit: int, wait: float = QUEUE_SECONDS) -> None:
        self.limit = int(limit)
        self.wait = float(wait)
        self._slots = threading.BoundedSemaphore(self.limit)

    def __enter__(self) -> Gate:
        if not self._slots.acquire(timeout=self.wait):
            from fastapi import HTTPException

            raise HTTPException(
                503,
                f"busy: {self.limit} forecasts are being computed; retry in a few seconds",
                headers={"Retry-After": "5"},
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self._slots.release()


def too_large(limit: int, size: int | None = None) -> str:
    """The message of a ``413`` for a body of ``size`` bytes (``None``: streamed, unknown)."""
    got = f"{size} bytes" if size is not None else f"more than {limit} bytes"
    return f"request body of {got}; at most {limit} bytes a request"


async def _send_problem(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware refusing request bodies over ``limit`` bytes with ``413``.

    Args:
        app: The wrapped ASGI application.
        limit: Largest accepted body, in bytes.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = int(limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Refuse an oversized body with ``413``, else pass the request on."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            if not length.isdigit():
                await _send_problem(send, 400, f"Content-Length must be a number, got {length!r}")
                return
            if int(length) > self.limit:
                await _send_problem(send, 413, too_large(self.limit, int(length)))
                return
        seen = 0
        answered = False  # the 413 went out: the application's own answer is dropped

        async def counted() -> Message:
            nonlocal seen, answered
            if answered:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    answered = True
                    await _send_problem(send, 413, too_large(self.limit))
                    return {"type": "http.disconnect"}  # the application stops reading
            return message

        async def guarded(message: Message) -> None:
            if not answered:
                await send(message)

        await self.app(scope, counted, guarded)
