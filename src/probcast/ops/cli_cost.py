"""``probcast cost``: what a deployment of a pipeline costs a day and a month, from measurements."""

from __future__ import annotations

import argparse
import json
import math
import sys

from probcast.logs import configure_logging


def main(argv: list[str]) -> int:
    """Run ``probcast cost`` with ``argv`` (without the program name)."""
    from probcast.ops.cli import pipeline_args

    parser = argparse.ArgumentParser(
        prog="probcast cost",
        description="cost per day and month of a pipeline's deployment: run times and product "
        "sizes measured in its state store, training time from a model, prices from a file",
    )
    pipeline_args(parser)
    parser.add_argument("--prices", help="YAML of prices and deployment shape (docs/deployment.md)")
    parser.add_argument("--model", help="a trained model's workdir: its training's elapsed time")
    parser.add_argument(
        "--training-seconds",
        type=float,
        help="a training's elapsed seconds measured elsewhere (e.g. the training Job's "
        "duration); overrides --model",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    configure_logging()
    from probcast.ops import cost
    from probcast.ops.cycle import open_store
    from probcast.ops.pipeline import PipelineError, load

    try:
        if args.training_seconds is not None and not (
            math.isfinite(args.training_seconds) and args.training_seconds >= 0
        ):
            raise PipelineError(f"--training-seconds must be >= 0, got {args.training_seconds}")
        pipe = load(args.pipeline)
        prices = cost.Prices.load(args.prices)
        store = open_store(pipe, args.state)
        try:
            measured = cost.measure(
                store, pipe.every_hours, args.model, training=args.training_seconds
            )
        finally:
            store.close()
    except (PipelineError, ValueError) as err:
        print(f"probcast cost: {err}", file=sys.stderr)
        return 2 if isinstance(err, PipelineError) else 1
    costs = cost.estimate(measured, prices)
    if args.json:
        print(json.dumps({"measured": measured.__dict__, "costs": costs}, indent=1))
    else:
        print(cost.table(measured, costs, placeholder=args.prices is None))
    return 0
