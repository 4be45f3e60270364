"""``probcast watch``: the command's entry point for the ``probcast`` dispatcher.

Adds ``--metrics-file`` and ``--pushgateway`` (:mod:`probcast.ops.metrics_export`).
"""

from probcast.ops.cli import watch_main
from probcast.ops.metrics_export import with_export


def main(argv: list[str]) -> int:
    """``probcast watch`` with its metrics exported after each cycle."""
    return with_export(watch_main, argv, "watch")


__all__ = ["main"]
