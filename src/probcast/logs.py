"""Logging set-up shared by the commands: probcast's progress at INFO, libraries quieter.

``PROBCAST_LOG_FORMAT=json`` makes every line one JSON object (``time``, ``level``,
``logger``, ``message``, and the fields of the enclosing :func:`log_context`, e.g. the
``pipeline`` and ``cycle`` of an operational run) for log shippers; the default (``text``)
output is unchanged.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

QUIET = ("absl", "orbax", "jax", "mlflow", "alembic", "distributed")
FORMAT_ENV = "PROBCAST_LOG_FORMAT"
"""``text`` (default) or ``json``."""
TEXT_FORMAT = "%(asctime)s %(name)s: %(message)s"

_WARNED: set[str] = set()
_CONTEXT: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "probcast_log_context", default=None
)


class OnceFilter(logging.Filter):
    """Let each distinct message through once (a repeated warning is one line, not eight)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[tuple[str, int, str]] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        """True the first time a (logger, level, message) is seen."""
        key = (record.name, record.levelno, record.getMessage())
        if key in self.seen:
            return False
        self.seen.add(key)
        return True


@contextlib.contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (e.g. ``cycle="2026-11-29T00Z"``) to every JSON log line inside."""
    token = _CONTEXT.set({**(_CONTEXT.get() or {}), **fields})
    try:
        yield
    finally:
        _CONTEXT.reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, context."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a single-line JSON object."""
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **(_CONTEXT.get() or {}),
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def log_format() -> str:
    """The output format asked for by ``PROBCAST_LOG_FORMAT`` (``text`` or ``json``)."""
    value = os.environ.get(FORMAT_ENV, "text").strip().lower() or "text"
    if value not in ("text", "json"):
        if value in _WARNED:
            return "text"
        _WARNED.add(value)
        print(
            f"probcast: {FORMAT_ENV} must be 'text' or 'json', got {value!r}; using text",
            file=sys.stderr,
        )
        return "text"
    return value


def configure_logging(level: int = logging.INFO) -> None:
    """Show probcast's messages (the per-epoch lines) on stderr once each; libraries at WARNING."""
    logging.basicConfig(level=logging.WARNING, format=TEXT_FORMAT)
    logging.getLogger("probcast").setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    as_json = log_format() == "json"
    for handler in logging.getLogger().handlers:
        plain = type(handler) is logging.StreamHandler  # not a test framework's capture
        if plain and not any(isinstance(f, OnceFilter) for f in handler.filters):
            handler.addFilter(OnceFilter())
        if plain and as_json:
            handler.setFormatter(JsonFormatter())
