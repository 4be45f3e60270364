"""``GET /metrics`` and request metrics for ``probcast serve`` (see :mod:`probcast.ops.metrics`).

:func:`instrument_app` adds a middleware that counts every request by route template
(``/forecast``, not the raw path, so the label set stays small), method (a method outside
:data:`METHODS` counts as ``other``: any token a client sends would be a new series) and
status code, and times it; and the ``/metrics`` route, in the Prometheus text format.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from probcast.ops.metrics import HTTP_REQUESTS, HTTP_SECONDS, MODEL, REGISTRY

METHODS = frozenset({"GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})
"""HTTP methods counted under their own name."""


def method_label(method: str) -> str:
    """``method`` when it is one of :data:`METHODS`, else ``other``."""
    return method if method in METHODS else "other"


def _handler(request: Request) -> str:
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


def publish_model(pipeline: str, model: Any, fingerprint: str) -> None:
    """``probcast_model_info`` of the model in use (again after every reload)."""
    MODEL.labels(pipeline).info({"fingerprint": str(fingerprint), "model": str(model)})


def instrument_app(app: FastAPI, pipeline: str, model: Any) -> None:
    """Count and time every request of ``app``; serve the registry at ``GET /metrics``.

    Args:
        app: The FastAPI application.
        pipeline: The pipeline's name (label of ``probcast_model_info``).
        model: The model's work directory (its fingerprint is published when readable).
    """
    from probcast.predict.grid_output import model_fingerprint

    with contextlib.suppress(OSError):  # unreadable: /health says so; nothing to publish
        publish_model(pipeline, model, model_fingerprint(model))

    @app.middleware("http")
    async def _measure(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        start = time.perf_counter()
        status = 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            handler, method = _handler(request), method_label(request.method)
            HTTP_SECONDS.labels(handler, method).observe(time.perf_counter() - start)
            HTTP_REQUESTS.labels(handler, method, str(status)).inc()

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
