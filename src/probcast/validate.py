"""Schema and sanity validation of canonical station tables (docs/data-model.md).

:func:`validate_station_table` coerces a table read from any source to the canonical form
and raises :class:`ValidationError`, naming the source, the column and what was expected,
when it cannot; :func:`validation_report` lists the non-fatal findings. Values outside a
variable's physical range by float noise only (:data:`probcast.ranges.NOISE_TOLERANCE` of
the range, e.g. a cloud cover of ``1.000007``) are clipped with a logged count
(:func:`probcast.ranges.clip_float_noise`); real violations are errors naming the source,
the column and the worst value.
"""

from __future__ import annotations

import contextlib
import logging
import re

import numpy as np
import pandas as pd
import pandera.pandas as pa
from pandera.errors import SchemaErrors

from probcast import station_ids
from probcast.plausibility import unusual_magnitude
from probcast.ranges import checked_values, ranged_variable
from probcast.schema import (
    FC_PREFIX,
    KEY_COLUMNS,
    OBS_PREFIX,
    STATIC_COLUMNS,
    VARIABLES,
)

log = logging.getLogger(__name__)

STAT_PREFIX = "stat_"
VALUE_PREFIXES = (FC_PREFIX, OBS_PREFIX, STAT_PREFIX)
TIME_TOLERANCE = pd.Timedelta(seconds=1)
"""Largest accepted difference between ``valid_time`` and ``init_time + lead_time``."""


class ValidationError(ValueError):
    """Input data violates the canonical data model; the message names file and column."""


STATION_SCHEMA = pa.DataFrameSchema(
    {
        "station": pa.Column(str, nullable=False),
        "init_time": pa.Column("datetime64[ns, UTC]", nullable=False),
        "lead_time": pa.Column(float, pa.Check.ge(0.0), nullable=False),
        "valid_time": pa.Column("datetime64[ns, UTC]", nullable=False),
        "latitude": pa.Column(float, pa.Check.in_range(-90.0, 90.0), nullable=True, required=False),
        "longitude": pa.Column(
            float, pa.Check.in_range(-180.0, 360.0), nullable=True, required=False
        ),
        "altitude": pa.Column(
            float, pa.Check.in_range(-500.0, 9000.0), nullable=True, required=False
        ),
        r"fc_.+": pa.Column(float, nullable=True, regex=True, required=False),
        r"obs_.+": pa.Column(float, nullable=True, regex=True, required=False),
        r"stat_.+": pa.Column(float, nullable=True, regex=True, required=False),
    },
    strict=False,
    name="canonical station table",
)
"""Contract of a coerced station table (dtypes and coordinate ranges)."""


def value_columns(df: pd.DataFrame) -> list[str]:
    """Return the ``fc_``/``obs_``/``stat_`` columns of ``df`` in table order."""
    return [c for c in df.columns if isinstance(c, str) and c.startswith(VALUE_PREFIXES)]


def _examples(values: pd.Series, n: int = 3) -> str:
    return ", ".join(repr(v) for v in values.head(n).tolist())


def _check_columns(df: pd.DataFrame, source: str) -> None:
    missing = [c for c in KEY_COLUMNS if c not in df.columns]
    if missing:
        raise ValidationError(
            f"{source}: missing key column(s) {missing}; a station table needs "
            f"{list(KEY_COLUMNS)} (found columns: {list(df.columns)[:20]})"
        )
    if not any(c.startswith((FC_PREFIX, OBS_PREFIX)) for c in value_columns(df)):
        raise ValidationError(
            f"{source}: no forecast ({FC_PREFIX}<name>) or observation ({OBS_PREFIX}<var>) "
            f"columns; expected e.g. {FC_PREFIX}t2m and {OBS_PREFIX}t2m "
            f"(found columns: {list(df.columns)[:20]})"
        )
    if len(df) == 0:
        raise ValidationError(f"{source}: the table has no rows")


