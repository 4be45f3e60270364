"""Canonical variable names, CF units and the one unit-conversion table.

Every reader normalises names and units here, right after reading; nothing downstream
guesses a variable name or a unit. See docs/data-model.md.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

KEY_COLUMNS = ("station", "init_time", "lead_time")
"""Primary key of the canonical station table."""

STATIC_COLUMNS = ("latitude", "longitude", "altitude")
TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
PREDICTION_SUFFIXES = (*TABLE_SUFFIXES, ".nc")
"""File suffixes of station tables; prediction tables may be station NetCDF too."""
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
        valid_min, valid_max: Smallest and largest physically plausible values in ``units``.
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


def bounds(var: str) -> tuple[float, float]:
    """``(valid_min, valid_max)`` of a canonical variable; unbounded for any other name."""
    info = VARIABLES.get(var)
    return (info.valid_min, info.valid_max) if info else (float("-inf"), float("inf"))


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


# Units offered for each canonical unit (hints). Any unit pint converts is accepted (and
# depths of water for precipitation); affine, positive scale, inverted exactly (units.py).
_ALTERNATIVES: dict[str, tuple[str, ...]] = {
    "K": ("degc", "degf"),
    "Pa": ("hpa", "kpa"),
    "kg m-2": ("mm", "cm", "m", "in"),
    "1": ("%", "okta"),
    "m s-1": ("km h-1", "kt", "mph"),
}
# Normalised unit -> pint's spelling (UDUNITS's ``kt`` is a knot, ``mb`` a millibar).
_PINT_NAMES: dict[str, str] = {
    "K": "kelvin",
    "degc": "degC",
    "degf": "degF",
    "hpa": "hPa",
    "kpa": "kPa",
    "kg m-2": "kg / m**2",
    "in": "inch",
    "%": "percent",
    "okta": "okta",
    "1": "dimensionless",
    "m s-1": "m / s",
    "km h-1": "km / h",
    "kt": "knot",
    "mph": "mile / hour",
}
WATER_DENSITY = 1000.0  # kg m-3: a depth of water (mm, m, in) as an amount (kg m-2)

# Normalised unit -> its spellings met in files (matched lower-case, stripped).
_SPELLINGS: dict[str, tuple[str, ...]] = {
    "K": ("k", "kelvin", "degk"),
    "degc": ("c", "°c", "deg_c", "deg c", "degree_c", "degree_celsius", "celsius"),
    "degf": ("°f", "deg_f", "degree_f", "degree_fahrenheit", "fahrenheit"),
    "Pa": ("pa",),
    "hpa": ("mb", "mbar", "millibar"),
    "kpa": (),
    "mm": ("millimeter", "millimetre"),
    "kg m-2": ("kg m**-2", "kg/m2", "kg/m^2", "kg.m-2"),
    "cm": (),
    "m": ("metre", "meter"),
    "in": ("inch", "inches"),
    "%": ("percent",),
    "okta": ("oktas",),
    "1": ("(0 - 1)", "0-1", "fraction"),
    "m s-1": ("m s**-1", "m/s", "m.s-1"),
    "km h-1": ("km/h", "kmh", "kph"),
    "kt": ("kts", "knot", "knots"),
    "mph": ("mi/h",),
}
_UNIT_SPELLINGS = {a: unit for unit, names in _SPELLINGS.items() for a in (unit.lower(), *names)}

UNIT_NAMES = {
    "degc": "degC",
    "degf": "degF",
    "hpa": "hPa",
    "kpa": "kPa",
    "km h-1": "km h-1",
    "kt": "knot",
}
"""CF/UDUNITS spelling of a normalised unit written to output metadata (others as they are)."""


def _norm_unit(units: str) -> str:
    key = units.strip().lower().replace("degrees_", "degree_")  # CF allows either
    return _UNIT_SPELLINGS.get(key, units.strip())


def unit_name(units: str) -> str:
    """The CF/UDUNITS spelling of ``units`` (``degrees_celsius`` -> ``degC``)."""
    norm = _norm_unit(units)
    return UNIT_NAMES.get(norm, norm)


class UnitError(ValueError):
    """Raised when a unit cannot be converted to the canonical one."""


def units_of(variable: str) -> list[str]:
    """Units convertible to the canonical units of ``variable`` (CF spellings, canonical first).

    Raises:
        UnitError: If the variable is unknown.
    """
    if variable not in VARIABLES:
        raise UnitError(f"unknown variable {variable!r}; known: {sorted(VARIABLES)}")
    target = VARIABLES[variable].units
    return [target, *(UNIT_NAMES.get(a, a) for a in _ALTERNATIVES.get(target, ()))]


def unit_affine(units: str, variable: str, *, source: str = "<input>") -> tuple[float, float]:
    """``(scale, offset)`` with ``canonical = value * scale + offset`` for ``units``.

    Args:
        units: Units as written in the input (any spelling of :data:`_UNIT_SPELLINGS`).
        variable: Canonical variable name.
        source: File or table name, used in error messages.

    Raises:
        UnitError: If the variable is unknown or no conversion exists (the message lists
            the convertible units).
    """
    if variable not in VARIABLES:
        raise UnitError(f"{source}: unknown variable {variable!r}; known: {sorted(VARIABLES)}")
    target = VARIABLES[variable].units
    src = _norm_unit(str(units))
    if src == target:
        return 1.0, 0.0
    affine = _pint_affine(src, target)
    if affine is None:
        raise UnitError(
            f"{source}: variable {variable!r} has units {units!r}; expected {target!r} "
            f"or a convertible unit ({', '.join(units_of(variable)[1:]) or 'none'})"
        )
    return affine


@functools.cache
def _registry() -> Any:
    import pint

    reg: Any = pint.UnitRegistry()
    reg.define("okta = 0.125 = oktas")
    return reg


@functools.cache
def _pint_affine(src: str, target: str) -> tuple[float, float] | None:
    """Pint's ``(scale, offset)``; ``None`` if it cannot convert ``src`` or that is a delta unit."""
    import pint

    reg: Any = _registry()
    to = _PINT_NAMES.get(target, target)
    name = _PINT_NAMES.get(src, _UDUNITS_POWER.sub(r"\1**\2", src).replace(" ", " * "))
    try:
        lo, hi = reg.Quantity(0.0, name), reg.Quantity(1.0, name)
        if target == "kg m-2" and lo.dimensionality == reg.metre.dimensionality:
            scale = float(hi.to("m").magnitude - lo.to("m").magnitude) * WATER_DENSITY
            return scale, 0.0
        offset = float(lo.to(to).magnitude)
        scale = float(hi.to(to).magnitude) - offset
    except (pint.PintError, AttributeError, TypeError, ValueError, AssertionError):
        return None
    return (scale, offset) if scale > 0 and "delta_" not in str(lo.units) else None


