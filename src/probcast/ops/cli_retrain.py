"""``probcast retrain``: train a challenger on the rolling window, gate it on CRPS, promote.

::

    probcast retrain --pipeline ops.yaml                      # now (UTC)
    probcast retrain --pipeline ops.yaml --now 2026-11-29T06:00Z   # replay a time
    probcast retrain --pipeline ops.yaml --force              # even if every_days says not due

Settings come from the pipeline file's ``retrain:`` block and ``model: {registry: NAME}``
(:mod:`probcast.ops.retrain`). Run it from cron, a systemd timer or a Kubernetes CronJob.
Prints one line: ``promoted version N: ...``, ``rejected version N: rejected by gate: ...``,
``not due: ...`` or ``done before ...``. Exit status: 0 (whatever the gate decided), 1 when
the retraining failed (data, training, registry), 2 for a bad pipeline file or arguments.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime

from probcast.logs import configure_logging
from probcast.ops.helptext import command_parser
from probcast.ops.pipeline import PipelineError, load

PROG = "probcast retrain"


def parse_now(text: str) -> datetime:
    """``2026-11-29T06:00Z`` (any ISO 8601 date-time; UTC unless an offset is given)."""
    try:
        value = datetime.fromisoformat(text.strip().removesuffix("Z").removesuffix("z"))
    except ValueError as err:
        raise PipelineError(f"--now: expected a time like 2026-11-29T06:00Z, got {text!r}") from err
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def main(argv: list[str]) -> int:
    """Run ``probcast retrain`` (see the module docstring)."""
    parser = command_parser(PROG, __doc__)
    parser.add_argument("--pipeline", required=True, help="the pipeline YAML file")
    parser.add_argument("--now", help="the retraining's time (UTC; default: the clock)")
    parser.add_argument("--force", action="store_true", help="retrain even when not due")
    args = parser.parse_args(argv)
    configure_logging()
    try:
        pipe = load(args.pipeline)
        now = parse_now(args.now) if args.now else None
    except PipelineError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    from probcast.ops.retrain import retrain

    try:
        outcome = retrain(pipe, now, force=args.force)
    except PipelineError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except (ValueError, OSError, KeyError) as err:
        text = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"{PROG}: error: {text}", file=sys.stderr)
        return 1
    print(outcome.line())
    return 0
