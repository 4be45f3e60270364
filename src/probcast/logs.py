"""Logging set-up shared by the commands: probcast's progress at INFO, libraries quieter."""

from __future__ import annotations

import logging

QUIET = ("absl", "orbax", "jax", "mlflow", "alembic", "distributed")


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


def configure_logging(level: int = logging.INFO) -> None:
    """Show probcast's messages (the per-epoch lines) on stderr once each; libraries at WARNING."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("probcast").setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    for handler in logging.getLogger().handlers:
        plain = type(handler) is logging.StreamHandler  # not a test framework's capture
        if plain and not any(isinstance(f, OnceFilter) for f in handler.filters):
            handler.addFilter(OnceFilter())
