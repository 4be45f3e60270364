r"""``probcast verify`` on gridded products against a gridded analysis.

Example::

    probcast verify --forecast out/run_parameters.nc --forecast out/run_probabilities_tp.nc \\
        --truth analysis.nc --raw run.nc --out verif/

The product files of one run (``out/run_*.nc``) form one forecast, named ``run``
(``NAME=FILE`` names it); ``--raw`` scores the NWP input grid (``fc_<var>``) as forecast
``raw``, the default reference of the CRPSS. Writes ``scores.csv``, ``scores.json``,
``maps.nc`` (per grid point: mean CRPS and CRPSS by method and lead time) and
``report.html`` (with the maps) into ``--out``. See docs/verification.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from probcast import io
from probcast.verify import aggregate, report
from probcast.verify.grid_inputs import check_periods, open_forecast, open_truth, product_name
from probcast.verify.gridded import GridVerification, verify_grid

RAW = "raw"
"""Name of the forecast given with ``--raw``."""


def named_files(items: list[str], raw: str | None) -> dict[str, list[str]]:
    """``[NAME=]FILE`` items -> ``{name: [files]}`` (plain files named by their product stem).

    Raises:
        argparse.ArgumentTypeError: An empty name or file, or ``raw`` given twice.
    """
    out: dict[str, list[str]] = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = product_name(item), item
        if not name.strip() or not path.strip():
            raise argparse.ArgumentTypeError(f"--forecast: expected [NAME=]FILE, got {item!r}")
        out.setdefault(name.strip(), []).append(path.strip())
    if raw:
        if RAW in out:
            raise argparse.ArgumentTypeError(
                f"--raw: a forecast is already named {RAW!r} ({out[RAW]}); rename it (NAME=FILE)"
            )
        out[RAW] = [raw]
    return out


def _write(
    gv: GridVerification, out: Path, meta: dict[str, Any], title: str, training: str
) -> list[Path]:
    """Write scores, maps and report (the report is rendered first: a failure writes nothing)."""
    ver = gv.ver
    html = report.render_gridded(ver, gv.maps, title=title, training=training)
    out.mkdir(parents=True, exist_ok=True)
    extra = {"diagnostics": ver.diagnostics}
    paths = list(aggregate.write_scores(ver.scores, out, meta=meta, extra=extra).values())
    maps_path = out / "maps.nc"
    encoding = {str(v): {"zlib": True, "complevel": 4} for v in gv.maps.data_vars}
    io.write_with(maps_path, lambda tmp: gv.maps.to_netcdf(tmp, encoding=encoding))
    paths += [maps_path, io.write_text(out / "report.html", html)]
    return paths


def run_grid(args: argparse.Namespace) -> int:
    """Run the gridded verification of parsed ``probcast verify`` arguments.

    Args:
        args: Parsed arguments of :func:`probcast.verify.cli.build_parser`.

    Returns:
        The exit status (0 success, 1 bad input, 2 bad usage).
    """
    from probcast.verify.cli import (
        _families,
        _thresholds,
        forms_text,
        out_dir,
        runtime_message,
        summary_text,
        usage_problem,
    )

    by = {b.strip() for b in args.by.split(",") if b.strip()}
    problem = None
    if by - {"all", "lead_time"}:
        problem = f"--by {args.by}: gridded verification groups by lead_time only"
    elif args.keep_nan:
        problem = "--keep-nan: gridded verification always drops missing (masked) values"
    named: dict[str, list[str]] = {}
    families: dict[str, dict[str, str]] = {}
    thresholds: dict[str, list[float]] = {}
    try:
        named = named_files(args.forecast, args.raw)
        families = _families(args.family, list(named))
        thresholds = _thresholds(args.thresholds)
    except argparse.ArgumentTypeError as err:
        problem = str(err)
    reference = args.reference or (RAW if args.raw else None)
    problem = problem or usage_problem(args, list(named), reference)
    if not problem:
        try:
            out, created = out_dir(args.out)
        except argparse.ArgumentTypeError as err:
            problem = str(err)
    if problem:
        print(f"probcast verify: error: {problem}", file=sys.stderr)
        return 2
    try:
        training = ""
        if getattr(args, "model", None):  # the training curves of --model
            from probcast.verify.cli import _training

            training = _training(args.model)
        truth = open_truth(args.truth)
        forecasts = [
            open_forecast(name, list(paths), families.get(name, {}))
            for name, paths in named.items()
        ]
        check_periods(truth, str(args.truth), forecasts)
        gv = verify_grid(
            truth,
            forecasts,
            reference=reference,
            thresholds=thresholds or None,
            variables=[v for v in args.variables.split(",") if v] or None,
            seed=args.seed,
            n_boot=args.n_boot,
            truth_name=str(args.truth),
        )
        meta = {**gv.ver.meta, "truth": str(args.truth), "forecasts": named}
        paths = _write(gv, out, meta, args.title, training)
    except (ValueError, KeyError, OSError) as err:
        if created and not any(out.iterdir()):
            out.rmdir()  # a failed run leaves no empty folder behind
        print(f"probcast verify: error: {runtime_message(err)}", file=sys.stderr)
        return 1
    print(summary_text(gv.ver))
    print(forms_text(gv.ver))
    print(f"\nwrote {', '.join(map(str, paths))}")
    return 0
