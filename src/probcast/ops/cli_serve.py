"""``probcast serve``: the on-demand HTTP API of a pipeline (:mod:`probcast.ops.serve`).

``probcast serve --pipeline ops.yaml [--state URL] [--host 127.0.0.1] [--port 8000]
[--max-points 10000] [--max-rows 100000] [--max-cells 4000000] [--max-body-bytes 4194304]
[--max-distance-km 50] [--max-forecasts 4] [--limit-concurrency N] [--timeout-keep-alive 5]``

Without ``--state``, the state store URL is taken from the environment variable
:data:`STATE_ENV` when it is set (so a URL holding a password need not be on the command
line, where ``ps`` and the pod spec show it), else from the pipeline file.

uvicorn reads a request's headers and body without a time limit: a client sending them
slowly holds its connection open. ``--limit-concurrency`` bounds the connections and tasks
(uvicorn answers ``503`` above it), and ``--timeout-keep-alive`` closes idle kept-alive
connections; on a network others reach, serve behind a proxy or ingress that times out slow
clients (``docs/operations.md``).
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import socket
import sys

from probcast.argtypes import positive
from probcast.logs import configure_logging
from probcast.ops import serve_limits as lim
from probcast.ops.cli import pipeline_args, state_url
from probcast.ops.pipeline import PipelineError, load

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
"""uvicorn's log levels."""
STATE_ENV = "PROBCAST_STATE_URL"
"""Environment variable naming the state store URL when ``--state`` is not given."""
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


def host_name(text: str) -> str:
    """``--host``: an IPv4/IPv6 address or a host name (argparse's ``type``)."""
    try:
        ipaddress.ip_address(text.strip("[]"))
        return text.strip("[]")
    except ValueError:
        pass
    labels = text.rstrip(".").split(".")
    numeric = all(label.isdigit() for label in labels)
    if numeric or len(text) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise argparse.ArgumentTypeError(
            f"expected an IP address (127.0.0.1, 0.0.0.0, ::) or a host name, got {text!r}"
        )
    return text


def _resolves(host: str, port: int) -> None:
    """A host name that does not resolve is refused before the server starts."""
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise PipelineError(f"--host: cannot listen on {host!r}: {reason}") from None


def _state_from_env() -> str | None:
    """The state store URL of :data:`STATE_ENV` (checked as ``--state`` is), if set."""
    text = os.environ.get(STATE_ENV, "").strip()
    if not text:
        return None
    try:
        return state_url(text)
    except argparse.ArgumentTypeError as err:
        raise PipelineError(f"{STATE_ENV}: {err}") from None


def parser() -> argparse.ArgumentParser:
    """The command's options."""
    p = argparse.ArgumentParser(
        prog="probcast serve",
        description="HTTP API: forecasts on demand for stations or points",
        epilog=f"Without --state, the state store URL is ${STATE_ENV} when set, else the "
        "pipeline file's. Serve behind a proxy or ingress that times out slow clients.",
    )
    pipeline_args(p)
    p.add_argument(
        "--host",
        type=host_name,
        default="127.0.0.1",
        help="interface to listen on (default: %(default)s; 0.0.0.0: every interface)",
    )
    p.add_argument(
        "--port",
        type=positive(int, 1, strict=False, high=65535),
        default=8000,
        help="TCP port, 1-65535 (default: %(default)s)",
    )
    count = positive(int, 1, strict=False)
    p.add_argument(
        "--max-points",
        type=count,
        default=lim.MAX_POINTS,
        help="stations or points per request (default: %(default)s)",
    )
    p.add_argument(
        "--max-rows",
        type=count,
        default=lim.MAX_ROWS,
        help="rows of one answer (default: %(default)s)",
    )
    p.add_argument(
        "--max-cells",
        type=count,
        default=lim.MAX_CELLS,
        help="values of one answer, rows x columns (default: %(default)s)",
    )
    p.add_argument(
        "--max-body-bytes",
        type=count,
        default=lim.MAX_BODY_BYTES,
        help="request body size (default: %(default)s)",
    )
    p.add_argument(
        "--max-distance-km",
        type=positive(float),
        default=lim.MAX_DISTANCE_KM,
        help="farthest station or grid point that may answer a lat/lon point "
        "(default: %(default)s)",
    )
    p.add_argument(
        "--max-forecasts",
        type=count,
        default=lim.MAX_FORECASTS,
        help="forecasts computed at once; the others wait their turn, a 503 after "
        f"{lim.QUEUE_SECONDS:g} s (default: %(default)s)",
    )
    p.add_argument(
        "--limit-concurrency",
        type=count,
        default=None,
        help="uvicorn: connections and tasks at once, a 503 above (default: no limit)",
    )
    p.add_argument(
        "--timeout-keep-alive",
        type=count,
        default=5,
        help="uvicorn: seconds an idle kept-alive connection stays open (default: %(default)s)",
    )
    p.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="warning",
        help="uvicorn's log level (default: %(default)s)",
    )
    return p


def main(argv: list[str]) -> int:
    """Serve until interrupted; 2 for a bad pipeline file or option, 1 when it cannot serve."""
    args = parser().parse_args(argv)
    configure_logging()
    try:
        state = args.state or _state_from_env()
        pipe = load(args.pipeline, require_model=True)
        limits = lim.Limits(
            max_points=args.max_points,
            max_rows=args.max_rows,
            max_body_bytes=args.max_body_bytes,
            max_distance_km=args.max_distance_km,
            max_cells=args.max_cells,
            max_forecasts=args.max_forecasts,
        )
        _resolves(args.host, args.port)
    except (PipelineError, ValueError) as err:
        print(f"probcast serve: {err}", file=sys.stderr)
        return 2
    import uvicorn

    from probcast.ops.cycle import open_store
    from probcast.ops.serve import create_app

    app = create_app(pipe, open_store(pipe, state), limits)
    try:
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            limit_concurrency=args.limit_concurrency,
            timeout_keep_alive=args.timeout_keep_alive,
        )
    except SystemExit as stop:  # uvicorn exits 3 when it cannot start (port taken, ...)
        if stop.code not in (0, None):
            print(
                f"probcast serve: error: cannot listen on {args.host}:{args.port} "
                "(see the message above)",
                file=sys.stderr,
            )
            return 1
    return 0
