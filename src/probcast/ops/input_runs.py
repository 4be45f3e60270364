"""Which NWP runs a cycle's input holds: a stale or misnamed file is never published.

A cycle's input is found by its file name (``inputs/{cycle:%Y%m%d%H}.nc``); nothing in the
name says what is inside. :func:`check_runs` opens it (the reference times only: a table's
``init_time`` column; a grid's reference time as the gridded reader finds it,
:func:`probcast.ingest.normalise.to_time_axes`: ``forecast_reference_time``,
``reference_time``, cfgrib's ``time`` next to a ``step``, ...; the ``dataDate``/``dataTime``
of a GRIB file's first messages) and refuses an input whose runs are not the cycle, and an
input that cannot be opened yet (a NetCDF file still being written).
"""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path

import pandas as pd

GRIB_MESSAGES = 50
"""GRIB messages read for their reference time (every message of one run has it)."""


class InputRunsError(ValueError):
    """The input's runs are not the cycle's, or it cannot be read."""


def input_runs(path: str | Path) -> list[pd.Timestamp] | None:
    """The reference times (UTC) of the runs in an input, ``None`` when it has none named.

    Raises:
        InputRunsError: The file cannot be opened (incomplete, damaged).
    """
    path = Path(path)
    values: pd.Series | list[object] | None
    try:
        if path.suffix.lower() in (".csv", ".parquet", ".pq", ".gz"):
            values = _table_runs(path)
        else:
            values = _grid_runs(path)
        if values is None:
            return None
        series = pd.Series(values)
        if pd.api.types.is_numeric_dtype(series):
            raise ValueError("init_time holds numbers, not times")
        text = pd.api.types.is_string_dtype(series) or pd.api.types.is_object_dtype(series)
        iso = "ISO8601" if text else None  # as validate reads times
        times = pd.to_datetime(series, utc=True, format=iso).dropna().unique()
    except Exception as err:  # eccodes' errors are plain Exceptions; a file still written
        raise InputRunsError(f"input {path} cannot be read yet ({err})") from None
    return sorted(pd.Timestamp(t) for t in times)


def _table_runs(path: Path) -> pd.Series | None:
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        if "init_time" not in pq.read_schema(path).names:
            return None
        return pd.read_parquet(path, columns=["init_time"])["init_time"]
    if "init_time" not in pd.read_csv(path, nrows=0).columns:
        return None
    return pd.read_csv(path, usecols=["init_time"])["init_time"]


def _grid_runs(path: Path) -> list[object] | None:
    from probcast.ingest.gridded import sniff_format

    fmt = sniff_format(path)
    if fmt == "grib":
        return _grib_runs(path)
    if fmt not in ("netcdf4", "netcdf3", "zarr"):
        return None
    import xarray as xr

    from probcast.ingest.errors import GriddedReadError
    from probcast.ingest.normalise import FRT, tidy_dims, to_time_axes

    engine = "zarr" if fmt == "zarr" else None
    with xr.open_dataset(path, engine=engine, decode_timedelta=True) as ds:
        try:  # the reference time as the reading path names it (cfgrib's 'time' + 'step', ...)
            axes = to_time_axes(tidy_dims(ds), path)
        except GriddedReadError:
            return None  # no time named: the reading path says what is missing
        return list(axes[FRT].values.ravel())


def _grib_runs(path: Path) -> list[object]:
    import eccodes

    from probcast.sources.grib import message_headers

    out: set[str] = set()
    with open(path, "rb") as fh:
        for handle in itertools.islice(message_headers(fh, str(path)), GRIB_MESSAGES):
            date = eccodes.codes_get_long(handle, "dataDate")
            out.add(f"{date:08d}T{eccodes.codes_get_long(handle, 'dataTime'):04d}")
    return [pd.Timestamp(datetime.strptime(v, "%Y%m%dT%H%M")) for v in sorted(out)]


def check_runs(path: str | Path, cycle: datetime) -> None:
    """Refuse an input whose runs are not ``cycle`` (an input naming none passes).

    Raises:
        InputRunsError: Naming the file, the runs it holds and the cycle.
    """
    runs = input_runs(path)
    want = pd.Timestamp(cycle).tz_localize("UTC") if cycle.tzinfo is None else pd.Timestamp(cycle)
    if runs is None or runs == [want.tz_convert("UTC")]:
        return
    held = ", ".join(t.strftime("%Y-%m-%dT%HZ") for t in runs[:5]) or "none"
    more = f" (and {len(runs) - 5} more)" if len(runs) > 5 else ""
    raise InputRunsError(
        f"input {path} holds the run(s) {held}{more}, not the cycle "
        f"{want.strftime('%Y-%m-%dT%HZ')}: a stale or misnamed file (not published)"
    )
