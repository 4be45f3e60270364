"""Simulated deaths of a writing process, for tests of what an interruption leaves behind."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


class Killed(BaseException):
    """The process dies here (not an error any code handles)."""


def kill_at_rename(monkeypatch: Any, target: Path) -> None:
    """Make the process "die" (raise :class:`Killed`) when a file is renamed onto ``target``.

    Args:
        monkeypatch: pytest's ``monkeypatch`` fixture (undoes the patch after the test).
        target: The final path whose rename (``os.replace``) is the moment of death.
    """
    real = os.replace

    def replace(src: Any, dst: Any) -> None:
        if Path(dst) == Path(target):
            raise Killed
        real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
