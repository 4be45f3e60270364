"""Read and write canonical station tables (CSV, Parquet)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from probcast import io
from probcast.validate import validate_station_table

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def read_table(path: str | Path, *, validate: bool = True) -> pd.DataFrame:
    """Read a station table and return it in canonical form.

    Args:
        path: CSV or Parquet file.
        validate: Run :func:`probcast.validate.validate_station_table` (recommended).

    Returns:
        The table with UTC ``init_time``/``valid_time`` and float ``lead_time`` (hours).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the format is unknown or validation fails (the message names the
            file and column).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such station table")
    suffix = p.suffix.lower()
    if suffix == ".csv":
        df = pd.read_csv(p, dtype={"station": str})
    elif suffix in (".parquet", ".pq"):
        df = pd.read_parquet(p)
    else:
        raise ValueError(f"{p}: unknown table format {suffix!r}; expected one of {TABLE_SUFFIXES}")
    return validate_station_table(df, source=str(p)) if validate else df


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a table atomically (temporary name, then rename); format by extension.

    Args:
        df: Table to write.
        path: ``.csv`` or ``.parquet`` destination.

    Returns:
        The written path.
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ValueError(f"{p}: unknown table format {suffix!r}; expected one of {TABLE_SUFFIXES}")
    if suffix == ".csv":
        stamp = "%Y-%m-%dT%H:%M:%SZ"
        return io.write_with(p, lambda tmp: df.to_csv(tmp, index=False, date_format=stamp))
    return io.write_with(p, lambda tmp: df.to_parquet(tmp, index=False))
