"""Graceful stop of the long-running commands on SIGTERM and SIGINT."""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Iterator


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event, prog: str) -> Iterator[None]:
    """Set ``stop`` on SIGTERM and SIGINT while the block runs (main thread only).

    The long-running commands (``consume``, ``schedule``, ``watch``) finish the cycle they
    are running, then return; ``prog`` names the command in the line printed.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}

    def _stop(signum: int, _frame: object) -> None:
        print(f"{prog}: {signal.Signals(signum).name}: finishing", file=sys.stderr, flush=True)
        stop.set()

    for sig in old:
        signal.signal(sig, _stop)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