_UDUNITS_POWER = re.compile(r"([A-Za-z])(-?\d+)")  # UDUNITS m-2 -> pint m**-2


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
        float64 array in the canonical units, every missing value the same quiet NaN.

    Raises:
        UnitError: If the variable is unknown or no conversion exists.
    """
    scale, offset = unit_affine(units, variable, source=source)
    arr = np.asarray(values, dtype="float64")
    arr = np.where(np.isnan(arr), np.nan, arr)  # R's NA: a NaN whose payload warns in casts
    return arr if (scale, offset) == (1.0, 0.0) else arr * scale + offset


def fitting_units(lo: float, hi: float, variable: str) -> list[str]:
    """Units in which raw values spanning ``[lo, hi]`` would be physically plausible.

    Used to suggest the right units when a field is out of range (degC labelled ``K``,
    millimetres labelled ``m``).
    """
    var = VARIABLES[variable]
    out = []
    for name in units_of(variable):
        scale, offset = unit_affine(name, variable)
        if var.valid_min <= lo * scale + offset and hi * scale + offset <= var.valid_max:
            out.append(name)
    return out


def units_hint(lo: float, hi: float, variable: str, units: str | None = None) -> str:
    """What to say about canonical values ``[lo, hi]`` out of range, given in ``units``.

    Names the units in which the values as given would be plausible (``'degC'`` for a
    temperature field labelled ``K``, ``'mm'`` for precipitation labelled ``m``).
    """
    given = units or VARIABLES[variable].units
    scale, offset = unit_affine(given, variable)
    raw_lo, raw_hi = (lo - offset) / scale, (hi - offset) / scale
    fits = [
        u for u in fitting_units(raw_lo, raw_hi, variable) if _norm_unit(u) != _norm_unit(given)
    ]
    if not fits:
        return "wrong units or corrupted values?"
    return f"wrong units? the values would fit as {' or '.join(map(repr, fits[:2]))}, not {given!r}"


def range_error(
    lo: float, hi: float, variable: str, *, units: str | None = None, n_bad: int | None = None
) -> str | None:
    """Why canonical values spanning ``[lo, hi]`` are implausible for ``variable`` (or None).

    Args:
        lo: Smallest finite value, in canonical units.
        hi: Largest finite value, in canonical units.
        variable: Canonical variable name.
        units: Units the values were given in (default canonical), for :func:`units_hint`.
        n_bad: Count of values outside the range, when known.

    Returns:
        ``None`` when the values fit, else one sentence (without the file name).
    """
    var = VARIABLES[variable]
    if var.valid_min <= lo and hi <= var.valid_max:
        return None
    count = f"{n_bad} value(s) outside" if n_bad is not None else "values outside"
    return (
        f"{count} the physical range [{var.valid_min:g}, {var.valid_max:g}] {var.units} of "
        f"{variable} (found min {lo:g}, max {hi:g} {var.units}); "
        + units_hint(lo, hi, variable, units)
    )


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
    if (finite := arr[np.isfinite(arr)]).size == 0:
        return
    bad = int(((finite < var.valid_min) | (finite > var.valid_max)).sum())
    problem = range_error(float(finite.min()), float(finite.max()), variable, n_bad=bad)
    if problem is not None:
        raise ValueError(f"{source}: {column or variable}: {problem}")


def target_of(column: str) -> str:
    """Return the variable name of an ``obs_<var>`` or ``fc_<var>`` column."""
    for prefix in (OBS_PREFIX, FC_PREFIX):
        if column.startswith(prefix):
            return column[len(prefix) :]
    raise ValueError(f"column {column!r} is neither obs_<var> nor fc_<var>")


def targets_in(columns: list[str] | tuple[str, ...]) -> list[str]:
    """Return the target variables (those with an ``obs_`` column) in table order."""
    return [c[len(OBS_PREFIX) :] for c in columns if c.startswith(OBS_PREFIX)]
