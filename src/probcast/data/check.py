"""Check and split one's own data: ``probcast data check`` and ``probcast data split``.

``check`` validates a canonical station table (CSV/Parquet) or gridded dataset (NetCDF,
Zarr) and prints the summary ``probcast data prepare`` gives for the registry sets. A grid
is read as ``probcast train`` reads it (:func:`probcast.align.points.open_grid`: units and
values checked by :func:`probcast.ingest.grid_values.check_grid`), so it fails here with
the message training would give.
``split`` cuts a station table into ``train.parquet`` and ``test.parquet`` at a date, with
the leakage guard of the registry splits (:func:`probcast.split.time_split`), and writes
the two as one set (:mod:`probcast.fileset`): never a new part beside an old one.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pandas as pd

from probcast.schema import FC_PREFIX, OBS_PREFIX, TABLE_SUFFIXES
from probcast.validate import ValidationError

GRID_SUFFIXES = (".nc", ".nc4", ".netcdf", ".zarr")


class CheckError(ValueError):
    """A file that cannot be checked or split (the message names the file and the problem)."""


def _existing(path: str | Path, *, allow_dir: bool = False) -> Path:
    p = Path(path)
    if not p.exists():
        raise CheckError(f"{p}: no such file")
    if p.is_dir() and not (allow_dir and p.suffix.lower() == ".zarr"):
        raise CheckError(f"{p}: is a directory; expected a station table (CSV/Parquet) file")
    return p


def _targets(columns: list[str]) -> list[str]:
    """Variables with an ``obs_<var>`` column (those with a raw forecast first)."""
    obs = [c.removeprefix(OBS_PREFIX) for c in columns if c.startswith(OBS_PREFIX)]
    return sorted(obs, key=lambda v: (FC_PREFIX + v not in columns, v))


def read_station_table(path: str | Path) -> pd.DataFrame:
    """Read and validate a station table; every failure is a :class:`CheckError`.

    Args:
        path: CSV or Parquet file.

    Returns:
        The validated table (canonical dtypes).

    Raises:
        CheckError: Missing file, a directory, unknown suffix, unreadable or invalid content.
    """
    from probcast.ingest.tables import read_table

    p = _existing(path)
    if p.suffix.lower() not in TABLE_SUFFIXES:
        raise CheckError(
            f"{p}: unknown table format {p.suffix!r}; expected one of {', '.join(TABLE_SUFFIXES)}"
        )
    try:
        return read_table(p)
    except ValidationError as err:
        raise CheckError(str(err)) from None
    except (OSError, ValueError) as err:  # truncated Parquet, unparseable CSV, ...
        raise CheckError(f"{p}: cannot read as {p.suffix.lstrip('.')}: {err}") from None


def _column(stats: dict[str, str]) -> list[str]:
    width = max(len(k) for k in stats) + 2
    return [f"  {k:<{width}}{v}" for k, v in stats.items()]


def _check_grid(p: Path) -> str:
    """Read the grid as training and prediction do: the same unit and value checks."""
    from probcast.align.points import open_grid
    from probcast.data.summary import grid_stats
    from probcast.ingest.errors import GriddedReadError

    try:
        ds = open_grid(p)  # open_gridded or lazy xarray, then ingest.grid_values.check_grid
    except GriddedReadError as err:
        raise CheckError(str(err)) from None
    targets = _targets([str(v) for v in ds.data_vars])
    head = f"{p}: valid gridded dataset, targets: {', '.join(targets) or '-'}"
    return "\n".join([head, "", *_column(grid_stats(ds, targets))])


def check(path: str | Path) -> str:
    """Validate a station table or gridded dataset and return its summary.

    Args:
        path: Station table (CSV/Parquet) or gridded dataset (NetCDF/Zarr).

    Returns:
        Several lines: a verdict, the statistics ``probcast data prepare`` prints per part
        (rows, stations, period, lead times, missing fractions, MAE of the raw forecast)
        and the non-fatal findings of :func:`probcast.validate.validation_report`.

    Raises:
        CheckError: The file is missing, unreadable or fails validation.
    """
    p = _existing(path, allow_dir=True)
    if p.suffix.lower() in GRID_SUFFIXES:
        return _check_grid(p)
    from probcast.data.summary import station_stats
    from probcast.validate import validation_report

    df = read_station_table(p)
    targets = _targets([str(c) for c in df.columns])
    head = f"{p}: valid station table, targets: {', '.join(targets) or '-'}"
    lines = [head, "", *_column(station_stats(df, targets))]
    findings = validation_report(df)[1:]  # the first line repeats the size
    if findings:
        lines += ["", "findings:", *(f"  - {f}" for f in findings)]
    return "\n".join(lines)


@dataclass
class SplitResult:
    """The two parts written by :func:`split_file`, with their paths."""

    train: pd.DataFrame
    test: pd.DataFrame
    dropped: int
    paths: dict[str, Path]

    def summary(self) -> str:
        """A few lines: rows per part, the leakage rows dropped and the written files."""
        lines = []
        for part, df in (("train", self.train), ("test", self.test)):
            inits = df["init_time"]
            span = f"{inits.min():%Y-%m-%d %H:%M} .. {inits.max():%Y-%m-%d %H:%M}"
            lines.append(f"{part}: {len(df)} rows, init {span} -> {self.paths[part]}")
        lines.append(
            f"dropped {self.dropped} training rows whose valid time reaches the test period"
        )
        return "\n".join(lines)


def parse_date(text: str) -> pd.Timestamp:
    """An ISO date or time as a UTC timestamp (naive times are UTC)."""
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError) as err:
        raise CheckError(f"--test-from: not an ISO date or time: {text!r} ({err})") from None
    if ts is pd.NaT:
        raise CheckError(f"--test-from: not an ISO date or time: {text!r}")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def split_file(path: str | Path, test_from: str, out_dir: str | Path) -> SplitResult:
    """Split a station table at ``test_from`` into ``train.parquet`` and ``test.parquet``.

    Test holds the runs initialised at or after ``test_from``; train the runs initialised
    before it whose valid time is before it too (no training truth inside the test period),
    as for the registry splits.

    Args:
        path: Station table (CSV/Parquet).
        test_from: First initialisation time of the test period (ISO date or time, UTC).
        out_dir: Folder of the two files (created). They are written as one set
            (:func:`probcast.fileset.write_set`): a failed or interrupted run leaves the
            previous pair, or part of the new one, never a new part beside an old one.

    Returns:
        The two parts and their paths.

    Raises:
        CheckError: Unreadable or invalid table, bad date, or an empty part.
    """
    from probcast.fileset import write_set
    from probcast.ingest.tables import write_table
    from probcast.split import time_split

    start = parse_date(test_from)
    df = read_station_table(path)
    train, test = time_split(df, start)
    parts = {"train": train, "test": test}
    first, last = df["init_time"].min(), df["init_time"].max()
    for part, rows in parts.items():
        if rows.empty:
            raise CheckError(
                f"{path}: --test-from {start:%Y-%m-%d %H:%M} leaves no {part} rows "
                f"(init times run from {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M})"
            )
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise CheckError(f"{out}: exists and is not a directory")
    written = write_set(
        out,
        {f"{part}.parquet": partial(write_table, rows) for part, rows in parts.items()},
    )
    paths = {part: written[f"{part}.parquet"] for part in parts}
    dropped = int((df["init_time"] < start).sum()) - len(train)
    return SplitResult(train, test, dropped, paths)
