"""Read and write canonical station tables (CSV, Parquet).

Damaged files are errors, never silently different data: a CSV whose last line lacks its
newline (a truncated file) or any of whose rows has another number of fields than the
header is refused (naming the file and line); Parquet is written with page checksums
(``write_page_checksum``) and read with their verification, so corrupted pages raise
instead of decoding to other values (files written without checksums cannot be checked).
CSV station ids are text: ``NA``, ``None`` or ``nan`` are ids, not missing values, and an
empty id is an error naming the line.
"""

from __future__ import annotations

import csv
from io import BytesIO, StringIO
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from probcast import io
from probcast.schema import TABLE_SUFFIXES
from probcast.validate import validate_station_table


def read_table(path: str | Path, *, validate: bool = True) -> pd.DataFrame:
    """Read a station table and return it in canonical form.

    Args:
        path: CSV or Parquet file.
        validate: Run :func:`probcast.validate.validate_station_table` (recommended).

    Returns:
        The table with UTC ``init_time``/``valid_time`` and float ``lead_time`` (hours).

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        ValueError: If the format is unknown, the file is truncated or corrupted, or
            validation fails (the message names the file, and the line or column).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such station table")
    suffix = p.suffix.lower()
    if suffix == ".csv":
        # parse the bytes that were checked: one read, and no change in between
        df = parse_csv(check_csv(p), p)
    elif suffix in (".parquet", ".pq"):
        df = read_parquet(p)
    else:
        raise ValueError(f"{p}: unknown table format {suffix!r}; expected one of {TABLE_SUFFIXES}")
    return validate_station_table(df, source=str(p)) if validate else df


NA_STRINGS = (
    *("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND"),
    *("1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"),
)
"""Cells read as missing values (pandas' defaults), in every column but ``station``."""


def parse_csv(data: bytes, path: Path) -> pd.DataFrame:
    """Parse checked CSV bytes; station ids are text (``NA``, ``None``, ``nan`` are ids).

    Raises:
        ValueError: If a station id is empty (the message names the file and the line).
    """
    header = pd.read_csv(BytesIO(data), nrows=0).columns
    na = {str(c): list(NA_STRINGS) for c in header if c != "station"}
    df = pd.read_csv(BytesIO(data), dtype={"station": str}, keep_default_na=False, na_values=na)
    if "station" in df.columns:
        empty = np.flatnonzero(df["station"].str.strip().eq("").to_numpy())
        if len(empty):
            counts = _fields_per_line(data) if b'"' not in data else _fields_quoted(data)
            line = counts[int(empty[0]) + 1][0]  # rows are the non-blank lines after the header
            raise ValueError(
                f"{path}: line {line}: empty station id ({len(empty)} row(s) in all); "
                "expected a station identifier"
            )
    return df


def read_parquet(path: Path) -> pd.DataFrame:
    """Read a Parquet file, verifying the page checksums it carries.

    Raises:
        ValueError: If the file is corrupted (a checksum mismatch or an undecodable page).
    """
    try:
        return pq.read_table(path, page_checksum_verification=True).to_pandas()
    except (OSError, pa.ArrowException) as err:
        raise ValueError(f"{path}: corrupted or unreadable Parquet file ({err})") from None


def check_csv(path: Path) -> bytes:
    """Refuse a truncated or ragged CSV file.

    Returns:
        The file's contents, for the caller to parse without reading it again.

    Raises:
        ValueError: If the last line does not end with a newline, or a row has another
            number of fields than the header (the message names the file and line).
    """
    data = path.read_bytes()
    if not data:
        raise ValueError(f"{path}: empty CSV file")
    lines = data.count(b"\n")
    if not data.endswith(b"\n"):
        raise ValueError(f"{path}: line {lines + 1} does not end with a newline (truncated file?)")
    counts = _fields_per_line(data) if b'"' not in data else _fields_quoted(data)
    header = counts[0][1]
    first = data.split(b"\n", 1)[0]
    for line, n in counts[1:]:
        if n != header:
            why = "truncated or damaged row"
            if header == 1 and (b";" in first or b"\t" in first):
                why = "not comma-separated? probcast reads CSV with ',' between fields and '.'"
                why += " as decimal point, e.g. pandas.read_csv(f, sep=';', decimal=',')"
            raise ValueError(f"{path}: line {line} has {n} fields, the header {header} ({why})")
    return data


def _fields_per_line(data: bytes) -> list[tuple[int, int]]:
    """``(line number, fields)`` of every non-blank line of an unquoted CSV (vectorised).

    ``data`` ends with a newline; memory is one byte per character plus a few per line.
    """
    buf = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(buf == ord("\n"))
    starts = np.concatenate([[0], ends[:-1] + 1])
    length = ends - starts - (buf[np.maximum(ends - 1, 0)] == ord("\r"))
    # commas per line: each line runs from its start to its newline (never empty)
    fields = np.add.reduceat(buf == ord(","), starts, dtype=np.int64) + 1
    keep = np.flatnonzero(length > 0)
    return list(zip((keep + 1).tolist(), fields[keep].tolist(), strict=True))


def _fields_quoted(data: bytes) -> list[tuple[int, int]]:
    """``(line number, fields)`` of every non-blank record, honouring quotes."""
    reader = csv.reader(StringIO(data.decode("utf-8", errors="replace"), newline=""))
    return [(reader.line_num, len(row)) for row in reader if row]


def write_table(df: pd.DataFrame, path: str | Path) -> Path:
    """Write a table atomically (temporary name, then rename); format by extension.

    Parquet files carry page checksums (verified by :func:`read_table`).

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
    return io.write_with(p, lambda tmp: df.to_parquet(tmp, index=False, write_page_checksum=True))
