"""Time-of-day and time-of-year encodings of the valid time (features of the network).

The hour of day (minutes included) and, when the training period covers most of a year
(:func:`probcast.features.use_day_of_year`), the day of year, as points on the unit circle
so that 23 h and 0 h, 31 December and 1 January are neighbours.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def cyclic(valid_time: pd.Series, doy: bool = True) -> np.ndarray:
    """``[sin, cos]`` of the hour of day (and day of year) of ``valid_time``: ``(n, 2 or 4)``."""
    vt = pd.to_datetime(valid_time, utc=True)
    hour = (vt.dt.hour + vt.dt.minute / 60.0).to_numpy(dtype="float64") / 24.0
    cols = [hour]
    if doy:
        cols.append((vt.dt.day_of_year.to_numpy(dtype="float64") - 1.0) / 365.25)
    ang = 2.0 * np.pi * np.stack(cols, axis=1)
    return np.concatenate([np.sin(ang), np.cos(ang)], axis=1)
