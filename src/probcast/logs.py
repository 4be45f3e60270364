"""Logging set-up shared by the commands: probcast's progress at INFO, libraries quieter."""

from __future__ import annotations

import logging

QUIET = ("absl", "orbax", "jax", "mlflow", "alembic", "distributed")


def configure_logging(level: int = logging.INFO) -> None:
    """Show probcast's messages (the per-epoch lines) on stderr; libraries at WARNING."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("probcast").setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
