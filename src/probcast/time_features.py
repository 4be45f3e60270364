"""Time-of-day and time-of-year encodings of the valid time (features of the network).

The hour of day (minutes included) and, when the training period covers most of a year
(:func:`use_day_of_year`), the day of year, as points on the unit circle
so that 23 h and 0 h, 31 December and 1 January are neighbours.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

MIN_DOY_SPAN_DAYS = 330.0
"""Shortest training period (days of valid time) for the automatic day-of-year feature."""


def cyclic(valid_time: pd.Series, doy: bool = True) -> np.ndarray:
    """``[sin, cos]`` of the hour of day (and day of year) of ``valid_time``: ``(n, 2 or 4)``.

    NaN where the time is missing.
    """
    vt = pd.to_datetime(valid_time, utc=True)
    missing = vt.isna().to_numpy()
    ns = vt.to_numpy(dtype="datetime64[ns]", na_value=np.datetime64("NaT")).view("int64")
    out = cyclic_ns(np.where(missing, 0, ns), doy)
    out[missing] = np.nan
    return out


def cyclic_ns(ns: np.ndarray, doy: bool = True) -> np.ndarray:
    """:func:`cyclic` of UTC times given as int64 nanoseconds since 1970 (none missing)."""
    t = pd.DatetimeIndex(np.asarray(ns, "int64").view("datetime64[ns]"))
    cols = [(t.hour + t.minute / 60.0).to_numpy(dtype="float64") / 24.0]
    if doy:
        cols.append((t.day_of_year.to_numpy(dtype="float64") - 1.0) / 365.25)
    ang = 2.0 * np.pi * np.stack(cols, axis=1)
    return np.concatenate([np.sin(ang), np.cos(ang)], axis=1)


def use_day_of_year(valid_time: Any, option: Any = "auto") -> bool:
    """Whether the day of year is a feature (``config.features.day_of_year``).

    ``"auto"`` keeps it only when the training valid times ``valid_time`` span at least
    :data:`MIN_DOY_SPAN_DAYS`: from a shorter period (e.g. two autumn months) the network
    can only learn a trend within that period and extrapolate it into the test season.
    ``True``/``False`` (or ``"true"``/``"false"``) force it.
    """
    text = str(option).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    if text != "auto":
        raise ValueError(f"features.day_of_year must be 'auto', 'true' or 'false', got {option!r}")
    vt = pd.to_datetime(pd.Series(valid_time), utc=True)
    if not len(vt):
        return False
    span = (vt.max() - vt.min()) / pd.Timedelta(days=1)
    return bool(span >= MIN_DOY_SPAN_DAYS)
