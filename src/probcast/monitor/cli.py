r"""``probcast monitor``: input drift and skill decay of a model in production.

::

    probcast monitor drift --reference runs/mine --input inputs/2026113000.parquet \\
        --config ops.yaml --json drift.json --markdown drift.md --metrics drift.prom
    probcast monitor skill --forecasts published/ --observations obs.parquet \\
        --reference-table train.parquet --state monitor.sqlite --window 14 \\
        --json skill.json --markdown skill.md --metrics skill.prom

Exit status: 0 (alerts or not), 3 with ``--fail-on-alert`` when an alert holds, 1 on bad
input (one message naming the file and what was expected). Checks that cannot be made (too
few cases, no raw forecast, no EMOS reference) are warned about on stderr and listed in the
reports. See docs/monitoring-production.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any

from probcast.io import describe
from probcast.monitor import drift as drift_mod
from probcast.monitor import metrics, report, rolling, skill
from probcast.monitor.baseline import stored_references
from probcast.monitor.config import MonitorConfig, load_config, with_overrides
from probcast.monitor.reference import load_reference
from probcast.monitor.state import MonitorState
from probcast.monitor.tables import read_forecasts, read_tables

log = logging.getLogger(__name__)
ALERT_EXIT = 3
PUSH_ENV = "PROBCAST_PUSHGATEWAY"


def _outputs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML file with a 'monitor:' block (e.g. the pipeline)")
    parser.add_argument("--json", help="write the JSON report here")
    parser.add_argument("--markdown", help="write the Markdown report here")
    parser.add_argument("--metrics", help="write the Prometheus textfile here (*.prom)")
    parser.add_argument(
        "--pushgateway",
        default=os.environ.get(PUSH_ENV) or None,
        help=f"push the metrics to this Pushgateway (http://host:9091) [${PUSH_ENV}]",
    )
    parser.add_argument(
        "--fail-on-alert", action="store_true", help=f"exit {ALERT_EXIT} when an alert holds"
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``probcast monitor``."""
    parser = argparse.ArgumentParser(
        prog="probcast monitor", description="input drift and skill decay in production"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("drift", help="inputs of new cycles vs the training statistics")
    d.add_argument(
        "--reference",
        "--model",
        dest="reference",
        required=True,
        help="model workdir (its domain.json), a domain JSON file or the training table",
    )
    d.add_argument("--input", nargs="+", required=True, help="cycle input table(s), pooled")
    _outputs(d)
    s = sub.add_parser("skill", help="rolling CRPS/CRPSS/PIT of the issued forecasts")
    s.add_argument("--forecasts", nargs="+", required=True, help="prediction files or folders")
    s.add_argument("--observations", required=True, help="station table with obs_<var>")
    s.add_argument("--state", default="monitor.sqlite", help="SQLite state file")
    s.add_argument("--inputs", nargs="*", default=(), help="cycle input tables (raw fc_<var>)")
    s.add_argument("--reference-table", help="reference-period table: EMOS fit, error stats")
    s.add_argument("--emos-forecasts", help="an EMOS prediction table (instead of fitting)")
    s.add_argument("--window", type=float, help="rolling window in days (overrides config)")
    _outputs(s)
    return parser


def _export(args: argparse.Namespace, registry: Any) -> None:
    """Write the textfile and push to the Pushgateway, as asked."""
    if args.metrics:
        metrics.write_metrics(registry, args.metrics)
    if args.pushgateway:
        metrics.push_metrics(registry, args.pushgateway, f"probcast_monitor_{args.command}")


def run_drift(args: argparse.Namespace, cfg: MonitorConfig) -> list[tuple[str, str]]:
    """``probcast monitor drift``; returns the alerts."""
    reference = load_reference(args.reference)
    result = drift_mod.measure(read_tables(args.input), reference, cfg.drift, args.input)
    md = report.drift_markdown(result)
    report.write_reports(result.to_dict(), md, args.json, args.markdown)
    _export(args, metrics.drift_registry(result))
    for f in result.pooled:
        if f.n == 0:
            stats = "missing (absent or no finite value)"
        else:
            stats = f"psi={f.psi:.3f} ks={f.ks:.3f} spread={f.spread_ratio:.2f}"
            if "drift_psi" not in f.checked:
                stats += f" (fewer than min_rows {cfg.drift.min_rows}: not judged)"
        alerts = f"  ALERT {','.join(f.alerts)}" if f.alerts else ""
        print(f"{f.feature:<16} n={f.n:<7} {stats}{alerts}")
    return result.alerts


def _existing(option: str, paths: Any) -> None:
    """Every input file of ``option`` exists (checked before the state file is touched)."""
    for path in [paths] if isinstance(paths, str) else paths or ():
        if not os.path.exists(path):
            raise FileNotFoundError(f"{option} {path}: no such file or folder")


def run_skill(args: argparse.Namespace, cfg: MonitorConfig) -> list[dict]:
    """``probcast monitor skill``; returns the alerts.

    A state file this run would create is removed again when the run fails.
    """
    cfg = with_overrides(cfg, window_days=args.window)
    _existing("--forecasts", args.forecasts)
    _existing("--observations", args.observations)
    _existing("--reference-table", args.reference_table)
    _existing("--emos-forecasts", args.emos_forecasts)
    _existing("--inputs", args.inputs)
    if os.path.isdir(args.state):
        raise IsADirectoryError(f"--state {args.state}: is a directory; expected a SQLite file")
    new_state = not os.path.exists(args.state)
    try:
        return _run_skill(args, cfg)
    except BaseException:
        if new_state and os.path.isfile(args.state):
            os.remove(args.state)  # no half-made state file left behind
        raise


def _run_skill(args: argparse.Namespace, cfg: MonitorConfig) -> list[dict]:
    paths = skill.forecast_files(args.forecasts)
    obs = skill.observation_table(read_tables([args.observations]), args.observations)
    variables = [str(c)[4:] for c in obs.columns if str(c).startswith("obs_")]
    emos_fc, emos_fams = None, None
    if args.emos_forecasts:
        table, emos_fams = read_forecasts(args.emos_forecasts)  # canonical units
        emos_fc = skill.with_valid_time(table)
    with MonitorState(args.state) as state:
        emos, errors = stored_references(state, args.reference_table, variables)
        refs = skill.References(
            inputs=skill.with_valid_time(read_tables(args.inputs)) if args.inputs else None,
            emos=emos,
            emos_forecasts=emos_fc,
            emos_families=emos_fams,
        )
        counts = skill.update(state, paths, obs, refs, cfg.skill)
        result = rolling.rolling_skill(state.cases(), cfg.skill, errors)
    for c in result.not_evaluated:
        log.warning("%s not evaluated for %s: %s", c["kind"], c["variable"], c["reason"])
    md = report.skill_markdown(result, counts)
    report.write_reports({**result.to_dict(), "run": counts}, md, args.json, args.markdown)
    _export(args, metrics.skill_registry(result))
    print(
        f"{counts['scored']} case(s) scored, {counts['pending']} pending, "
        f"{counts['unobserved']} never observed; window "
        f"{result.window_start or '-'} .. {result.window_end or '-'}"
    )
    for g in result.groups:
        if g.lead_group == "all" and g.station_group == "all":
            print(
                f"{g.variable:<6} n={g.n:<7} crps={g.crps:.3f} crpss_raw={g.crpss_raw:.3f} "
                f"crpss_emos={g.crpss_emos:.3f} pit_max_dev={g.pit_max_dev:.3f}"
            )
    for a in result.alerts:
        print(
            f"ALERT {a['kind']} {a['variable']}: {a['value']:.3f} (threshold {a['threshold']:.3f})"
        )
    return result.alerts


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``probcast monitor``."""
    args = build_parser().parse_args(argv)
    try:
        if args.metrics:
            metrics.check_metrics_path(args.metrics)
        cfg = load_config(args.config)
        alerts = run_drift(args, cfg) if args.command == "drift" else run_skill(args, cfg)
    except (ValueError, OSError, LookupError) as err:
        text = err.args[0] if isinstance(err, KeyError) and err.args else describe(err)
        print(f"probcast monitor {args.command}: error: {text}", file=sys.stderr)
        return 1
    return ALERT_EXIT if alerts and args.fail_on_alert else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
