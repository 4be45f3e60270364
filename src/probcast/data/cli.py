"""``probcast data``: list, fetch and prepare the registry's datasets; build your own.

Examples::

    probcast data build --config build.yaml --out tables/mine  # see docs/sources.md
    probcast data list
    probcast data fetch verif-norway-precip
    probcast data fetch --all
    probcast data prepare pnw-t2m --out /tmp/pnw
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from probcast.data import prepare, registry
from probcast.schema import UnitError
from probcast.validate import ValidationError

USER_ERRORS = (registry.DatasetError, ValidationError, UnitError)
"""Errors reported as one line on stderr (exit code 1) instead of a traceback."""

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
    from probcast.data.summary import summarize

    out = Path(args.out) if args.out else None
    print(summarize(prepare.prepare(args.name, out)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``probcast data``."""
    parser = argparse.ArgumentParser(
        prog="probcast data", description="List, fetch and prepare benchmark datasets."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("build", help="NWP archive + observations -> training table (build --help)")
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
    return parser


def main(argv: list[str]) -> int:
    """Run ``probcast data`` with ``argv``; return the exit code."""
    if argv[:1] == ["build"]:  # archive + observations -> training table (probcast.sources)
        from probcast.sources.cli import main as build_main

        return build_main(argv[1:])
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
