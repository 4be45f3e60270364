"""``probcast data build``: build the canonical station table from real sources.

Examples::

    probcast data build --config build.yaml --out /data/training
    probcast data build --config build.yaml --out /data/training   # again: only new cycles
    probcast data build --config build.yaml --out /data/training --workers 4
    probcast data build --config build.yaml --out /data/training --scheduler tcp://host:8786
    probcast data refs --archive '/data/ifs/*.grib' --out refs.json  # kerchunk references
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from probcast.argtypes import positive
from probcast.schema import UnitError
from probcast.sources.errors import SourceError

USER_ERRORS = (SourceError, UnitError, FileNotFoundError, PermissionError)
"""Errors printed as one line (exit code 1), never as a traceback."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``probcast data build``."""
    p = argparse.ArgumentParser(
        prog="probcast data build",
        description="Build the canonical station table (Parquet, partitioned by init date) "
        "from an NWP source or archive and an observation source.",
    )
    p.add_argument("--config", required=True, metavar="FILE", help="build spec (YAML or JSON)")
    p.add_argument("--out", required=True, metavar="DIR", help="output folder")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument(
        "--workers",
        type=positive(int, 1, strict=False),
        default=1,
        metavar="N",
        help="compute cycles on N local processes (Dask; default 1: in this process)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="compute cycles on this dask.distributed cluster (its workers must see the "
        "archive and --out)",
    )
    return p


def _report(summary: dict) -> str:
    lines = [
        f"out: {summary['out']}",
        (
            f"reference times in grid.zarr: {summary['rows']}"
            if summary.get("output") == "zarr-grid"
            else f"rows in table.parquet: {summary['rows']}"
        ),
        f"cycles written: {len(summary['cycles_written'])}, already present: "
        f"{len(summary['cycles_skipped_existing'])}",
    ]
    outside = summary.get("stations_outside_area") or []
    if summary.get("area") is not None:
        lines.append(
            f"area {summary['area']}: {len(outside)} station(s) outside, left out"
            + (
                f" ({', '.join(outside[:20])}{' ...' if len(outside) > 20 else ''})"
                if outside
                else ""
            )
        )
    for key, why in summary["cycles_missing_nwp"].items():
        lines.append(f"cycle {key}: NWP missing: {'; '.join(why)[:300]}")
    for key in summary["cycles_without_observations"]:
        lines.append(f"cycle {key}: no observation matched")
    for key, why in summary["cycles_incomplete"].items():
        lines.append(f"cycle {key}: incomplete: {', '.join(why)[:300]}")
    removed = summary["qc_removed"]
    if removed:
        lines.append("observations removed (station, check, variable: count):")
        lines += [f"  {r['station']} {r['check']} {r['variable']}: {r['removed']}" for r in removed]
    lines += [f"note: {n}" for n in summary["notes"]]
    return "\n".join(lines)


def refs_parser() -> argparse.ArgumentParser:
    """The argument parser of ``probcast data refs``."""
    p = argparse.ArgumentParser(
        prog="probcast data refs",
        description="Write kerchunk references (JSON) over a GRIB archive, so that 'data "
        "build' (nwp.paths: refs.json) and xarray read it lazily as one dataset.",
    )
    p.add_argument("--archive", required=True, nargs="+", metavar="GLOB", help="GRIB files")
    p.add_argument("--out", required=True, metavar="FILE", help="reference file to write")
    p.add_argument(
        "--variables", nargs="+", metavar="VAR", help="canonical variables to keep (t2m ...)"
    )
    return p


def _held(archive: list[str]) -> str:
    """What the GRIB messages of ``archive`` hold: canonical names, or shortName/level."""
    from probcast.sources import fs
    from probcast.sources.refs import _header, _spans
    from probcast.sources.variables import grib_variable

    held: set[str] = set()
    for url in fs.expand(archive, {}):
        for _, blob in _spans(url, {}):
            head = _header(blob)
            var = grib_variable(head["short_name"], head["level_type"])
            held.add(var or f"{head['short_name']} ({head['level_type']}, not used)")
    return ", ".join(sorted(held)) or "no GRIB message"


def refs_main(argv: list[str]) -> int:
    """Run ``probcast data refs``; return the exit code."""
    try:
        args = refs_parser().parse_args(argv)
    except SystemExit as exc:
        return int(exc.code or 0)
    from probcast.sources.refs import build_refs
    from probcast.sources.variables import GRIB_NAMES

    known = sorted(set(GRIB_NAMES.values()))
    unknown = [v for v in args.variables or () if v not in known]
    if unknown:
        print(
            f"probcast data refs: error: --variables {' '.join(unknown)}: no GRIB field maps "
            f"to {'it' if len(unknown) == 1 else 'them'}; known: {', '.join(known)}",
            file=sys.stderr,
        )
        return 2
    try:
        refs = build_refs(args.archive, args.out, variables=args.variables)
    except USER_ERRORS as err:
        text = " ".join(str(err).split())
        if args.variables and isinstance(err, SourceError) and "no GRIB message" in text:
            try:
                held = _held(args.archive)
            except (*USER_ERRORS, OSError, RuntimeError):
                held = "(could not be read)"
            text = (
                f"{' '.join(args.archive)}: no GRIB message of --variables "
                f"{' '.join(args.variables)}; the files hold: {held}"
            )
        print(f"probcast data refs: error: {text}", file=sys.stderr)
        return 1
    print(f"{args.out}: {refs.messages} messages referenced")
    for why in refs.skipped:
        print(f"skipped: {why}")
    return 0


def main(argv: list[str]) -> int:
    """Run ``probcast data build`` (or ``data refs``); return the exit code."""
    if argv[:1] == ["refs"]:
        return refs_main(argv[1:])
    # Accept being routed with or without the action name ("build --config ...").
    args_list = argv[1:] if argv[:1] == ["build"] else argv
    try:
        args = build_parser().parse_args(args_list)
    except SystemExit as exc:
        return int(exc.code or 0)
    from probcast.sources.build import build
    from probcast.sources.config import load_spec

    problem = ""
    if Path(args.config).is_dir():
        problem = (
            f"--config {args.config}: is a directory; expected a build spec file (YAML or JSON)"
        )
    elif Path(args.out).exists() and not Path(args.out).is_dir():
        problem = (
            f"--out {args.out}: exists and is not a directory; expected a folder (created "
            "when missing)"
        )
    if problem:
        print(f"probcast data build: error: {problem}", file=sys.stderr)
        return 2
    try:
        spec = load_spec(args.config)
        result = build(spec, args.out, workers=args.workers, scheduler=args.scheduler)
    except USER_ERRORS as err:
        print(f"probcast data build: error: {' '.join(str(err).split())}", file=sys.stderr)
        return 1
    summary = result.summary()
    print(json.dumps(summary, indent=1, default=str) if args.json else _report(summary))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
