"""Exporting the batch commands' metrics: a node-exporter textfile, a Pushgateway, or both.

``probcast run``, ``watch``, ``schedule`` and ``consume`` take ``--metrics-file PATH.prom``
(written atomically after every cycle, for node-exporter's textfile collector) and
``--pushgateway URL`` (the registry pushed after every cycle with ``PUT /metrics/job/
probcast_<command>/instance/<instance>/pipeline_file/<stem>``, which replaces the group's
previous push). The environment variables ``PROBCAST_METRICS_FILE`` and
``PROBCAST_PUSHGATEWAY`` set the same, and so does a ``metrics: {file: ..., pushgateway:
...}`` block of the pipeline file (options first, then the environment, then the file). The
``instance`` is ``$PROBCAST_METRICS_INSTANCE``, else the host name: set it to a stable name
for processes that come and go (a Kubernetes Job per cycle), so each push replaces the
previous one instead of leaving a group per pod behind. A failed push is a warning:
monitoring never fails a cycle.

Other commands use the same three calls: :func:`add_options` on their parser,
:func:`configure_from_args` after parsing (returns an error message or ``""``), and nothing
else (cycles flush by themselves: :func:`track_cycle`); or wrap their ``main`` with
:func:`with_export`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import generate_latest, push_to_gateway

from probcast import io
from probcast.ops import metrics
from probcast.ops.metrics import REGISTRY

log = logging.getLogger(__name__)

FILE_ENV = "PROBCAST_METRICS_FILE"
PUSH_ENV = "PROBCAST_PUSHGATEWAY"
INSTANCE_ENV = "PROBCAST_METRICS_INSTANCE"
PUSH_TIMEOUT = 10.0


@dataclasses.dataclass(frozen=True)
class Export:
    """Where the metrics go after each cycle.

    Attributes:
        file: A node-exporter textfile (``*.prom``), or ``None``.
        pushgateway: A Pushgateway base URL (``http://host:9091``), or ``None``.
        job: The Pushgateway job name.
        grouping: The Pushgateway grouping key beyond the job.
    """

    file: Path | None = None
    pushgateway: str | None = None
    job: str = "probcast"
    grouping: dict[str, str] = dataclasses.field(default_factory=dict)


_EXPORT: list[Export] = []


def check(
    file: str | None,
    pushgateway: str | None,
    names: tuple[str, str] = ("--metrics-file", "--pushgateway"),
) -> str:
    """Why these export settings cannot be used, or ``""``.

    ``names`` name where ``file`` and ``pushgateway`` came from in the message (an option,
    an environment variable, a key of the pipeline file).
    """
    if file:
        path = Path(file)
        if path.suffix != ".prom":
            return f"{names[0]} must end with .prom (node-exporter reads only those): {file}"
        if not path.parent.is_dir():
            return f"{names[0]}: folder {path.parent} does not exist"
    if pushgateway and not pushgateway.startswith(("http://", "https://")):
        return f"{names[1]} must be an http(s) URL like http://host:9091, got {pushgateway!r}"
    return ""


def configure(
    file: str | None = None,
    pushgateway: str | None = None,
    *,
    job: str = "probcast",
    grouping: dict[str, str] | None = None,
) -> None:
    """Export after every cycle to ``file`` and/or ``pushgateway`` (both ``None``: stop)."""
    why = check(file, pushgateway)
    if why:
        raise ValueError(why)
    _EXPORT.clear()
    if file or pushgateway:
        _EXPORT.append(
            Export(Path(file) if file else None, pushgateway or None, job, dict(grouping or {}))
        )


def flush() -> None:
    """Write the textfile and push to the Pushgateway, as configured (warnings on failure)."""
    for export in _EXPORT:
        if export.file is not None:
            try:
                io.write_bytes(export.file, generate_latest(REGISTRY))
            except OSError as err:
                log.warning("metrics: could not write %s: %s", export.file, err)
        if export.pushgateway:
            try:
                push_to_gateway(
                    export.pushgateway,
                    job=export.job,
                    registry=REGISTRY,
                    grouping_key=export.grouping,
                    timeout=PUSH_TIMEOUT,
                )
            except Exception as err:  # an unreachable gateway must not stop the cycles
                log.warning("metrics: push to %s failed: %s", export.pushgateway, err)


def add_options(parser: argparse.ArgumentParser) -> None:
    """``--metrics-file`` and ``--pushgateway`` (defaults from the environment)."""
    group = parser.add_argument_group("metrics")
    group.add_argument(
        "--metrics-file",
        default=os.environ.get(FILE_ENV) or None,
        help=f"node-exporter textfile (*.prom) written after each cycle [${FILE_ENV}]",
    )
    group.add_argument(
        "--pushgateway",
        default=os.environ.get(PUSH_ENV) or None,
        help=f"Pushgateway URL pushed to after each cycle [${PUSH_ENV}]",
    )


def configure_from_args(
    args: argparse.Namespace,
    job: str,
    pipeline_file: str = "",
    names: tuple[str, str] = ("--metrics-file", "--pushgateway"),
) -> str:
    """Configure from :func:`add_options`'s arguments; an error message, or ``""``.

    ``names``: where the file and the gateway came from, for the message (:func:`check`).
    """
    why = check(args.metrics_file, args.pushgateway, names)
    if why:
        return why
    grouping = {"instance": os.environ.get(INSTANCE_ENV, "").strip() or socket.gethostname()}
    if pipeline_file:
        grouping["pipeline_file"] = Path(pipeline_file).stem
    configure(args.metrics_file, args.pushgateway, job=f"probcast_{job}", grouping=grouping)
    return ""


def with_export(command: Callable[[list[str]], int], argv: list[str], job: str) -> int:
    """Run ``command(argv)`` with the metrics options taken out of ``argv`` and applied."""
    parser = argparse.ArgumentParser(prog=f"probcast {job}", add_help=False, allow_abbrev=False)
    add_options(parser)
    args, rest = parser.parse_known_args(argv)
    wants_help = any(a in ("-h", "--help") for a in rest)
    if not wants_help:
        pipeline_file = _pipeline_file(rest)
        names = (
            _origin(argv, "--metrics-file", FILE_ENV),
            _origin(argv, "--pushgateway", PUSH_ENV),
        )
        if not (args.metrics_file or args.pushgateway) and pipeline_file:
            names = (f"{pipeline_file}: metrics.file", f"{pipeline_file}: metrics.pushgateway")
            try:
                args.metrics_file, args.pushgateway = from_pipeline(pipeline_file)
            except ValueError as err:
                print(f"probcast {job}: {err}", file=sys.stderr)
                return 2
        why = configure_from_args(args, job, pipeline_file, names)
        if why:
            print(f"probcast {job}: {why}", file=sys.stderr)
            return 2
    try:
        return command(rest)
    except SystemExit:
        if wants_help:
            print("\n" + parser.format_help().split("\n\n", 1)[-1].strip())
        raise
    finally:
        configure()


def _origin(argv: list[str], option: str, env: str) -> str:
    """``option`` if given in ``argv`` (or nothing came from ``env``), else ``$env``."""
    given = any(a == option or a.startswith(f"{option}=") for a in argv)
    return option if given or not os.environ.get(env) else f"${env}"


def from_pipeline(path: str) -> tuple[str | None, str | None]:
    """``file`` and ``pushgateway`` of the pipeline file's ``metrics:`` block (if it has one).

    A relative ``file`` is relative to the pipeline file's folder. A pipeline file that
    cannot be read gives ``(None, None)``: the command itself reports it.
    """
    from probcast.ops.pipeline import PipelineError, load

    try:
        pipe = load(path)
    except PipelineError:
        return None, None
    block = dict(getattr(pipe, "metrics", None) or {})
    unknown = set(block) - {"file", "pushgateway"}
    if unknown:
        raise ValueError(
            f"{path}: metrics: unknown keys {sorted(unknown)}; known: file, pushgateway"
        )
    file = block.get("file")
    if file and not Path(str(file)).expanduser().is_absolute():
        file = str(pipe.root / str(file))
    return (str(file) if file else None), (
        str(block["pushgateway"]) if block.get("pushgateway") else None
    )


def _pipeline_file(argv: list[str]) -> str:
    for i, arg in enumerate(argv):
        if arg == "--pipeline" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--pipeline="):
            return arg.split("=", 1)[1]
    return ""


@dataclasses.dataclass
class Tracked:
    """Filled in by the ``with track_cycle(...)`` block: the run's outcome."""

    outcome: Any = None


@contextlib.contextmanager
def track_cycle(pipe: Any, cycle: datetime, store: Any) -> Iterator[Tracked]:
    """Time the block, record its ``outcome`` (an exception: status ``error``), then flush.

    The outcome is recorded with :func:`probcast.ops.metrics.record_cycle` (with the store)
    and the export configured here runs (textfile or push).
    """
    tracked, start = Tracked(), time.monotonic()
    try:
        yield tracked
    except Exception as err:
        metrics.record_error(pipe.name, err)
        flush()
        raise
    if tracked.outcome is not None:
        try:
            metrics.record_cycle(
                pipe.name,
                cycle,
                tracked.outcome,
                store,
                seconds=time.monotonic() - start,
                every_hours=pipe.every_hours,
            )
        except Exception as err:  # metrics never fail a cycle
            log.warning("metrics: could not record cycle %s: %s", tracked.outcome.cycle, err)
    flush()
