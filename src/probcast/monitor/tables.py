"""The monitor's inputs read and checked file by file: station tables and prediction files.

Station tables (cycle inputs, observations, the reference table) are read without the
full station-table validation (an observation table need not have ``init_time``), but every
column the monitor uses is coerced per file with the project's validators
(:mod:`probcast.validate`): times to UTC, ``lead_time`` to hours (numbers or durations such
as ``6h``), ``fc_*``/``obs_*``/``stat_*`` and the statics to floats. What cannot be coerced
is an error naming the file, the column and what was expected.

Prediction files are read with :func:`probcast.products.table_files.read_predictions` and
converted to canonical units (:func:`probcast.products.units.table_to_canonical`, from the
``units`` metadata ``probcast predict --units`` writes), as the observations are canonical.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from probcast import dists
from probcast.products import table as product_table
from probcast.schema import STATIC_COLUMNS
from probcast.validate import ValidationError, to_float, to_hours, to_utc, value_columns

GRID_SUFFIXES = (".nc", ".nc4", ".zarr", ".grib", ".grib2", ".grb", ".grb2")


def coerce_table(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """``frame`` with its key, static and value columns coerced (those present).

    Raises:
        ValidationError: A missing station id, an unparseable or missing time, a lead time
            neither hours nor a duration, a non-numeric value (the message names ``source``,
            the column and what was expected).
    """
    out = frame.copy()
    if "station" in out.columns:
        if out["station"].isna().any():
            raise ValidationError(
                f"{source}: column 'station': {int(out['station'].isna().sum())} missing "
                "station id(s); expected a station id on every row"
            )
        out["station"] = out["station"].astype(str)
    for col in ("init_time", "valid_time"):
        if col in out.columns:
            out[col] = to_utc(out[col], col, source)
    if "lead_time" in out.columns:
        out["lead_time"] = to_hours(out["lead_time"], source)
        if out["lead_time"].isna().any():
            raise ValidationError(
                f"{source}: column 'lead_time': {int(out['lead_time'].isna().sum())} missing "
                "lead time(s); expected float hours on every row"
            )
    for col in [*STATIC_COLUMNS, *value_columns(out)]:
        if col in out.columns:
            out[col] = to_float(out[col], col, source)
    return out


def read_tables(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Concatenate station tables (CSV/Parquet), each coerced by :func:`coerce_table`.

    Raises:
        ValueError: A grid (NetCDF, Zarr, GRIB), which the monitors do not read, or a column
            that cannot be coerced (the message names the file and the column).
    """
    from probcast.ingest.tables import read_table

    grids = [p for p in paths if str(p).lower().endswith(GRID_SUFFIXES)]
    if grids:
        raise ValueError(
            f"{grids[0]}: probcast monitor reads station tables (CSV/Parquet), not NetCDF, "
            "Zarr or GRIB files; a grid's products are scored with probcast verify"
        )
    frames = [coerce_table(read_table(p, validate=False), str(p)) for p in paths]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _forecast_columns(frame: pd.DataFrame, families: dict[str, str]) -> list[str]:
    """The numeric forecast columns of a prediction table (members, quantiles, parameters)."""
    out: list[str] = []
    for var in product_table.detect_variables(frame.columns):
        cs = product_table.parse_columns(frame.columns, var)
        out += [*cs.members, *cs.quantiles.values(), *cs.probabilities.values()]
        out += [c for c in (cs.point,) if c]
        family = families.get(var)
        if family is not None:
            try:
                names = tuple(dists.get(family).param_names)
            except KeyError:
                names = ()  # an unknown family is reported where the forecast is built
            out += [col for p, col in cs.other.items() if p in names]
    return out


def read_forecasts(path: str | Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """A prediction file in canonical units, its forecast columns numeric, and its families.

    Raises:
        FileNotFoundError: No such file.
        ValueError: An unreadable file, unreadable key columns, a non-numeric forecast
            column or units metadata that cannot be converted (the message names the file).
    """
    from probcast.products.table_files import read_predictions
    from probcast.products.units import read_units, table_to_canonical

    source = str(path)
    try:
        table, families = read_predictions(path, canonical=False)  # converted below
    except (ValueError, TypeError) as err:
        text = str(err)
        if text.startswith(source):
            raise ValueError(text) from None
        raise ValueError(
            f"{source}: unreadable key columns ({text}); expected station ids, ISO 8601 "
            "init_time/valid_time and lead_time in hours"
        ) from None
    for col in _forecast_columns(table, families):
        table[col] = to_float(table[col], col, source)
    return table_to_canonical(table, read_units(path), source), families
