"""The ``probcast`` command: one thin dispatcher to each stage's own command module.

Every subcommand lives next to the code it drives (``probcast.<stage>.cli``) and exposes
``main(argv: list[str]) -> int``; this module only routes to it. It is also the last guard
against tracebacks: an exception a command did not turn into a message becomes one
paragraph on stderr and exit code 1 (``PROBCAST_DEBUG=1`` shows the traceback instead).
A reader that closes the pipe early (``probcast data list | head -1``) ends any command
quietly with exit code 1: no message, no traceback. SIGTERM (what Kubernetes, systemd,
``timeout`` and batch schedulers send) runs the same clean-up as Ctrl-C (temporary files
removed, a failed training's workdir discarded) and exits 143; commands that stop
gracefully on it (``consume``, ``schedule``, ``serve``) install their own handler.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

from probcast import compile_cache
from probcast.io import describe
from probcast.logs import configure_logging
from probcast.progress import silence

COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("probcast.data.cli", "list, fetch, prepare, build, check and split datasets"),
    "train": ("probcast.train.cli", "train a model from an ml_collections config"),
    "predict": ("probcast.predict.cli", "predict members/quantiles/probabilities"),
    "verify": ("probcast.verify.cli", "score forecasts against truth and write a report"),
    "demo": ("probcast.bench.demo", "run the whole chain on a benchmark dataset"),
    "run": ("probcast.ops.cli_run", "run NWP cycles through a pipeline file (state, resumable)"),
    "watch": ("probcast.ops.cli_watch", "run each new complete cycle dropped in the input folder"),
    "serve": (
        "probcast.ops.cli_serve",
        "HTTP API: forecasts on demand for stations or lat/lon points of a cycle",
    ),
    "monitor": ("probcast.monitor.cli", "input drift and rolling skill of a model in production"),
    "consume": ("probcast.ops.cli_consume", "run the cycle of each message of a broker (Redis)"),
    "cost": ("probcast.ops.cli_cost", "cost per day and month of a pipeline, from measured runs"),
    "schedule": ("probcast.ops.cli_schedule", "run cycles at the fire times of a cron schedule"),
    "model": ("probcast.ops.cli_model", "registered model versions: list, promote, rollback"),
    "retrain": ("probcast.ops.cli_retrain", "retrain on a rolling window, gated on CRPS"),
}


def _usage() -> str:
    lines = ["usage: probcast COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<9} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'probcast COMMAND --help' for the command's options."]
    lines += ["--quiet (anywhere on the line) hides the progress bars (as PROBCAST_QUIET=1)."]
    return "\n".join(lines)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is, so that Ctrl-C's clean-up runs for it too."""


@contextlib.contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Raise :class:`Terminated` on SIGTERM while the block runs (main thread only).

    A second SIGTERM during the clean-up ends the process at once (the default action).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise Terminated

    old = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


class _PipeClosed(BaseException):
    """Standard output's reader went away.

    A BaseException, so that no command's own ``except Exception`` / ``except OSError``
    turns it into an error message.
    """


class _Stdout:
    """``sys.stdout`` whose broken pipe (EPIPE) raises :class:`_PipeClosed`."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return int(self._stream.write(text))
        except BrokenPipeError:
            raise _PipeClosed from None

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise _PipeClosed from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _discard_stdout() -> None:
    """Point standard output at the null device: the flush at exit cannot fail again.

    The recipe of the Python docs' note on SIGPIPE.
    """
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # a test's capture: nothing to redirect
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


PIPE_EXIT = 1
"""Exit status when standard output's reader closed the pipe (no message is printed)."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``probcast`` console script."""
    stdout = sys.stdout
    if stdout is not None:
        sys.stdout = _Stdout(stdout)
    try:
        code = _dispatch(argv)
        if sys.stdout is not None:
            sys.stdout.flush()  # a closed pipe shows here when the output fitted the buffer
        return code
    except (_PipeClosed, BrokenPipeError):
        sys.stdout = stdout
        _discard_stdout()
        return PIPE_EXIT
    finally:
        sys.stdout = stdout


def _dispatch(argv: list[str] | None) -> int:
    """Route ``argv`` to its command; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--quiet" in args:  # no progress bars (probcast.progress); logs unchanged
        args = [a for a in args if a != "--quiet"]
        silence()
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if args[0] == "--version":
        from probcast import __version__

        print(f"probcast {__version__}")
        return 0
    name = args[0]
    if name not in COMMANDS:
        known = ", ".join(COMMANDS)
        print(
            f"probcast: unknown command {name!r}; commands: {known} (see probcast --help)",
            file=sys.stderr,
        )
        return 2
    configure_logging()
    compile_cache.enable()  # compiled kernels reused across processes
    try:
        with _terminate_as_interrupt():
            module = importlib.import_module(COMMANDS[name][0])
            return int(module.main(args[1:]) or 0)
    except Terminated:
        print(f"probcast {name}: terminated (SIGTERM)", file=sys.stderr)
        return 143
    except SystemExit as exc:  # argparse inside a command: --help (0) or a usage error (2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        print(f"probcast {name}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # written past the proxy (sys.stdout.buffer): as _PipeClosed
        raise
    except Exception as err:
        if os.environ.get(DEBUG_ENV):
            raise
        print(error_message(name, err), file=sys.stderr)
        return 1


DEBUG_ENV = "PROBCAST_DEBUG"
"""Set to show the traceback of an unexpected error instead of the one-paragraph message."""


def error_message(command: str, err: BaseException) -> str:
    """One paragraph for an exception that reached the dispatcher.

    probcast's own errors (and ``ValueError``/``OSError``, the errors of bad input) are
    shown as their message (an ``OSError`` as ``<path>: <reason>``); anything else is named
    as unexpected, with how to see more.
    """
    # an OSError as "x: no space left on the device", not "[Errno 28] No space ...: 'x'"
    text = err.args[0] if isinstance(err, KeyError) and err.args else describe(err)
    text = " ".join(str(text).split())
    text = text or type(err).__name__
    expected = isinstance(err, (ValueError, OSError, LookupError)) or type(
        err
    ).__module__.startswith("probcast")
    if expected:
        return f"probcast {command}: error: {text}"
    return (
        f"probcast {command}: unexpected error ({type(err).__name__}): {text}. "
        f"Rerun with {DEBUG_ENV}=1 to see the traceback, and please report it."
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
