"""``probcast watch``: the command's entry point for the ``probcast`` dispatcher."""

from probcast.ops.cli import watch_main as main

__all__ = ["main"]
