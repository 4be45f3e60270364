"""Resident memory of a process tree, and a subprocess run under an RSS limit (Linux /proc).

Shared by the benchmark scripts, which are run as ``python benchmarks/<script>.py`` (this
folder is then first on ``sys.path``, so ``from _rss import run_limited`` finds it).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass

PAGE = os.sysconf("SC_PAGE_SIZE")


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/statm") as f:
                total += int(f.read().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            pass
        todo += children.get(p, [])
    return total


@dataclass
class LimitedRun:
    """How a :func:`run_limited` command ended.

    Attributes:
        returncode: Exit status (negative: killed by that signal).
        seconds: Wall time.
        peak: Peak RSS of the process tree (bytes, sampled every 50 ms).
        killed: Whether it was killed for going over the limit.
        stdout: Its standard output when captured, else None.
    """

    returncode: int
    seconds: float
    peak: int
    killed: bool
    stdout: str | None = None


def run_limited(cmd: list[str], limit: int = 0, *, capture: bool = False) -> LimitedRun:
    """Run ``cmd`` in its own session, killing its tree when its RSS exceeds ``limit`` bytes.

    Args:
        cmd: The command line.
        limit: RSS limit of the whole process tree in bytes (0: none, only measured).
        capture: Capture standard output (returned in :attr:`LimitedRun.stdout`).
    """
    t0 = time.perf_counter()
    stdout = subprocess.PIPE if capture else None
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=stdout, text=True)
    peak, killed = 0, threading.Event()

    def watch() -> None:
        nonlocal peak
        while proc.poll() is None:
            rss = tree_rss(proc.pid)
            peak = max(peak, rss)
            if limit and rss > limit:
                killed.set()
                os.killpg(proc.pid, 9)
                return
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    out, _ = proc.communicate()
    watcher.join()
    return LimitedRun(proc.returncode, time.perf_counter() - t0, peak, killed.is_set(), out)
