"""Canonical variable names, CF units and the one unit-conversion table.

Every reader normalises names and units here, right after reading; nothing downstream
guesses a variable name or a unit. See docs/data-model.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

KEY_COLUMNS = ("station", "init_time", "lead_time")
"""Primary key of the canonical station table."""

STATIC_COLUMNS = ("latitude", "longitude", "altitude")
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
"""File suffixes of station tables (CSV or Parquet)."""
FC_PREFIX = "fc_"
OBS_PREFIX = "obs_"


@dataclass(frozen=True)
class Variable:
    """A canonical variable.

    Attributes:
        name: Canonical short name (``t2m``).
        units: CF canonical units.
        standard_name: CF standard name.
        long_name: Human-readable name.
        valid_min: Smallest physically plausible value in ``units``.
        valid_max: Largest physically plausible value in ``units``.
        kind: Distribution family hint: ``real``, ``nonneg`` (censored at 0, e.g.
            precipitation), ``positive`` (wind speed) or ``fraction`` (bounded in [0, 1]).
    """

    name: str
    units: str
    standard_name: str
    long_name: str
    valid_min: float
    valid_max: float
    kind: str = "real"


VARIABLES: dict[str, Variable] = {
    v.name: v
    for v in (
        Variable("t2m", "K", "air_temperature", "2 m air temperature", 180.0, 340.0),
        Variable("td2m", "K", "dew_point_temperature", "2 m dew point temperature", 160.0, 320.0),
        Variable("tmax", "K", "air_temperature", "maximum 2 m air temperature", 180.0, 345.0),
        Variable("tmin", "K", "air_temperature", "minimum 2 m air temperature", 170.0, 340.0),
        Variable("u10", "m s-1", "eastward_wind", "10 m eastward wind", -100.0, 100.0),
        Variable("v10", "m s-1", "northward_wind", "10 m northward wind", -100.0, 100.0),
        Variable("ws10", "m s-1", "wind_speed", "10 m wind speed", 0.0, 100.0, "positive"),
        Variable(
            "tp",
            "kg m-2",
            "precipitation_amount",
            "precipitation amount",
            0.0,
            1000.0,
            "nonneg",
        ),
        Variable(
            "msl",
            "Pa",
            "air_pressure_at_mean_sea_level",
            "mean sea-level pressure",
            85000.0,
            110000.0,
        ),
        Variable("sp", "Pa", "surface_air_pressure", "surface pressure", 45000.0, 110000.0),
        Variable("tcc", "1", "cloud_area_fraction", "total cloud cover", 0.0, 1.0, "fraction"),
    )
}

# Common aliases seen in NWP files and station tables -> canonical name.
ALIASES: dict[str, str] = {
    "2t": "t2m",
    "t2": "t2m",
    "tmp2m": "t2m",
    "temperature": "t2m",
    "air_temperature": "t2m",
    "2d": "td2m",
    "d2m": "td2m",
    "dpt2m": "td2m",
    "dewpoint": "td2m",
    "dew_point_temperature": "td2m",
    "10u": "u10",
    "10v": "v10",
    "10si": "ws10",
    "si10": "ws10",
    "ws": "ws10",
    "wind_speed": "ws10",
    "precip": "tp",
    "precipitation": "tp",
    "apcp": "tp",
    "rain": "tp",
    "precipitation_amount": "tp",
    "prmsl": "msl",
    "mslp": "msl",
    "pres": "sp",
    "surface_air_pressure": "sp",
    "tcdc": "tcc",
    "cloud_cover": "tcc",
    "cloud_area_fraction": "tcc",
}


def canonical_name(name: str) -> str:
    """Return the canonical variable name for ``name`` (case-insensitive alias lookup).

    Args:
        name: A variable name as found in a file.

    Returns:
        The canonical name, or ``name`` lower-cased when it is unknown.
    """
    key = name.strip().lower()
    if key in VARIABLES:
        return key
    return ALIASES.get(key, key)


def _affine(scale: float, offset: float = 0.0) -> Callable[[np.ndarray], np.ndarray]:
    def convert(x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype="float64") * scale + offset

    return convert


# (from_unit, to_unit) -> conversion. Unit spellings are normalised by `_norm_unit`.
_CONVERSIONS: dict[tuple[str, str], Callable[[np.ndarray], np.ndarray]] = {
    ("degc", "K"): _affine(1.0, 273.15),
    ("degf", "K"): _affine(5.0 / 9.0, 273.15 - 32.0 * 5.0 / 9.0),
    ("hpa", "Pa"): _affine(100.0),
    ("kpa", "Pa"): _affine(1000.0),
    ("mm", "kg m-2"): _affine(1.0),
    ("m", "kg m-2"): _affine(1000.0),
    ("%", "1"): _affine(0.01),
    ("km h-1", "m s-1"): _affine(1.0 / 3.6),
    ("kt", "m s-1"): _affine(0.514444),
}

_UNIT_SPELLINGS = {
    "k": "K",
    "kelvin": "K",
    "c": "degc",
    "°c": "degc",
    "degc": "degc",
    "deg_c": "degc",
    "celsius": "degc",
    "degf": "degf",
    "°f": "degf",
    "pa": "Pa",
    "hpa": "hpa",
    "mb": "hpa",
    "mbar": "hpa",
    "kpa": "kpa",
    "mm": "mm",
    "kg m-2": "kg m-2",
    "kg m**-2": "kg m-2",
    "kg/m2": "kg m-2",
    "kg/m^2": "kg m-2",
    "m": "m",
    "%": "%",
    "percent": "%",
    "1": "1",
    "(0 - 1)": "1",
    "0-1": "1",
    "fraction": "1",
    "m s-1": "m s-1",
    "m s**-1": "m s-1",
    "m/s": "m s-1",
    "km/h": "km h-1",
    "km h-1": "km h-1",
    "kt": "kt",
    "knots": "kt",
}


def _norm_unit(units: str) -> str:
    key = units.strip().lower()
    return _UNIT_SPELLINGS.get(key, units.strip())


class UnitError(ValueError):
    """Raised when a unit cannot be converted to the canonical one."""


def to_canonical_units(
    values: np.ndarray, units: str, variable: str, *, source: str = "<input>"
) -> np.ndarray:
    """Convert ``values`` from ``units`` to the canonical units of ``variable``.

    Args:
        values: Array of values.
        units: Units of ``values`` as written in the input.
        variable: Canonical variable name.
        source: File or table name, used in error messages.

    Returns:
        float64 array in the canonical units.

    Raises:
        UnitError: If the variable is unknown or no conversion exists.
    """
    if variable not in VARIABLES:
        raise UnitError(f"{source}: unknown variable {variable!r}; known: {sorted(VARIABLES)}")
    target = VARIABLES[variable].units
    src = _norm_unit(units)
    if src == target:
        return np.asarray(values, dtype="float64")
    try:
        return _CONVERSIONS[(src, target)](values)
    except KeyError:
        raise UnitError(
            f"{source}: variable {variable!r} has units {units!r}; expected {target!r} "
            f"or a convertible unit"
        ) from None


def check_physical_range(
    values: np.ndarray, variable: str, *, source: str = "<input>", column: str | None = None
) -> None:
    """Raise if finite values fall outside the physical range of ``variable``.

    Args:
        values: Values in canonical units.
        variable: Canonical variable name.
        source: File or table name, used in error messages.
        column: Column or variable name in the input, used in error messages.

    Raises:
        ValueError: If any finite value is outside ``[valid_min, valid_max]``.
    """
    var = VARIABLES[variable]
    arr = np.asarray(values, dtype="float64")
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return
    lo, hi = float(finite.min()), float(finite.max())
    if lo < var.valid_min or hi > var.valid_max:
        bad = int(((finite < var.valid_min) | (finite > var.valid_max)).sum())
        raise ValueError(
            f"{source}: {column or variable}: {bad} value(s) outside the physical range "
            f"[{var.valid_min}, {var.valid_max}] {var.units} for {variable} "
            f"(found min {lo:g}, max {hi:g}); wrong units?"
        )


def target_of(column: str) -> str:
    """Return the variable name of an ``obs_<var>`` or ``fc_<var>`` column."""
    for prefix in (OBS_PREFIX, FC_PREFIX):
        if column.startswith(prefix):
            return column[len(prefix) :]
    raise ValueError(f"column {column!r} is neither obs_<var> nor fc_<var>")


def targets_in(columns: list[str] | tuple[str, ...]) -> list[str]:
    """Return the target variables (those with an ``obs_`` column) in table order."""
    return [c[len(OBS_PREFIX) :] for c in columns if c.startswith(OBS_PREFIX)]
