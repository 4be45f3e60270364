"""Checks of how forecasts meet the truth: times, groupings, thresholds, overlap.

Nothing here scores; each function refuses, with a message naming the table, the column
and the first offending row, an input that would otherwise be scored against the wrong
observations or the wrong event:

- :func:`check_valid_times`: ``valid_time`` must be ``init_time + lead_time`` in a table
  that has all three (a lead time labelled by the start of an accumulation is not);
- :func:`compare_valid_times`: the forecast's and the truth's ``valid_time`` of each
  matched case must agree;
- :func:`check_groupings`: ``--by`` columns must exist;
- :func:`check_thresholds`: thresholds inside the variable's physical range;
- :func:`no_overlap_message`: why two tables have no case in common, key by key.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from probcast.schema import VARIABLES, units_hint

TIME_TOLERANCE = pd.Timedelta(seconds=1)
"""Largest difference of two times taken as the same (rounding of stored times)."""


def _expected_valid(df: pd.DataFrame) -> pd.Series:
    lead = pd.to_timedelta(df["lead_time"].to_numpy("float64") * 3600.0, unit="s")
    return df["init_time"] + lead


def _mismatch(a: pd.Series, b: pd.Series) -> tuple[int, int] | None:
    """``(count, first position)`` of rows whose times differ beyond the tolerance, else None.

    NaT compares False: a missing time is nothing to check.
    """
    bad = ((a - b).abs() > TIME_TOLERANCE).to_numpy(bool)
    return (int(bad.sum()), int(np.flatnonzero(bad)[0])) if bad.any() else None


def check_valid_times(df: pd.DataFrame, what: str) -> None:
    """Refuse rows whose ``valid_time`` is not ``init_time + lead_time`` (keys normalised).

    Args:
        df: A table with normalised keys (:func:`probcast.products.table.normalise_keys`).
        what: How messages name the table (``forecast 'raw' (raw.parquet)``).

    Raises:
        ValueError: Naming the count and the first mismatching row.
    """
    if not {"init_time", "lead_time", "valid_time"} <= set(df.columns):
        return
    found = _mismatch(df["valid_time"], _expected_valid(df))
    if found:
        n, r = found
        row = df.iloc[r]
        raise ValueError(
            f"{what}: valid_time is not init_time + lead_time in {n} of {len(df)} "
            f"rows (first row {r}: station {row['station']}, init_time {row['init_time']}, "
            f"lead_time {row['lead_time']:g} h, valid_time {row['valid_time']}); a lead time "
            "labelled by the start of an accumulation period? lead_time must be the hours "
            "from init_time to valid_time (the end of the period)"
        )


def compare_valid_times(merged: pd.DataFrame, truth_col: str, what: str, truth_name: str) -> None:
    """Refuse matched cases whose forecast ``valid_time`` differs from the truth's.

    Args:
        merged: The join, the forecast's ``valid_time`` and the truth's in ``truth_col``.
        truth_col: Column of the truth's valid time in ``merged``.
        what: How messages name the forecast.
        truth_name: How messages name the truth.

    Raises:
        ValueError: Naming the count and the first mismatching case.
    """
    found = _mismatch(merged["valid_time"], merged[truth_col])
    if found:
        n, r = found
        row = merged.iloc[r]
        raise ValueError(
            f"{what} and the {truth_name}: {n} of {len(merged)} cases matched on "
            f"station, init_time, lead_time have different valid_time (first: station "
            f"{row['station']}, init_time {row['init_time']}, lead_time {row['lead_time']:g} h: "
            f"forecast {row['valid_time']}, truth {row[truth_col]}); they would be scored "
            "against the wrong observations"
        )


def check_groupings(by: Sequence[str], columns: Sequence[str], truth_name: str) -> None:
    """Refuse ``--by`` groupings naming columns the truth and keys do not have.

    Raises:
        ValueError: Naming the missing columns and listing the available ones.
    """
    have = set(columns)
    missing = sorted({c for b in by if b != "all" for c in b.split("+")} - have)
    if missing:
        raise ValueError(
            f"cannot group by {missing}: no such column in the {truth_name}; available: "
            f"{', '.join(sorted(map(str, have)))} (combine with +, e.g. lead_time+station)"
        )


def check_thresholds(variable: str, thresholds: Sequence[float]) -> None:
    """Refuse event thresholds outside ``variable``'s physical range (canonical units).

    Raises:
        ValueError: Naming the thresholds, the range and the units they would fit.
    """
    info = VARIABLES.get(variable)
    if info is None or not len(thresholds):
        return
    out = [float(t) for t in thresholds if not info.valid_min <= t <= info.valid_max]
    if out:
        hint = units_hint(min(out), max(out), variable)
        raise ValueError(
            f"--thresholds {variable}: {', '.join(f'{t:g}' for t in out)} outside the physical "
            f"range [{info.valid_min:g}, {info.valid_max:g}] {info.units} of {variable}; "
            f"thresholds are in the canonical units {info.units} ({hint})"
        )


def _summary(col: pd.Series) -> str:
    if col.empty:
        return "none"
    if pd.api.types.is_datetime64_any_dtype(col):
        return f"{col.min()} to {col.max()}"
    vals = sorted(pd.unique(col.dropna()))
    text = [f"{v:g}" if isinstance(v, float | np.floating) else str(v) for v in vals[:8]]
    return "[" + ", ".join(text) + (f", ... ({len(vals)} values)" if len(vals) > 8 else "") + "]"


def no_overlap_message(
    fc: pd.DataFrame, truth: pd.DataFrame, name: str, truth_name: str, keys: Sequence[str]
) -> str:
    """Why a forecast and the truth share no case: what each has of every key, and overlap."""
    parts = []
    for k in keys:
        common = len(set(pd.unique(fc[k])) & set(pd.unique(truth[k])))
        parts.append(
            f"{k}: forecast {_summary(fc[k])}, {truth_name} {_summary(truth[k])} "
            f"({common} in common)"
        )
    return (
        f"forecast {name!r} and the {truth_name} have no case in common (matched on "
        f"{', '.join(keys)}; forecast {len(fc)} rows, {truth_name} {len(truth)} rows): "
        + "; ".join(parts)
    )
