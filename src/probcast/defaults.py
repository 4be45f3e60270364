"""Domain defaults, one home each: member count, percentiles and thresholds.

Every command, the runner, the products and the verification read them from here
(WeatherBench2 keeps its thresholds the same way), so a default changes in one place.
Thresholds are in canonical units (K, kg m-2, m s-1, Pa, fraction).
"""

from __future__ import annotations

import numpy as np

MEMBERS = 51
"""Ensemble members drawn when a caller asks for members without a count (ECMWF ENS size)."""

QUANTILES: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
"""Quantile levels written for station tables when none are given (the demo's set)."""

GRID_PERCENTILES: tuple[float, ...] = (5.0, 25.0, 50.0, 75.0, 95.0)
"""Percentiles (%) of a gridded prediction when none are given."""

PRODUCT_PERCENTILES: tuple[float, ...] = tuple(float(p) for p in range(5, 100, 5))
"""Percentiles (%) of :func:`probcast.products.build_percentiles`: 5 % to 95 % by 5."""

EVENT_THRESHOLDS: dict[str, tuple[float, ...]] = {
    "tp": (0.1, 1.0, 5.0),  # kg m-2 (mm): wet, moderate, heavy
    "t2m": (273.15,),  # K: frost
    "td2m": (273.15,),
    "tmin": (273.15,),
    "tmax": (303.15,),  # K: hot day (30 degC)
    "ws10": (10.0,),  # m s-1: strong breeze
    "tcc": (0.5,),  # fraction: mostly cloudy
}
"""A few events per variable, scored with the Brier score when a caller gives none."""

PRODUCT_THRESHOLDS: dict[str, tuple[float, ...]] = {
    "t2m": tuple(round(float(t), 2) for t in np.arange(253.15, 313.16, 5.0)),
    "td2m": tuple(round(float(t), 2) for t in np.arange(243.15, 303.16, 5.0)),
    "tmax": tuple(round(float(t), 2) for t in np.arange(263.15, 318.16, 5.0)),
    "tmin": tuple(round(float(t), 2) for t in np.arange(243.15, 303.16, 5.0)),
    "u10": (-20.0, -10.0, -5.0, 0.0, 5.0, 10.0, 20.0),
    "v10": (-20.0, -10.0, -5.0, 0.0, 5.0, 10.0, 20.0),
    "ws10": (2.5, 5.0, 10.0, 15.0, 20.0, 25.0),
    "tp": (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0),
    "msl": (97000.0, 99000.0, 101000.0, 103000.0),
    "sp": (80000.0, 90000.0, 100000.0),
    "tcc": (0.125, 0.375, 0.625, 0.875),
}
"""Exceedance thresholds of gridded probability products when a caller gives none (a
range per variable, IMPROVER style; the event thresholds are among them)."""