def to_utc(values: pd.Series, column: str, source: str) -> pd.Series:
    """Parse datetimes or ISO 8601 strings to UTC; naive times are taken as UTC.

    Args:
        values: The column.
        column: Its name (for messages).
        source: The file or table it came from (for messages).

    Returns:
        ``datetime64[ns, UTC]`` values.

    Raises:
        ValidationError: Numbers, unparseable or missing times (naming file and column).
    """
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        raise ValidationError(
            f"{source}: column {column!r} is numeric ({values.dtype}); expected datetimes or "
            f"ISO 8601 strings (e.g. '2016-10-01T00:00Z'); convert epoch numbers first"
        )
    try:  # a zone-aware column is converted to UTC
        parsed = pd.to_datetime(values, utc=True, format="ISO8601")
    except (ValueError, TypeError):
        parsed = pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")
        bad = values[parsed.isna() & values.notna()]
        raise ValidationError(
            f"{source}: column {column!r}: {len(bad)} value(s) are not parseable times, "
            f"e.g. {_examples(bad)}; expected datetimes or ISO 8601 strings"
        ) from None
    if parsed.isna().any():
        raise ValidationError(
            f"{source}: column {column!r}: {int(parsed.isna().sum())} missing time(s); "
            f"every row needs a time"
        )
    return parsed.astype("datetime64[ns, UTC]")


def to_hours(values: pd.Series, source: str) -> pd.Series:
    """Return lead times as float hours, value by value (a column may mix spellings).

    A number or a numeric string (``12``, ``'12'``) is hours; a timedelta or a duration
    string (``'6h'``, ``'90min'``, ``'1 day 06:00:00'``, ISO 8601 ``'PT6H'``) is converted.

    Args:
        values: The ``lead_time`` column.
        source: The file or table it came from (for messages).

    Raises:
        ValidationError: Values that are neither hours nor durations.
    """
    if pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
        return values.astype("float64")
    codes, uniques = pd.factorize(values)  # missing values: code -1, hours NaN
    hours = np.array([*map(_lead_hours, uniques), np.nan], dtype="float64")[codes]
    bad = values[np.isnan(hours) & (codes >= 0)]
    if len(bad):
        raise ValidationError(
            f"{source}: column 'lead_time': {len(bad)} value(s) are neither hours nor "
            f"durations, e.g. {_examples(bad.drop_duplicates())}; expected float hours, "
            "timedeltas or durations such as '6h' or 'PT6H'"
        )
    return pd.Series(hours, index=values.index, name=values.name)


def _lead_hours(value: object) -> float:
    """One lead time in hours (see :func:`to_hours`); NaN when it is not one."""
    text = str(value).strip()  # (of a timedelta: '6:30:00', '6 hours')
    with contextlib.suppress(ValueError):  # a number, '12': hours (pd.to_timedelta: 12 ns)
        return float(text) if "_" not in text else np.nan  # (not Python's '6_0': 60)
    with contextlib.suppress(ValueError, OverflowError):  # a unit, 'PT6H', '06:00'; not '6,0'
        return pd.Timedelta(text).total_seconds() / 3600 if re.search("[a-zA-Z:]", text) else np.nan
    return np.nan


def to_float(values: pd.Series, column: str, source: str) -> pd.Series:
    """Coerce a value column to float64.

    Args:
        values: The column.
        column: Its name (for messages).
        source: The file or table it came from (for messages).

    Raises:
        ValidationError: Non-numeric values (with examples).
    """
    if pd.api.types.is_numeric_dtype(values):  # bools too
        return values.astype("float64")
    numeric = pd.to_numeric(values, errors="coerce")
    bad = values[numeric.isna() & values.notna()]
    if len(bad):
        raise ValidationError(
            f"{source}: column {column!r} has dtype {values.dtype} with {len(bad)} "
            f"non-numeric value(s), e.g. {_examples(bad.drop_duplicates())}; expected float "
            f"numbers in canonical units (missing values as NaN)"
        )
    return numeric.astype("float64")


