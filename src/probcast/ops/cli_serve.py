"""``probcast serve``: the command's entry point for the ``probcast`` dispatcher."""

from probcast.ops.cli import serve_main as main

__all__ = ["main"]
