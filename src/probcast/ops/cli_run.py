"""``probcast run``: the command's entry point for the ``probcast`` dispatcher."""

from probcast.ops.cli import run_main as main

__all__ = ["main"]