def _coerce(df: pd.DataFrame, source: str) -> pd.DataFrame:
    out = df.copy()
    if out["station"].isna().any():
        raise ValidationError(
            f"{source}: column 'station': {int(out['station'].isna().sum())} missing station "
            f"id(s); expected a station id on every row"
        )
    out["station"] = station_ids.as_text(out["station"])
    out["init_time"] = to_utc(out["init_time"], "init_time", source)
    out["lead_time"] = to_hours(out["lead_time"], source)
    if out["lead_time"].isna().any():
        raise ValidationError(
            f"{source}: column 'lead_time': {int(out['lead_time'].isna().sum())} missing lead "
            f"time(s); expected float hours on every row"
        )
    if "valid_time" in out.columns:
        out["valid_time"] = to_utc(out["valid_time"], "valid_time", source)
    else:
        valid = out["init_time"] + pd.to_timedelta(out["lead_time"], unit="h")
        pos = list(out.columns).index("lead_time") + 1
        out.insert(pos, "valid_time", valid.astype("datetime64[ns, UTC]"))
    for col in [*STATIC_COLUMNS, *value_columns(out)]:
        if col in out.columns:
            out[col] = to_float(out[col], col, source)
    return out


def _schema_message(err: SchemaErrors, source: str) -> str:
    cases = err.failure_cases
    lines = [
        f"column {column!r}: failed {check} for {len(group)} value(s), e.g. "
        f"{_examples(group['failure_case'].drop_duplicates())}"
        for (column, check), group in cases.groupby(["column", "check"], sort=False, dropna=False)
    ]
    return f"{source}: does not match the canonical station table: " + "; ".join(lines)


def _check_schema(df: pd.DataFrame, source: str) -> None:
    try:
        STATION_SCHEMA.validate(df, lazy=True, inplace=True)  # no copy: df is ours
    except SchemaErrors as err:
        raise ValidationError(_schema_message(err, source)) from None


def _check_duplicates(df: pd.DataFrame, source: str) -> None:
    dup = df.duplicated(list(KEY_COLUMNS), keep=False)
    if dup.any():
        first = df.loc[dup, list(KEY_COLUMNS)].iloc[0]
        n_keys = int(df.loc[dup, list(KEY_COLUMNS)].drop_duplicates().shape[0])
        raise ValidationError(
            f"{source}: {int(dup.sum())} rows share {n_keys} duplicated "
            f"(station, init_time, lead_time) key(s), e.g. station={first['station']!r}, "
            f"init_time={first['init_time']}, lead_time={first['lead_time']:g} h; "
            f"expected one row per key"
        )


def _check_values(df: pd.DataFrame, source: str) -> None:
    for col in value_columns(df):
        values = df[col].to_numpy(dtype="float64")
        if not np.isfinite(values).any():
            raise ValidationError(
                f"{source}: column {col!r} is entirely missing (all NaN); expected at least "
                f"one finite value, or drop the column"
            )
        var = ranged_variable(col)
        if var is not None:
            try:
                clipped = checked_values(source, col, var, values)
            except ValueError as err:
                raise ValidationError(str(err)) from None
            if not np.array_equal(clipped, values, equal_nan=True):
                df[col] = clipped


def _check_valid_time(df: pd.DataFrame, source: str) -> None:
    expected = df["init_time"] + pd.to_timedelta(df["lead_time"], unit="h")
    off = (df["valid_time"] - expected).abs() > TIME_TOLERANCE
    if off.any():
        row = df.loc[off].iloc[0]
        raise ValidationError(
            f"{source}: column 'valid_time': {int(off.sum())} row(s) differ from "
            f"init_time + lead_time, e.g. station={row['station']!r} init_time="
            f"{row['init_time']} lead_time={row['lead_time']:g} h has valid_time "
            f"{row['valid_time']}, expected {expected[off].iloc[0]}"
        )


