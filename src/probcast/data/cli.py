"""``probcast data``: list, fetch and prepare the registry's datasets; build, check, split your own.

Examples::

    probcast data build --config build.yaml --out tables/mine  # see docs/sources.md
    probcast data check my_stations.csv                         # validate + summary
    probcast data split my_stations.csv --test-from 2024-01-01 --out tables/mine
    probcast data list
    probcast data fetch verif-norway-precip
    probcast data fetch --all
    probcast data prepare pnw-t2m --out /tmp/pnw
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from probcast.data import registry

USER_ERRORS = (registry.DatasetError, ValueError, OSError)
"""Errors reported as one line on stderr (exit code 1) instead of a traceback: registry
failures, bad data (``ValidationError``, ``UnitError``, ``CheckError`` are ``ValueError``)
and files that cannot be read or written."""

DESCRIPTION_WIDTH = 72


def _size(n_bytes: int) -> str:
    size = float(n_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"  # pragma: no cover


def _one_line(text: str) -> str:
    first = " ".join(text.split())
    if len(first) <= DESCRIPTION_WIDTH:
        return first
    return first[: DESCRIPTION_WIDTH - 3].rstrip() + "..."


def list_table() -> str:
    """Return the table printed by ``probcast data list``."""
    from probcast.data import prepare

    can_prepare = set(prepare.preparable())
    rows = [("id", "kind", "licence", "files", "prepare", "description")]
    for info in registry.registry().values():
        total = sum(f.bytes for f in info.files)
        rows.append(
            (
                info.id,
                info.kind,
                info.licence,
                f"{len(info.files)} / {_size(total)}",
                "yes" if info.id in can_prepare else "no",
                _one_line(info.description),
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = [
        "  ".join(f"{c:<{w}}" for c, w in zip(r[:-1], widths, strict=False)) + "  " + r[-1]
        for r in rows
    ]
    return "\n".join(line.rstrip() for line in lines)


def _cmd_list(args: argparse.Namespace) -> int:
    print(list_table())
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    names = list(registry.registry()) if args.all else args.names
    if not names:
        raise registry.DatasetError("name at least one dataset, or pass --all")
    for name in names:
        for rel, path in registry.fetch(name).items():
            print(f"{name}/{rel}\t{path}")
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from probcast.data import prepare
    from probcast.data.summary import summarize

    out = Path(args.out) if args.out else None
    print(summarize(prepare.prepare(args.name, out)))
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from probcast.data.check import check

    print(check(args.file))
    return 0


def _cmd_split(args: argparse.Namespace) -> int:
    from probcast.data.check import split_file

    print(split_file(args.file, args.test_from, args.out).summary())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``probcast data``."""
    parser = argparse.ArgumentParser(
        prog="probcast data",
        description="List, fetch and prepare benchmark datasets; build, check and split "
        "your own station tables.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="NWP archive + observations -> training table (build --help)")
    sub.add_parser("refs", help="kerchunk references over a GRIB archive (refs --help)")
    p = sub.add_parser("list", help="list the registry's datasets")
    p.set_defaults(func=_cmd_list)
    p = sub.add_parser("fetch", help="download (or read from the mirror) and verify files")
    p.add_argument("names", nargs="*", metavar="NAME", help="dataset ids")
    p.add_argument("--all", action="store_true", help="fetch every dataset")
    p.set_defaults(func=_cmd_fetch)
    p = sub.add_parser("prepare", help="convert, validate and split a benchmark dataset")
    p.add_argument("name", metavar="NAME", help="dataset id")
    p.add_argument("--out", metavar="DIR", help="output folder (default: the cache)")
    p.set_defaults(func=_cmd_prepare)
    p = sub.add_parser(
        "check",
        help="validate a station table (CSV/Parquet) or grid (NetCDF/Zarr) and summarise it",
        description="Validate FILE against the canonical data model (docs/data-model.md) and "
        "print the summary 'prepare' gives: size, period, lead times, missing values, MAE of "
        "the raw forecast, and non-fatal findings.",
    )
    p.add_argument("file", metavar="FILE", help="station table or gridded dataset")
    p.set_defaults(func=_cmd_check)
    p = sub.add_parser(
        "split",
        help="cut a station table into train.parquet / test.parquet at a date",
        description="Test: runs initialised at or after --test-from. Train: runs initialised "
        "before it whose valid time is before it too (no leaked truth), as for the registry "
        "splits. Both files are written atomically into --out.",
    )
    p.add_argument("file", metavar="FILE", help="station table (CSV/Parquet)")
    p.add_argument(
        "--test-from", required=True, metavar="DATE", help="first init time of the test period"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="folder of the two files")
    p.set_defaults(func=_cmd_split)
    return parser


def main(argv: list[str]) -> int:
    """Run ``probcast data`` with ``argv``; return the exit code."""
    if argv[:1] in (["build"], ["refs"]):  # NWP archive -> training table / kerchunk refs
        from probcast.sources.cli import main as build_main

        return build_main(argv if argv[0] == "refs" else argv[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help or a usage error
        return int(exc.code or 0)
    try:
        return int(args.func(args))
    except USER_ERRORS as err:
        print(f"probcast data {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
