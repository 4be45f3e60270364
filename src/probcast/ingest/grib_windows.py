"""The hours accumulated and extreme GRIB fields cover: their statistic periods.

A GRIB message of an accumulation (``stepType`` ``accum``), a maximum or a minimum states
its window, ``startStep``-``endStep`` (``stepRange``: ``0-12``, ``11-12``). ECMWF's GRIB1
``tp`` is written at a single step (``stepType`` ``instant``): it is the amount since the
start, window ``0-step``, as :mod:`probcast.sources.cycle` reads it. cfgrib indexes a field
by its end step only, so the window is lost; of two windows ending at the same step (a
HRRR file's ``0-12`` and ``11-12``) it reads the first message in the file.

:func:`scan` reads every message's header (and refuses a corrupted file). :func:`stated`
gives, for the fields cfgrib read, what to record as the dataset's periods
(:mod:`probcast.periods`): the hours of the windows when every step covers as many;
otherwise (amounts since the start: ``0-6``, ``0-12``, ...) a statement that
:func:`probcast.periods.parse` refuses, so that prediction refuses such a field. Where a
step had several windows, the one read is confirmed from the values (decoded again) and
named on the field (``grib_step_range``, ``comment``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from probcast.ingest.errors import GriddedReadError
from probcast.ingest.normalise import identify
from probcast.periods import FROM_START, STATISTICS, from_start

log = logging.getLogger(__name__)

STEP_TYPES = {"tp": ("accum", "instant"), "tmax": ("max",), "tmin": ("min",)}
"""GRIB ``stepType`` of the fields each statistic is read from (``tp`` instant: ECMWF)."""


@dataclass(frozen=True)
class Message:
    """One GRIB message's field, run, step window (hours) and byte offset."""

    field: tuple[str, str, str]  # shortName, typeOfLevel, stepType
    slot: tuple[Any, ...]  # dataDate, dataTime, level, number, end (min): one cfgrib field
    start: float
    end: float
    offset: int

    @property
    def window(self) -> str:
        """``0-12`` (hours)."""
        return f"{self.start:g}-{self.end:g}"


def _get(handle: Any, key: str) -> Any:
    import eccodes

    try:
        return eccodes.codes_get(handle, key) if eccodes.codes_is_defined(handle, key) else None
    except Exception:  # a key eccodes cannot decode in this message
        return None


def _message(handle: Any, offset: int) -> Message:
    import eccodes

    keys = ("shortName", "typeOfLevel", "stepType", "dataDate", "dataTime", "level", "number")
    got = [_get(handle, k) for k in keys]  # first: a name can depend on the step units
    try:
        eccodes.codes_set_string(handle, "stepUnits", "m")  # start/end in minutes
        start, end = (float(eccodes.codes_get_long(handle, k)) for k in ("startStep", "endStep"))
    except Exception:  # months, years: no window in hours
        start = end = float("nan")
    field = (str(got[0]), str(got[1]), str(got[2]))
    return Message(field, (*got[3:], end), start / 60.0, end / 60.0, offset)


def scan(path: Path) -> list[Message]:
    """Every GRIB message's header, in file order.

    cfgrib skips corrupted messages with a warning, which would silently return partial
    data; this scan makes corruption and truncation an error instead.

    Raises:
        GriddedReadError: A message cannot be decoded, or there is none.
    """
    import eccodes

    out: list[Message] = []
    with open(path, "rb") as f:
        while True:
            offset = f.tell()
            try:
                handle = eccodes.codes_grib_new_from_file(f)
            except Exception as err:
                raise GriddedReadError(
                    f"{path}: corrupted or truncated GRIB: message {len(out) + 1} at byte "
                    f"{offset} cannot be decoded ({type(err).__name__}: {err}); expected "
                    "complete GRIB messages"
                ) from None
            if handle is None:
                break
            try:
                out.append(_message(handle, offset))
            finally:
                eccodes.codes_release(handle)
    if not out:
        raise GriddedReadError(f"{path}: no GRIB message found; expected GRIB1/2 messages")
    return out


def _decoded(path: Path, offset: int) -> np.ndarray:
    import eccodes

    with open(path, "rb") as f:
        f.seek(offset)
        handle = eccodes.codes_grib_new_from_file(f)
        try:
            values = np.asarray(eccodes.codes_get_values(handle), dtype="float64")
            values[values == eccodes.codes_get_double(handle, "missingValue")] = np.nan
        finally:
            eccodes.codes_release(handle)
    return values


