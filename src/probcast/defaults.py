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


COMBINES = ("vincentize", "mixture")
"""Pools of seed networks: quantile averaging (``vincentize``) or the ``mixture``."""


def check_combine(combine: str) -> str:
    """Validate a ``config.predict.combine`` value (one of :data:`COMBINES`)."""
    if combine not in COMBINES:
        raise ValueError(f"predict.combine must be one of {COMBINES}, got {combine!r}")
    return combine


PRODUCT_RESOLUTION: dict[str, float] = {
    "t2m": 0.05,  # K
    "td2m": 0.05,
    "tmax": 0.05,
    "tmin": 0.05,
    "u10": 0.05,  # m s-1
    "v10": 0.05,
    "ws10": 0.05,
    "msl": 5.0,  # Pa
    "sp": 5.0,
    "tcc": 0.005,  # fraction
}
"""Coarsest spacing of the stored values of gridded products, in canonical units (K, m s-1,
kg m-2, Pa, fraction), converted to each product's own units by the writer.

Bit rounding keeps whatever more bits a value needs for a step no larger than this
(:mod:`probcast.products.compress`): the information criterion alone kept 8 bits of a
temperature in K (a 1 K step at 280 K). Half the resolution WMO reports observations at
(WMO-No. 8, *Guide to Instruments and Methods of Observation*, Vol. I, Annex 1.A: air and
dew-point temperature 0.1 K, pressure 0.1 hPa, precipitation 0.1 mm) and half NBM's whole
percent for cloud cover, so rounding adds at most a quarter of the reported resolution.
Wind is held to 0.05 m s-1, ten times finer than WMO's 0.5 m s-1, because the information
criterion's rounding of u10/v10/ws10 in knots or m s-1 changed the gridded CRPS by up to 4 %
(0.566 against 0.588 m s-1). Precipitation has no floor: an amount is non-negative with no
offset, so the relative precision the information criterion keeps is its precision (a floor
of 0.05 mm took the real GFS/NAM products from 12.6x to 8.2x smaller than float32, and the
ICP WRF ones from 32.9x to 19.8x). Probabilities have their own step
(``probability_precision``)."""
