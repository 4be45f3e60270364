"""``probcast predict --model=WORKDIR --input=TABLE --output=FILE [options]``.

Options: ``--members=K`` coherent members per row, ``--quantiles=0.05,0.5,0.95``,
``--thresholds=tp:0.1,1,5`` (repeat the flag for more targets), ``--seed=0``,
``--noparams`` to leave out the distribution parameters, ``--combine=vincentize|mixture``
(pool of seed networks), ``--batch_size``, ``--units=t2m=degC,tp=mm`` (thresholds given and
outputs written in these units, recorded in the output's metadata; docs/data-model.md).
The output format follows the extension of ``--output`` (``.csv``, ``.parquet``, ``.nc``);
the families of the parameters (and the units) are recorded with it, so ``probcast verify``
reads it with no further flag.

A gridded ``--input`` (NetCDF ``.nc``, Zarr ``.zarr``, GRIB ``.grib/.grib2/.grb``, kerchunk
``.json``) is predicted whole, tile by tile, into CF product files
``<output stem>_<product>.nc|.zarr`` (``--percentiles=5,25,50,75,95``, ``--thresholds``,
``--members``, ``--scheduler=ADDRESS`` of a dask.distributed cluster, ``--tile=256``);
see docs/gridded.md.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable
from typing import Any

from absl import flags

REQUIRED = ("model", "input", "output")


def _flags() -> flags.FlagValues:
    fv = flags.FlagValues()
    flags.DEFINE_string("model", None, "Workdir of a trained model.", flag_values=fv)
    flags.DEFINE_string(
        "input",
        None,
        "Station table (CSV/Parquet) or gridded forecast (NetCDF/Zarr/GRIB).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "output", None, "Output file: .csv, .parquet or .nc (grids: a stem).", flag_values=fv
    )
    flags.DEFINE_integer("members", 0, "Members per row (0 = none).", flag_values=fv)
    flags.DEFINE_string(
        "quantiles", "", "Comma list of quantile levels (e.g. 0.05,0.5,0.95).", flag_values=fv
    )
    flags.DEFINE_multi_string(
        "thresholds",
        [],
        "VAR:T1,T2,... exceedance thresholds, repeatable (e.g. tp:0.1,1,5).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "units",
        "",
        "VAR=UNITS,... thresholds given and outputs written in these units, e.g. "
        "t2m=degC,tp=mm (not given: canonical K, kg m-2, m s-1, Pa, 1).",
        flag_values=fv,
    )
    flags.DEFINE_integer("seed", 0, "Seed of the member draws.", flag_values=fv)
    flags.DEFINE_boolean("params", True, "Write distribution parameters.", flag_values=fv)
    flags.DEFINE_float(
        "inflevel",
        0.99,
        "Gridded products: share of the real information each chunk's bit rounding keeps "
        "(1 keeps every bit; docs/products.md).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "percentiles",
        "",
        "Percentiles in % (gridded input: 5,25,50,75,95 when not given; station tables: "
        "quantile columns at these levels / 100, with --quantiles).",
        flag_values=fv,
    )
    flags.DEFINE_string(
        "scheduler", None, "Gridded input: dask.distributed scheduler address.", flag_values=fv
    )
    flags.DEFINE_integer("tile", 256, "Gridded input: spatial tile edge (cells).", flag_values=fv)
    flags.DEFINE_enum(
        "combine",
        "vincentize",
        ["vincentize", "mixture"],
        "Pool of seed networks: vincentize (quantile average) or mixture.",
        flag_values=fv,
    )
    flags.DEFINE_integer("batch_size", 65536, "Rows per forward pass.", flag_values=fv)
    flags.DEFINE_string(
        "template",
        None,
        "Station table of past forecasts and observations (e.g. the training table, or the "
        "table probcast data build keeps current): members become coherent scenarios "
        "across lead times, stations and variables (Schaake shuffle), and the input gets "
        "each station's recent forecast errors (err_<var>) from it.",
        flag_values=fv,
    )
    flags.DEFINE_enum(
        "extrapolation",
        "flag",
        ["flag", "warn", "refuse"],
        "Station rows outside the model's training domain (lead, station, predictor values): "
        "flag them in an 'applicability' column, only warn, or refuse beyond "
        "--extrapolation_limit; a grid's lead times and coordinates: warn, or refuse.",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "extrapolation_tolerance",
        0.1,
        "Soft margin beyond the training 0.1-99.9 % range, as a fraction of that range.",
        flag_values=fv,
    )
    flags.DEFINE_float(
        "extrapolation_limit",
        1.0,
        "Hard margin (same unit) beyond which --extrapolation=refuse stops.",
        flag_values=fv,
    )
    flags.mark_flags_as_required(list(REQUIRED), flag_values=fv)
    return fv


USAGE = "usage: probcast predict --model=WORKDIR --input=FILE --output=FILE [options]"
DESCRIPTION = """\
Predict calibrated members, quantiles, exceedance probabilities and distribution parameters
from a trained model (probcast train) for a station table (CSV/Parquet) or a gridded forecast
(NetCDF, Zarr, GRIB, kerchunk JSON). The output format follows the extension of --output; the
families of the parameters are recorded with it, so probcast verify needs no further flag.
"""
EXAMPLE = """\
example:
  probcast predict --model=runs/mine --input=tables/mine/test.parquet --output=pred.parquet \\
      --members=51 --quantiles=0.05,0.5,0.95 --thresholds=tp:0.1,1,5
