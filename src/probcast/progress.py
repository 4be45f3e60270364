"""Progress bars with an ETA on stderr for the steps that take more than a few seconds.

Training epochs, EMOS fits, grid tiles, verification, dataset fetch and prepare show a bar
(``rich.progress``) when stderr is a terminal. Nothing is drawn, and every function here costs
next to nothing, when stderr is not a terminal (a pipe, a log file, a test's capture) or when
progress is silenced: ``PROBCAST_QUIET=1`` in the environment, or ``--quiet`` on the
``probcast`` command line (which sets it). The log lines stay as they are: they are the
progress record where there is no terminal.

A bar opened while another is shown (an EMOS fit inside training, tiles inside a prediction)
becomes one more line of the same display and disappears when done. While bars are shown,
log lines and anything else written to stderr are printed above them.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

QUIET_ENV = "PROBCAST_QUIET"
"""Set to ``1`` (or ``true``/``yes``/``on``) to never draw a progress bar."""
_TRUE = ("1", "true", "yes", "on")

T = TypeVar("T")

_LOCK = threading.RLock()
_LIVE: dict[str, Any] = {}  # "progress": the shown rich Progress; "handlers": swapped streams


def quiet() -> bool:
    """True when ``PROBCAST_QUIET`` asks for no progress bars."""
    return os.environ.get(QUIET_ENV, "").strip().lower() in _TRUE


def silence() -> None:
    """Switch progress bars off for this process and the processes it starts."""
    os.environ[QUIET_ENV] = "1"


def enabled(console: Any = None) -> bool:
    """Whether a bar would be drawn (to ``console``, default stderr) now."""
    if quiet():
        return False
    return bool(console.is_terminal) if console is not None else _is_tty(sys.stderr)


class Bar:
    """Handle of one bar (a task of the shown display); does nothing when nothing is drawn."""

    def __init__(self, progress: Any = None, task: Any = None) -> None:
        self._progress, self._task = progress, task

    @property
    def shown(self) -> bool:
        """True when this bar is drawn."""
        return self._progress is not None

    def advance(self, n: float = 1.0, description: str | None = None) -> None:
        """Move the bar on by ``n`` steps (and change its text)."""
        if self._progress is not None:
            kw = {} if description is None else {"description": description}
            self._progress.update(self._task, advance=n, **kw)

    def update(
        self,
        *,
        description: str | None = None,
        total: float | None = None,
        completed: float | None = None,
    ) -> None:
        """Change the text, the total or the steps done."""
        if self._progress is not None:
            self._progress.update(
                self._task, description=description, total=total, completed=completed
            )


def _columns() -> list[Any]:
    from rich.filesize import decimal
    from rich.progress import (
        BarColumn,
        ProgressColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Count(ProgressColumn):
        """``done/total`` (in bytes for a download)."""

        def render(self, task: Any) -> Text:
            as_bytes = task.fields.get("unit") == "bytes"

            def fmt(v: float) -> str:
                return decimal(int(v)) if as_bytes else f"{int(v)}"

            total = "?" if task.total is None else fmt(task.total)
            return Text(f"{fmt(task.completed)}/{total}", style="progress.download")

    return [
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        TaskProgressColumn(),
        Count(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
    ]


def _start(console: Any) -> Any:
    from rich.console import Console
    from rich.progress import Progress

    console = console if console is not None else Console(stderr=True)
    progress = Progress(
        *_columns(),
        console=console,
        redirect_stdout=_is_tty(sys.stdout),  # never send piped stdout to the terminal
        redirect_stderr=True,
    )
    progress.start()
    swapped = []
    for handler in logging.getLogger().handlers:  # log lines above the bars, not through them
        if type(handler) is logging.StreamHandler and handler.stream in (
            sys.__stderr__,
            getattr(sys.stderr, "rich_proxied_file", None),
        ):
            swapped.append((handler, handler.setStream(_Above(console))))
    _LIVE.update(progress=progress, handlers=swapped)
    return progress


class _Above:
    """Stream of the log handlers while bars are shown: whole lines above them, unwrapped."""

    def __init__(self, console: Any) -> None:
        self.console, self._part = console, ""

    def write(self, text: str) -> int:
        from rich.text import Text

        *lines, self._part = (self._part + text).split("\n")
        for line in lines:
            self.console.print(Text(line), soft_wrap=True, highlight=False)
        return len(text)

    def flush(self) -> None:
        if self._part:
            self.write("\n")


def _is_tty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # replaced or closed stream
        return False


def _stop() -> None:
    progress = _LIVE.pop("progress", None)
    for handler, stream in _LIVE.pop("handlers", []):
        handler.flush()
        handler.setStream(stream)
    if progress is not None:
        progress.stop()


atexit.register(lambda: _stop() if _LIVE else None)  # never leave the cursor hidden


@contextlib.contextmanager
def bar(
    description: str,
    total: float | None = None,
    *,
    completed: float = 0,
    unit: str = "",
    console: Any = None,
) -> Iterator[Bar]:
    """A progress bar for the block inside: advance it with :meth:`Bar.advance`.

    Args:
        description: The text before the bar.
        total: Steps to do (``None``: unknown; the bar pulses and shows no ETA).
        completed: Steps already done (a resumed training).
        unit: ``"bytes"`` shows the counts as sizes.
        console: A ``rich.console.Console`` to draw on (default: stderr); tests pass one
            writing to a buffer.

    Yields:
        The bar; a no-op one when bars are off (no terminal, or quiet).
    """
    with _LOCK:
        progress = _LIVE.get("progress")
        owner = progress is None
        if owner:
            progress = _start(console) if enabled(console) else None
        task = None
        if progress is not None:
            task = progress.add_task(description, total=total, completed=completed, unit=unit)
    try:
        yield Bar(progress, task)
    finally:
        if progress is not None:
            with _LOCK:
                if owner:
                    _stop()
                else:  # drawn once as finished, then gone
                    progress.refresh()
                    progress.remove_task(task)


def track(
    items: Iterable[T],
    description: str,
    *,
    total: float | None = None,
    label: Callable[[T], str] | None = None,
    console: Any = None,
) -> Iterator[T]:
    """Iterate over ``items`` with a bar (one step per item).

    Args:
        items: What to iterate over.
        description: The text before the bar.
        total: Number of items (default ``len(items)`` when it has one).
        label: Text of the bar while an item is processed (default: ``description``).
        console: As in :func:`bar`.
    """
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with bar(description, total, console=console) as b:
        for item in items:
            if label is not None:
                b.update(description=label(item))
            yield item
            b.advance()