def _read(path: Path, da: xr.DataArray, candidates: list[Message]) -> Message:
    """Which of ``candidates`` (one step's windows) cfgrib read into ``da``.

    The first in the file (cfgrib's rule) unless the values show another one.
    """
    date, hhmm, _, number, end = candidates[0].slot
    where: dict[str, Any] = {"step": np.timedelta64(int(end), "m"), "number": number}
    if date is not None and hhmm is not None:
        run = datetime.strptime(f"{int(date):08d}{int(hhmm):04d}", "%Y%m%d%H%M")
        where["time"] = np.datetime64(run, "ns")
    try:
        held = da.sel({k: v for k, v in where.items() if k in da.dims}).values.ravel()
    except (KeyError, ValueError, TypeError):
        return candidates[0]
    for message in candidates:
        values = _decoded(path, message.offset)
        if values.size == held.size and np.allclose(
            held, values.astype(held.dtype), rtol=1e-6, atol=0.0, equal_nan=True
        ):
            return message
    return candidates[0]


def _statement(var: str, read: list[Message]) -> float | str | None:
    """The period of ``var`` from the windows read (one per step), or why there is none."""
    hours = {m.end - m.start for m in read}
    if any(np.isnan(h) for h in hours) or hours == {0.0}:
        return None  # no window stated (or a field at the start only)
    if len(hours) == 1:
        return hours.pop()
    if var == "tp" and all(m.start == 0 for m in read):
        return (
            f"accumulated since the start of the forecast ({_shown(read)}), not over a fixed "
            "period: de-accumulate it first (probcast data build does it)"
        )
    what = "de-accumulate it to" if var == "tp" else "select the steps of"
    return (
        f"over windows of different lengths ({_shown(read)}), not a fixed period: {what} "
        "one period first"
    )


def _shown(read: list[Message]) -> str:
    """``0-1 h, 0-2 h, ..., 0-24 h``."""
    windows = sorted({(m.end, m.start) for m in read})
    shown = [f"{a:g}-{b:g} h" for b, a in windows]
    return ", ".join(shown if len(shown) <= 4 else [*shown[:2], "...", shown[-1]])


def _windows(var: str, messages: list[Message], field: tuple[str, str, str]) -> list[list[Message]]:
    """The messages of ``field``, by cfgrib field (run, level, member, end step)."""
    slots: dict[tuple[Any, ...], list[Message]] = {}
    for m in messages:
        if m.field == field:
            if var == "tp" and field[2] == "instant" and m.start == m.end:
                m = replace(m, start=0.0)  # ECMWF: the amount since the start
            slots.setdefault(m.slot, []).append(m)
    return list(slots.values())


def stated(
    path: Path, parts: list[xr.Dataset], messages: list[Message], ds: xr.Dataset, prefix: str
) -> dict[str, float | str]:
    """What the GRIB file states of the periods of the statistics in ``ds``.

    Args:
        path: The file.
        parts: cfgrib's datasets, in the order :func:`probcast.ingest.gridded.open_gridded`
            merges them (the first one holding a variable gives it).
        messages: :func:`scan` of the file.
        ds: The dataset read; its ``<prefix><var>`` fields get ``grib_step_range`` (the
            windows read) and, where a step had several, a ``comment`` naming the others;
            amounts since the start are listed in its :data:`probcast.periods.FROM_START`.
        prefix: ``fc_`` or ``obs_``.

    Returns:
        Variable -> hours, or the statement that the field has no fixed period (see the
        module doc); nothing for a field whose window the file does not state.
    """
    out: dict[str, float | str] = {}
    for var in STATISTICS:
        name = f"{prefix}{var}"
        da = next((p[n] for p in parts for n in p.data_vars if identify(str(n), p[n]) == var), None)
        if name not in ds or da is None or da.attrs.get("GRIB_stepType") not in STEP_TYPES[var]:
            continue
        field = (str(da.attrs.get("GRIB_shortName")), str(da.attrs.get("GRIB_typeOfLevel")))
        read: list[Message] = []
        others: set[str] = set()
        for candidates in _windows(var, messages, (*field, str(da.attrs["GRIB_stepType"]))):
            windows = {m.window for m in candidates}
            read.append(_read(path, da, candidates) if len(windows) > 1 else candidates[0])
            others |= windows - {read[-1].window}
        period = _statement(var, read) if read else None
        if period is None:
            continue
        out[var] = period
        if isinstance(period, str) and var == "tp" and all(m.start == 0 for m in read):
            ds.attrs[FROM_START] = json.dumps([*from_start(ds.attrs), var])
        ds[name].attrs["grib_step_range"] = _shown(read).replace(" h", "")
        if others:
            note = f"the file also holds {var} over {', '.join(sorted(others))} h, not read"
            ds[name].attrs["comment"] = note
            log.warning(
                "%s: %s read over %s h; %s", path, var, ds[name].attrs["grib_step_range"], note
            )
    return out
