"""Variables: GRIB names -> canonical names and units, and the derived variables.

Canonical predictors built by :mod:`probcast.sources`: the :data:`probcast.schema.VARIABLES`
surface variables (``t2m``, ``td2m``, ``u10``, ``v10``, ``ws10``, ``msl``, ``sp``, ``tcc``,
``tp``) plus ``rh`` (relative humidity, fraction), ``wdir10`` (10 m wind direction,
degrees, meteorological: where the wind blows *from*, 0 = north, 90 = east), ``gust``
(10 m gust, m s-1) and ``orog`` (model surface height, m).
"""

from __future__ import annotations

import numpy as np

from probcast.schema import VARIABLES, to_canonical_units
from probcast.sources.errors import SourceError

G0 = 9.80665
"""Standard gravity (m s-2): surface geopotential / G0 = orography height."""

EXTRA_UNITS = {"rh": "1", "wdir10": "degree", "gust": "m s-1", "orog": "m"}
EXTRA_RANGES = {"rh": (0.0, 1.05), "wdir10": (0.0, 360.0), "gust": (0.0, 100.0)}
SUPPORTED = (*VARIABLES, *EXTRA_UNITS)
"""Every variable a build can ask for."""

DERIVED = {"ws10": ("u10", "v10"), "wdir10": ("u10", "v10"), "rh": ("t2m", "td2m")}
"""Derived variable -> the variables it is computed from when the source lacks it."""

# ecCodes shortName -> canonical name (surface and height-above-ground fields only).
GRIB_NAMES: dict[str, str] = {
    "2t": "t2m",
    "2d": "td2m",
    "2r": "rh",
    "10u": "u10",
    "10v": "v10",
    "10si": "ws10",
    "10wdir": "wdir10",
    "10fg": "gust",
    "10fg1": "gust",
    "10fg3": "gust",
    "10fg6": "gust",
    "i10fg": "gust",
    "fg10": "gust",
    "gust": "gust",
    "msl": "msl",
    "prmsl": "msl",
    "mslma": "msl",
    "sp": "sp",
    "tcc": "tcc",
    "tp": "tp",
    "z": "orog",
    "orog": "orog",
}
_LEVELS = {"surface", "heightAboveGround", "meanSea", "entireAtmosphere", "atmosphere"}


def grib_variable(short_name: str, level_type: str) -> str | None:
    """Canonical name of a GRIB field, or None when it is not a surface variable we use."""
    if level_type not in _LEVELS:
        return None
    return GRIB_NAMES.get(short_name)


def to_canonical(values: np.ndarray, units: str, variable: str, *, source: str) -> np.ndarray:
    """Convert ``values`` in ``units`` to the canonical units of ``variable``."""
    if variable in VARIABLES:
        return to_canonical_units(values, units, variable, source=source)
    arr = np.asarray(values, dtype="float64")
    u = units.strip().lower()
    if variable == "rh":
        return arr / 100.0 if u in ("%", "percent") else arr
    if variable == "orog":
        return arr / G0 if u in ("m**2 s**-2", "m2 s-2", "m^2/s^2") else arr
    if variable in EXTRA_UNITS:
        return arr
    raise SourceError(f"{source}: unknown variable {variable!r}; known: {sorted(SUPPORTED)}")


def wind_speed(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Wind speed from components."""
    return np.hypot(np.asarray(u, dtype="float64"), np.asarray(v, dtype="float64"))


def wind_direction(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Meteorological direction (degrees, where the wind blows from); NaN for calm.

    A wind *from* the north has v < 0: direction = atan2(-u, -v) mod 360. A direction is
    undefined at zero speed, so calm gives NaN rather than an arbitrary 0 or 180.
    """
    u = np.asarray(u, dtype="float64")
    v = np.asarray(v, dtype="float64")
    direction = np.degrees(np.arctan2(-u, -v)) % 360.0
    return np.where(np.hypot(u, v) > 0, direction, np.nan)


def saturation_vapour_pressure(t_kelvin: np.ndarray) -> np.ndarray:
    """Saturation vapour pressure over water (hPa), Magnus form (Alduchov & Eskridge 1996)."""
    tc = np.asarray(t_kelvin, dtype="float64") - 273.15
    return 6.1094 * np.exp(17.625 * tc / (tc + 243.04))


def relative_humidity(t_kelvin: np.ndarray, td_kelvin: np.ndarray) -> np.ndarray:
    """Relative humidity (fraction) from temperature and dew point, e(td) / es(t)."""
    return saturation_vapour_pressure(td_kelvin) / saturation_vapour_pressure(t_kelvin)


def derive(values: dict[str, np.ndarray], wanted: list[str]) -> dict[str, np.ndarray]:
    """Add the derived variables in ``wanted`` that ``values`` lacks but can compute.

    Args:
        values: Canonical variable -> values (canonical units).
        wanted: Variables asked for.

    Returns:
        A new dict with the derived variables added.
    """
    out = dict(values)
    for var in wanted:
        if var in out or var not in DERIVED:
            continue
        a, b = DERIVED[var]
        if a not in out or b not in out:
            continue
        if var == "ws10":
            out[var] = wind_speed(out[a], out[b])
        elif var == "wdir10":
            out[var] = wind_direction(out[a], out[b])
        else:
            out[var] = relative_humidity(out[a], out[b])
    return out


def needed(wanted: list[str]) -> list[str]:
    """Variables to read from a source for ``wanted`` (derived ones add their inputs)."""
    out: list[str] = []
    for var in wanted:
        if var not in SUPPORTED:
            raise SourceError(
                f"variables: unknown variable {var!r}; expected one of {sorted(SUPPORTED)}"
            )
        for v in (var, *DERIVED.get(var, ())):
            if v not in out:
                out.append(v)
    return out