def validate_station_table(df: pd.DataFrame, *, source: str = "<table>") -> pd.DataFrame:
    """Validate and coerce a station table to the canonical form.

    Coercions: ``station`` to str; times by :func:`to_utc` (naive times are UTC);
    ``lead_time`` by :func:`to_hours`; value columns and latitude/longitude/altitude to
    float64 (:func:`to_float`). A missing ``valid_time`` is ``init_time + lead_time``.

    Args:
        df: Table with at least ``station``, ``init_time``, ``lead_time`` and one ``fc_``
            or ``obs_`` column.
        source: File or table name, used in error messages.

    Returns:
        A coerced copy of ``df`` (same rows and order).

    Raises:
        ValidationError: Missing key or ``fc_``/``obs_`` columns, no rows; non-numeric
            values; bad or missing times or lead times, negative lead times; coordinates out
            of range; duplicated keys; values outside the physical range of a known
            variable; all-NaN value columns; ``valid_time`` not ``init_time + lead_time``.
    """
    if not isinstance(df, pd.DataFrame):
        raise ValidationError(f"{source}: expected a pandas DataFrame, got {type(df).__name__}")
    _check_columns(df, source)
    out = _coerce(df, source)
    _check_schema(out, source)
    _check_duplicates(out, source)
    _check_values(out, source)
    _check_valid_time(out, source)
    return out


def validate_keys(df: pd.DataFrame, *, source: str = "<table>") -> pd.DataFrame:
    """Coerce and check the keys and times of a station table, not its values.

    The same coercion and checks as :func:`validate_station_table`, without its value
    checks (ranges, all-missing columns).

    For a table built in memory and handed to prediction: a time in another zone, a
    ``valid_time`` that is not ``init_time + lead_time`` or a repeated key would otherwise
    give features of the wrong hour and rows labelled with the wrong time. The values are
    checked where they are used (the model's inputs).

    Raises:
        ValidationError: As :func:`validate_station_table`, for the keys and times.
    """
    _check_columns(df, source)
    out = _coerce(df, source)
    _check_duplicates(out, source)
    _check_valid_time(out, source)
    return out


def _known_column(col: object) -> bool:
    names = (*KEY_COLUMNS, "valid_time", *STATIC_COLUMNS)
    return isinstance(col, str) and (col in names or col.startswith(VALUE_PREFIXES))


def validation_report(df: pd.DataFrame) -> list[str]:
    """Return non-fatal findings about a (validated) station table.

    Findings: table size; the fraction of missing values of each value column that has
    some; targets without a raw forecast ``fc_<var>``; ``obs_`` columns of unknown
    variables; columns outside the canonical model (ignored downstream); constant
    predictors; values of an unusual size (:mod:`probcast.plausibility`: mm as m, km/h).

    Args:
        df: A table returned by :func:`validate_station_table`.

    Returns:
        One human-readable line per finding.
    """
    lines = [
        f"{len(df)} rows, {df['station'].nunique()} stations, "
        f"{df['init_time'].nunique()} init times, {df['lead_time'].nunique()} lead times"
    ]
    for col in value_columns(df):
        frac = float(df[col].isna().mean())
        if frac > 0:
            lines.append(f"{col}: {frac:.2%} missing ({int(df[col].isna().sum())} rows)")
        if df[col].nunique(dropna=True) == 1:
            lines.append(f"{col}: constant value {float(df[col].dropna().iloc[0]):g}")
        var = ranged_variable(col)
        odd = unusual_magnitude(df[col].to_numpy("float64"), var) if var else None
        if odd:
            lines.append(f"{col}: {odd}")
    for col in df.columns:
        if isinstance(col, str) and col.startswith(OBS_PREFIX):
            var = col.removeprefix(OBS_PREFIX)
            if var not in VARIABLES:
                lines.append(f"{col}: unknown variable {var!r}; no unit or range check applied")
            if FC_PREFIX + var not in df.columns:
                lines.append(f"{col}: no raw forecast column {FC_PREFIX}{var}")
    unknown = [str(c) for c in df.columns if not _known_column(c)]
    if unknown:
        lines.append(f"columns outside the canonical model (ignored downstream): {unknown}")
    return lines
