r"""``probcast verify``: score forecast tables against a truth table and write a report.

Example::

    probcast verify --truth=test.parquet --forecast raw=test.parquet \\
        --forecast model=pred.parquet --reference=raw --out=verif/ \\
        --by lead_time,station --thresholds tp:0.1,1,5

writes ``scores.csv``, ``scores.json`` and ``report.html`` into ``--out`` as one set (never
beside files of another run: :func:`probcast.verify.aggregate.write_scores`) and prints the
overall scores. Forecast and truth tables written with user units (``probcast predict
--units``) are converted back to canonical units, read from their metadata, before scoring
(the truth: :mod:`probcast.verify.truth`); scores are in canonical units. See
docs/verification.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the help path imports nothing heavy (pandas, the scores, matplotlib)
    from probcast.verify.evaluate import Verification


def _pair(text: str, sep: str, what: str) -> tuple[str, str]:
    if sep not in text:
        raise argparse.ArgumentTypeError(f"{what}: expected A{sep}B, got {text!r}")
    a, b = text.split(sep, 1)
    if not a or not b:
        raise argparse.ArgumentTypeError(f"{what}: expected A{sep}B, got {text!r}")
    return a.strip(), b.strip()


def _thresholds(items: Sequence[str]) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for item in items:
        var, vals = _pair(item, ":", "--thresholds")
        try:
            out[var] = [float(v) for v in vals.split(",") if v.strip()]
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"--thresholds {item!r}: {err}") from None
    return out


def _families(items: Sequence[str], names: Sequence[str]) -> dict[str, dict[str, str]]:
    """``--family [NAME:]VAR=FAMILY`` -> ``{name: {var: family}}`` (no NAME: all names).

    Raises:
        argparse.ArgumentTypeError: A NAME that is no forecast's, or an unknown FAMILY.
    """
    out: dict[str, dict[str, str]] = {}
    for item in items:
        lhs, family = _pair(item, "=", "--family")
        name, var = lhs.split(":", 1) if ":" in lhs else (None, lhs)
        if name is not None and name not in names:
            raise argparse.ArgumentTypeError(
                f"--family {item}: no forecast is named {name!r}; the forecasts are "
                f"{', '.join(names)}"
            )
        from probcast.dists.registry import DISTRIBUTIONS

        if family not in DISTRIBUTIONS:
            raise argparse.ArgumentTypeError(
                f"--family {item}: unknown distribution {family!r}; expected one of "
                f"{', '.join(sorted(DISTRIBUTIONS))}"
            )
        for n in [name] if name else names:
            out.setdefault(n, {})[var] = family
    return out


def _named_tables(items: Sequence[str]) -> dict[str, str]:
    """``--forecast [NAME=]FILE`` items -> ``{name: file}`` (no NAME: the file's stem).

    Raises:
        argparse.ArgumentTypeError: An empty NAME or FILE, or a NAME given twice.
    """
    out: dict[str, str] = {}
    for item in items:
        name, sep, path = (s.strip() for s in item.partition("="))
        if not sep:
            name, path = Path(item.strip()).stem, item.strip()
        if not name or not path:
            raise argparse.ArgumentTypeError(f"--forecast: expected [NAME=]FILE, got {item!r}")
        if name in out:
            raise argparse.ArgumentTypeError(
                f"--forecast {item}: the name {name!r} is already given to {out[name]}; "
                "give each forecast a NAME of its own (NAME=FILE)"
            )
        out[name] = path
    return out


def out_dir(path: str) -> tuple[Path, bool]:
    """Create the ``--out`` folder before any work; returns it and whether it was new.

    Raises:
        argparse.ArgumentTypeError: ``path`` is a file, or the folder cannot be created.
    """
    from probcast.io import os_reason

    out = Path(path)
    if out.exists() and not out.is_dir():
        raise argparse.ArgumentTypeError(
            f"--out {out}: exists and is not a directory; expected a folder (created when missing)"
        )
    existed = out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise argparse.ArgumentTypeError(
            f"--out {out}: cannot create the folder: {os_reason(err)}"
        ) from None
    return out, not existed


def usage_problem(args: argparse.Namespace, names: Sequence[str], reference: str | None) -> str:
    """What is wrong with the options of a verification of ``names`` ("" when nothing)."""
    if reference is not None and reference not in names:
        return (
            f"--reference {reference!r}: not the NAME of a --forecast; the forecasts are "
            f"{', '.join(names)}"
        )
    if args.n_boot < 0:
        return f"--n-boot {args.n_boot}: expected an integer >= 0"
    if args.n_boot == 0 and reference is not None:
        return (
            f"--n-boot 0: the CRPSS interval against --reference {reference} needs at least "
            "1 bootstrap replicate (0 is for a run without a reference)"
        )
    return ""


def runtime_message(err: BaseException) -> str:
    """One line for an error of reading, scoring or writing (an OSError as path: reason)."""
    from probcast.io import describe

    if isinstance(err, KeyError) and err.args:
        return str(err.args[0])
    return describe(err)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``probcast verify``."""
    p = argparse.ArgumentParser(
        prog="probcast verify",
        description="Score forecast tables against a truth table and write scores.csv, "
        "scores.json and an HTML report into --out. The form of each forecast (distribution "
        "parameters, members, quantiles or a point forecast) is read from its file.",
        epilog="example: probcast verify --truth=test.parquet --forecast raw=test.parquet "
        "--forecast model=pred.parquet --reference=raw --out=verif/ --thresholds tp:0.1,1,5",
    )
    p.add_argument(
        "--truth",
        required=True,
        help="truth: station table (CSV/Parquet/NetCDF) with obs_<var>, or a gridded analysis "
        "(NetCDF/Zarr: obs_<var> or CF variables) for gridded products",
    )
    p.add_argument(
        "--forecast",
        action="append",
        required=True,
        metavar="[NAME=]FILE",
        help="prediction table to verify (NAME=FILE; no NAME: the file's stem, pred.parquet "
        "is 'pred'; each NAME once), or a gridded product file (the files of one run, "
        "out/run_*.nc, form one forecast named run) (repeatable)",
    )
    p.add_argument(
        "--raw",
        metavar="FILE",
        help="gridded verification: the NWP input grid (fc_<var>), scored as forecast 'raw', "
        "the default --reference",
    )
    p.add_argument("--reference", help="NAME of the forecast the CRPSS is computed against")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--by", default="lead_time", help="comma list of groupings (a+b combines)")
    p.add_argument(
        "--thresholds", action="append", default=[], metavar="VAR:T1,T2", help="event thresholds"
    )
    p.add_argument(
        "--family",
        action="append",
        default=[],
        metavar="[NAME:]VAR=FAMILY",
        help="distribution family of a params form (else the table's JSON sidecar)",
    )
    p.add_argument("--variables", default="", help="comma list (default: all in common)")
    p.add_argument("--seed", type=int, default=0, help="seed of randomised PIT and bootstrap")
    p.add_argument(
        "--n-boot",
        type=int,
        default=1000,
        help="bootstrap replicates of the CRPSS interval (>= 1 with a reference; 0 allowed "
        "without one)",
    )
    p.add_argument(
        "--keep-nan", action="store_true", help="propagate NaN cases instead of dropping"
    )
    p.add_argument("--title", default="probcast verification", help="report title")
    p.add_argument("--model", help="model directory (train --workdir): its training curves")
    return p


def summary_text(ver: Verification) -> str:
    """The short table printed at the end: overall scores per method and variable."""
    s = ver.scores[ver.scores["by"] == "all"]
    wide = s.pivot_table(index=["variable", "method"], columns="metric", values="value", sort=False)
    cols = ["n", "n_dropped", "crps", "crpss", "crpss_lo", "crpss_hi", "crpss_n", "pit_ri",
            "spread_skill"]  # fmt: skip
    wide = wide.reindex(columns=cols)
    counts = ("n", "n_dropped", "crpss_n")
    fmt = {c: (lambda v: f"{v:.0f}") if c in counts else (lambda v: f"{v:.4g}") for c in cols}
    from probcast.verify.notes import coverage_lines, warnings_lines

    text = wide.to_string(formatters=fmt, na_rep="-")
    notes = ["cases:", *(f"  {line}" for line in coverage_lines(ver)), *warnings_lines(ver)]
    return text + "\n" + "\n".join(notes)


_FORM_TEXT = {
    "params": "distribution ({family}, closed-form CRPS)",
    "members": "{n_members} members (ensemble CRPS)",
    "quantiles": "quantiles at {n_levels} levels (quantile-based CRPS)",
    "point": "point forecast (CRPS = absolute error)",
    "probabilities": "exceedance probabilities only (Brier scores)",
}


def forms_text(ver: Verification) -> str:
    """Which form of each forecast was scored, and how (one line per method and variable)."""
    lines = ["scored:"]
    for name, by_var in ver.meta.get("forms", {}).items():
        for var, form in by_var.items():
            levels = form.get("levels") or []
            text = _FORM_TEXT[form["kind"]].format(**form, n_levels=len(levels))
            lines.append(f"  {name} {var}: {text}")
    return "\n".join(lines)


def _read(reader: Any, path: str) -> Any:
    """``reader(path)``, with errors that always name the file (and a folder refused)."""
    p = Path(path)
    if p.is_dir() and p.suffix.lower() != ".zarr":
        raise ValueError(f"{p}: is a directory; expected a table file (CSV, Parquet, NetCDF)")
    try:
        return reader(p)
    except (ValueError, OSError) as err:
        if str(p) in str(err):
            raise
        raise ValueError(f"{p}: cannot read: {err}") from None


def _training(model: str) -> str:
    """The report's section of the training curves of ``model`` (read before scoring)."""
    from probcast.verify.curves import read_histories, section

    return section(read_histories(model), model)


def same_periods(
    truth: Any, truth_name: str, tables: dict[str, Any], named: dict[str, str]
) -> None:
    """Refuse a forecast whose accumulation period differs from the truth's.

    Scoring 6-h amounts against 24-h observations gives a CRPS with nothing to show it is
    meaningless; a side that records no period (:mod:`probcast.periods`) is not checked.

    Raises:
        ValueError: Naming the forecast file, the variable and both periods.
    """
    from probcast import periods

    want = periods.of(truth.attrs, truth_name)
    for name, table in tables.items():
        got = periods.of(table.attrs, named[name])
        if (var := periods.differ(got, want)) is not None:
            raise ValueError(
                f"{named[name]}: {var} is over {got[var]:g} h, but the truth {truth_name} "
                f"holds {want[var]:g}-h {var}; score a forecast against observations of its "
                "own period"
            )


def main(argv: list[str] | None = None) -> int:
    """Run ``probcast verify``; returns the exit status."""
    args = build_parser().parse_args(argv)  # --help, usage errors: SystemExit (0, 2)
    from probcast.verify.grid_inputs import is_grid

    if is_grid(args.truth):
        from probcast.verify.grid_cli import run_grid

        return run_grid(args)
    if args.raw:
        print(
            "probcast verify: error: --raw is for a gridded --truth; with tables pass "
            "--forecast raw=FILE",
            file=sys.stderr,
        )
        return 2
    try:
        named = _named_tables(args.forecast)
        fams_cli = _families(args.family, list(named))
        thresholds = _thresholds(args.thresholds)
        problem = usage_problem(args, list(named), args.reference)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        out, created = out_dir(args.out)
    except argparse.ArgumentTypeError as err:
        print(f"probcast verify: error: {err}", file=sys.stderr)
        return 2
    try:
        ver = _verify_tables(args, named, fams_cli, thresholds, out)
    except (ValueError, KeyError, OSError) as err:
        if created and not any(out.iterdir()):
            out.rmdir()  # a failed run leaves no empty folder behind
        print(f"probcast verify: error: {runtime_message(err)}", file=sys.stderr)
        return 1
    print(summary_text(ver))
    print(forms_text(ver))
    print(f"\nwrote {out / 'scores.csv'}, {out / 'scores.json'}, {out / 'report.html'}")
    return 0


def _verify_tables(
    args: argparse.Namespace,
    named: dict[str, str],
    fams_cli: dict[str, dict[str, str]],
    thresholds: dict[str, list[float]],
    out: Path,
) -> Verification:
    """Read, score and write the verification of station tables into ``out``."""
    from probcast.products.table_files import read_predictions
    from probcast.products.units import read_units
    from probcast.verify import aggregate, report
    from probcast.verify.evaluate import verify
    from probcast.verify.truth import read_truth

    training = _training(args.model) if args.model else ""
    truth = _read(read_truth, args.truth)  # in canonical units, by its own metadata
    tables, families, units = {}, {}, {}
    for name, path in named.items():
        tables[name], side = _read(read_predictions, path)  # in canonical units
        units[name] = _read(read_units, path)  # the file's, recorded in scores.json
        families[name] = {**side, **fams_cli.get(name, {})}
    same_periods(truth, str(args.truth), tables, named)
    ver = verify(
        truth,
        tables,
        reference=args.reference,
        families=families,
        by=[b.strip() for b in args.by.split(",") if b.strip()],
        thresholds=thresholds or None,
        variables=[v for v in args.variables.split(",") if v] or None,
        seed=args.seed,
        n_boot=args.n_boot,
        skipna=not args.keep_nan,
        truth_name=str(args.truth),
        sources=named,
    )
    extra = {"diagnostics": ver.diagnostics, "stations": ver.stations.to_dict("records")}
    meta = {**ver.meta, "truth": str(args.truth), "forecasts": named}
    meta["forecast_units"] = {n: u for n, u in units.items() if u}
    if truth_units := _read(read_units, args.truth):
        meta["truth_units"] = truth_units  # the file's, converted from
    html = report.render(ver, title=args.title, training=training)  # a failure writes nothing
    aggregate.write_scores(ver.scores, out, meta=meta, extra=extra, report=html)  # one set
    return ver


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
