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
from probcast.io import describe

USER_ERRORS = (registry.DatasetError, ValueError, OSError)
"""Errors reported as one line on stderr (exit code 1) instead of a traceback: registry
failures, bad data (``ValidationError``, ``UnitError``, ``CheckError`` are ``ValueError``)
and files that cannot be read or written."""


class UsageError(Exception):
    """A bad argument or combination of arguments, found before any work (exit code 2)."""


def _out_folder(option: str, path: str) -> Path:
    """``path`` of an output folder option: refused when it is an existing file."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise UsageError(
            f"{option} {out}: exists and is not a directory; expected a folder (created when "
            "missing)"
        )
    return out


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
    if args.all and args.names:
        raise UsageError(
            f"--all fetches every dataset; do not name datasets too (got {' '.join(args.names)})"
        )
    names = list(registry.registry()) if args.all else args.names
    if not names:
        raise UsageError("name at least one dataset, or pass --all")
    for name in names:
        for rel, path in registry.fetch(name).items():
            print(f"{name}/{rel}\t{path}")
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from probcast.data import prepare
    from probcast.data.summary import summarize

    out = _out_folder("--out", args.out) if args.out else None
    print(summarize(prepare.prepare(args.name, out)))
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from probcast.data.check import GRID_SUFFIXES, CheckError, check
    from probcast.schema import TABLE_SUFFIXES

    p = Path(args.file)
    suffix = p.suffix.lower()
    if p.exists() and not p.is_dir() and suffix not in (*TABLE_SUFFIXES, *GRID_SUFFIXES):
        raise CheckError(
            f"{p}: unknown format {p.suffix!r}; expected a station table "
            f"({', '.join(TABLE_SUFFIXES)}) or a grid ({', '.join(GRID_SUFFIXES)})"
        )
    print(check(p))
    return 0


def _cmd_split(args: argparse.Namespace) -> int:
    from probcast.data.check import CheckError, parse_date, split_file

    try:
        parse_date(args.test_from)
    except CheckError as err:
        raise UsageError(str(err)) from None
    out = _out_folder("--out", args.out)
    print(split_file(args.file, args.test_from, out).summary())
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
    p.add_argument("--all", action="store_true", help="fetch every dataset (no NAME then)")
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
    except UsageError as err:
        print(f"probcast data {args.command}: error: {err}", file=sys.stderr)
        return 2
    except USER_ERRORS as err:  # an OSError as "<path>: <reason>", without its errno
        print(f"probcast data {args.command}: error: {describe(err)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
