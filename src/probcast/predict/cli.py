"""``probcast predict --model=WORKDIR --input=TABLE --output=FILE [options]``.

Options: ``--members=K`` coherent members per row, ``--quantiles=0.05,0.5,0.95``,
``--thresholds=tp:0.1,1,5`` (repeat the flag for more targets), ``--seed=0``,
``--noparams`` to leave out the distribution parameters. The output format follows the
extension of ``--output`` (``.csv``, ``.parquet``, ``.nc``).

A gridded ``--input`` (NetCDF ``.nc``, Zarr ``.zarr``, GRIB ``.grib/.grib2/.grb``, kerchunk
``.json``) is predicted whole, tile by tile, into CF product files
``<output stem>_<product>.nc|.zarr`` (``--percentiles=5,25,50,75,95``, ``--thresholds``,
``--members``, ``--scheduler=ADDRESS`` of a dask.distributed cluster, ``--tile=256``);
see docs/gridded.md.
"""

from __future__ import annotations

import sys
import time

from absl import flags


def _flags() -> flags.FlagValues:
    fv = flags.FlagValues()
    flags.DEFINE_string("model", None, "Workdir of a trained model.", flag_values=fv)
    flags.DEFINE_string("input", None, "Station table (CSV/Parquet) to predict.", flag_values=fv)
    flags.DEFINE_string("output", None, "Output file: .csv, .parquet or .nc.", flag_values=fv)
    flags.DEFINE_integer("members", 0, "Members per row (0 = none).", flag_values=fv)
    flags.DEFINE_string("quantiles", "", "Comma list of quantile levels.", flag_values=fv)
    flags.DEFINE_multi_string(
        "thresholds", [], "var:t1,t2,... exceedance thresholds (repeatable).", flag_values=fv
    )
    flags.DEFINE_integer("seed", 0, "Seed of the member draws.", flag_values=fv)
    flags.DEFINE_boolean("params", True, "Write distribution parameters.", flag_values=fv)
    flags.DEFINE_string(
        "percentiles",
        "",
        "Gridded input: percentiles in % (default 5,25,50,75,95).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "scheduler", None, "Gridded input: dask.distributed scheduler address.", flag_values=fv
    )
    flags.DEFINE_integer("tile", 256, "Gridded input: spatial tile edge (cells).", flag_values=fv)
    flags.mark_flags_as_required(["model", "input", "output"], flag_values=fv)
    return fv


def run(fv: flags.FlagValues) -> str:
    """Predict with parsed flags; return a one-line summary."""
    from probcast.ingest.tables import read_table
    from probcast.model.artefact import load
    from probcast.predict import station

    start = time.perf_counter()
    thresholds: dict[str, list[float]] = {}
    for item in fv.thresholds:
        thresholds.update(station.parse_thresholds(item))
    from probcast.align.points import is_grid_path

    if is_grid_path(fv.input):
        from probcast.predict.gridded import run_grid

        return run_grid(fv, thresholds or None, start)
    frame = station.predict_table(
        load(fv.model),
        read_table(fv.input),
        members=fv.members,
        quantiles=station.parse_levels(fv.quantiles),
        thresholds=thresholds,
        seed=fv.seed,
        params=fv.params,
    )
    path = station.write_predictions(frame, fv.output)
    took = time.perf_counter() - start
    return f"wrote {len(frame)} rows x {frame.shape[1]} columns to {path} in {took:.1f} s"


def main(argv: list[str]) -> int:
    """Run ``probcast predict`` with ``argv`` (without the program name)."""
    fv = _flags()
    if any(a in ("-h", "--help", "--helpfull") for a in argv):
        print(__doc__)
        return 0
    try:
        fv(["probcast predict", *argv])
    except flags.Error as err:
        print(f"probcast predict: {err}", file=sys.stderr)
        return 2
    from probcast.train.cli import configure_logging

    configure_logging()
    try:
        print(run(fv))
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"probcast predict: {err}", file=sys.stderr)
        return 1
    return 0
