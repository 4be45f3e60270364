"""``probcast serve``: the on-demand HTTP API of a pipeline (:mod:`probcast.ops.serve`).

``probcast serve --pipeline ops.yaml [--host 127.0.0.1] [--port 8000] [--max-points 10000]
[--max-rows 100000] [--max-body-bytes 4194304] [--max-distance-km 50]``
"""

from __future__ import annotations

import argparse
import sys

from probcast.logs import configure_logging
from probcast.ops import serve_limits as lim
from probcast.ops.cli import pipeline_args
from probcast.ops.pipeline import PipelineError, load


def parser() -> argparse.ArgumentParser:
    """The command's options."""
    p = argparse.ArgumentParser(
        prog="probcast serve", description="HTTP API: forecasts on demand for stations or points"
    )
    pipeline_args(p)
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on")
    p.add_argument("--port", type=int, default=8000, help="TCP port")
    p.add_argument("--max-points", type=int, default=lim.MAX_POINTS, help="per request")
    p.add_argument("--max-rows", type=int, default=lim.MAX_ROWS, help="rows of one answer")
    p.add_argument(
        "--max-body-bytes", type=int, default=lim.MAX_BODY_BYTES, help="request body size"
    )
    p.add_argument(
        "--max-distance-km",
        type=float,
        default=lim.MAX_DISTANCE_KM,
        help="farthest station or grid point that may answer a lat/lon point",
    )
    p.add_argument("--log-level", default="warning", help="uvicorn's log level")
    return p


def main(argv: list[str]) -> int:
    """Serve until interrupted; 2 for a bad pipeline file or option."""
    args = parser().parse_args(argv)
    configure_logging()
    try:
        pipe = load(args.pipeline)
        limits = lim.Limits(
            max_points=args.max_points,
            max_rows=args.max_rows,
            max_body_bytes=args.max_body_bytes,
            max_distance_km=args.max_distance_km,
        )
    except (PipelineError, ValueError) as err:
        print(f"probcast serve: {err}", file=sys.stderr)
        return 2
    import uvicorn

    from probcast.ops.cycle import open_store
    from probcast.ops.serve import create_app

    app = create_app(pipe, open_store(pipe, args.state), limits)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0