"""


def help_text() -> str:
    """``probcast predict --help``: usage, description and every option with its default."""
    fv = _flags()
    lines = [USAGE, "", DESCRIPTION, "options:"]
    for flag in sorted(fv.flags_by_module_dict().get(__name__, []), key=_order(fv)):
        text = flag.help.split(";")[0]
        text = text.split(": ", 1)[1] if text.startswith("<") else text  # enum choices
        if flag.name in REQUIRED:
            default = "required"
        elif flag.boolean:
            default = f"on; --no{flag.name} turns it off" if flag.default else "off"
        elif flag.default in (None, "", []):
            default = "default: none"
        else:
            default = f"default: {flag.default}"
        lines += textwrap.wrap(
            f"{text} ({default})", 100, initial_indent=f"  --{flag.name:<24}",
            subsequent_indent=" " * 28,
        )  # fmt: skip
    lines += [f"  {'-h, --help':<26}this help", "", EXAMPLE]
    return "\n".join(lines)


def _order(fv: Any) -> Any:
    names = list(fv)
    return lambda flag: names.index(flag.name)


GRID_ONLY = ("scheduler", "tile", "inflevel")
"""Options of gridded input only: given with a station table they are refused."""
STATION_ONLY = ("template",)
"""Options of station tables only: given with a grid they are refused."""


class OptionError(ValueError):
    """A bad option value or combination, found before any work (exit code 2)."""


def request_from_flags(fv: flags.FlagValues) -> Any:
    """The :class:`~probcast.predict.request.PredictRequest` of parsed flags.

    Raises:
        OptionError: A bad option value (the message names the option and the value
            given) or an option that does not apply to the kind of input.
    """
    from probcast.predict.request import (
        PredictRequest,
        is_grid,
        parse_levels,
        parse_percentiles,
        parse_thresholds,
    )
    from probcast.units import parse_units

    parsers: dict[str, Callable[[Any], Any]] = {
        "quantiles": parse_levels,
        "percentiles": lambda t: parse_percentiles(t) if t.strip() else None,
        "thresholds": lambda t: parse_thresholds(t) or None,
        "units": lambda t: parse_units(t) or None,
    }
    fields: dict[str, Any] = {"model": fv.model, "input": fv.input, "output": fv.output}
    for name in ("members", "quantiles", "percentiles", "thresholds", "params", "combine",
                 "batch_size", "seed", "tile", "scheduler", "template", "units",
                 "extrapolation", "extrapolation_tolerance", "extrapolation_limit",
                 "inflevel"):  # fmt: skip
        given = fv[name].value
        try:
            value: Any = parsers[name](given) if name in parsers else given
            if name == "batch_size" and value < 1:
                raise ValueError(f"expected an integer >= 1, got {value}")
            alone: dict[str, Any] = {name: value}
            PredictRequest(model=fv.model, input=fv.input, **alone)  # checks this one only
        except ValueError as err:
            shown = ",".join(given) if isinstance(given, list) else given
            text = str(err).removeprefix(f"--{name}: ")
            raise OptionError(f"--{name}={shown}: {text}") from None
        fields[name] = value
    grid = is_grid(fv.input)
    kind = "a grid" if grid else "a station table"
    for name in STATION_ONLY if grid else GRID_ONLY:
        if fv[name].present:
            what = "station tables" if grid else "gridded input (NetCDF/Zarr/GRIB/kerchunk)"
            raise OptionError(f"--{name}: applies to {what} only; --input {fv.input} is {kind}")
    try:
        return PredictRequest(**fields)
    except ValueError as err:  # a combination (e.g. the extrapolation margins)
        raise OptionError(str(err)) from None


def run(fv: flags.FlagValues) -> str:
    """Predict with parsed flags; return a one-line summary."""
    from probcast.predict.runner import run as run_request

    return run_request(request_from_flags(fv)).summary()


def main(argv: list[str]) -> int:
    """Run ``probcast predict`` with ``argv`` (without the program name)."""
    fv = _flags()
    if any(a in ("-h", "--help", "--helpfull") for a in argv):
        print(help_text())
        return 0
    try:
        rest = fv(["probcast predict", *argv])[1:]
        if rest:
            raise flags.Error(
                f"unexpected argument(s) {' '.join(rest)}: every option is --name=value"
            )
        request = request_from_flags(fv)
    except (flags.Error, OptionError) as err:
        print(f"probcast predict: error: {err}\n{USAGE}", file=sys.stderr)
        return 2
    from probcast.logs import configure_logging
    from probcast.predict.runner import run as run_request

    configure_logging()
    try:
        print(run_request(request).summary())
    except (ValueError, KeyError, OSError) as err:
        msg = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"probcast predict: error: {msg}", file=sys.stderr)
        return 1
    return 0
