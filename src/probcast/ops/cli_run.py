"""``probcast run``: the command's entry point for the ``probcast`` dispatcher.

Adds ``--metrics-file`` and ``--pushgateway`` (:mod:`probcast.ops.metrics_export`).
"""

from probcast.ops.cli import run_main
from probcast.ops.metrics_export import with_export


def main(argv: list[str]) -> int:
    """``probcast run`` with its metrics exported after each cycle."""
    return with_export(run_main, argv, "run")


__all__ = ["main"]
