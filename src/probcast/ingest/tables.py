"""Read and write canonical station tables (CSV, Parquet)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

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


def atomic_path(path: Path) -> Path:
    """Return a temporary sibling path of ``path`` to write before renaming."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a table atomically (temporary name, then rename); format by extension.

    Args:
        df: Table to write.
        path: ``.csv`` or ``.parquet`` destination.

    Returns:
        The written path.
    """
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    suffix = p.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise ValueError(f"{p}: unknown table format {suffix!r}; expected one of {TABLE_SUFFIXES}")
    tmp = atomic_path(p)
    try:
        if suffix == ".csv":
            df.to_csv(tmp, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
        else:
            df.to_parquet(tmp, index=False)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; give the file ordinary permissions
        tmp.replace(p)
    finally:
        tmp.unlink(missing_ok=True)
    return p
