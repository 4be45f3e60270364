"""The user's units: ``--units t2m=degC,tp=mm`` for thresholds and outputs.

Inputs are converted to the canonical units of :mod:`probcast.schema` when read; a user may
want thresholds and outputs in other units. :func:`parse_units` reads the option and
:class:`UserUnit` converts between canonical and the user's units with the same affine
conversion (:func:`probcast.schema.unit_affine`, factors from pint), so a value converted
there and back is the value (to rounding). Which outputs follow the user's units:
:mod:`probcast.products.units`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from probcast.schema import VARIABLES, UnitError, canonical_name, unit_affine, unit_name, units_of

__all__ = ["UnitError", "UserUnit", "choices", "format_units", "parse_units", "tidy", "user_units"]


@dataclass(frozen=True)
class UserUnit:
    """One variable's user units: ``canonical = user * scale + offset``.

    Attributes:
        variable: Canonical variable name.
        units: The user's units (CF spelling, e.g. ``degC``).
        scale: Positive factor of the conversion to canonical units.
        offset: Offset of the conversion to canonical units.
    """

    variable: str
    units: str
    scale: float
    offset: float

    @property
    def canonical(self) -> str:
        """The canonical units of the variable."""
        return VARIABLES[self.variable].units

    @property
    def identity(self) -> bool:
        """Whether the user's units are the canonical ones."""
        return self.scale == 1.0 and self.offset == 0.0

    def to_user(self, values: Any) -> Any:
        """Canonical values (array, DataArray or float) -> the user's units."""
        return values if self.identity else (values - self.offset) / self.scale

    def to_canonical(self, values: Any) -> Any:
        """Values in the user's units -> canonical units."""
        return values if self.identity else values * self.scale + self.offset

    def spread_to_user(self, values: Any) -> Any:
        """A canonical spread (scale parameter, difference) -> the user's units."""
        return values if self.scale == 1.0 else values / self.scale

    def spread_to_canonical(self, values: Any) -> Any:
        """A spread in the user's units -> canonical units."""
        return values if self.scale == 1.0 else values * self.scale

    def thresholds_to_canonical(self, values: Iterable[float]) -> tuple[float, ...]:
        """Thresholds in the user's units -> canonical (rounded to 12 significant digits)."""
        return tuple(tidy(float(self.to_canonical(float(v)))) for v in values)

    def thresholds_to_user(self, values: Iterable[float]) -> tuple[float, ...]:
        """Canonical thresholds -> the user's units (rounded to 12 significant digits)."""
        return tuple(tidy(float(self.to_user(float(v)))) for v in values)


def tidy(x: float) -> float:
    """``x`` to 12 significant digits: 0.1 degC -> 273.25 K, not 273.25000000000006."""
    return float(f"{x:.12g}") if np.isfinite(x) else x


def parse_units(spec: str | Iterable[str] | Mapping[str, str] | None) -> dict[str, str]:
    """``"t2m=degC,tp=mm"`` (or a list of such items, or a mapping) -> ``{var: units}``.

    Variable names go through the aliases of :mod:`probcast.schema` (``2t=degC`` is t2m);
    units are written in their CF spelling.

    Raises:
        UnitError: Malformed item, unknown variable or units not convertible to the
            variable's canonical units (the message lists the convertible ones).
    """
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        items = [f"{k}={v}" for k, v in spec.items()]
    else:
        items = [spec] if isinstance(spec, str) else list(spec)
    out: dict[str, str] = {}
    for text in items:
        for part in str(text).replace(";", ",").split(","):
            if not part.strip():
                continue
            name, sep, units = part.partition("=")
            if not sep or not name.strip() or not units.strip():
                raise UnitError(f"units must look like 't2m=degC,tp=mm', got {text!r}")
            var = canonical_name(name)
            if var not in VARIABLES:
                raise UnitError(
                    f"units given for unknown variable {name.strip()!r}; known: {sorted(VARIABLES)}"
                )
            unit_affine(units.strip(), var, source="--units")  # raises with the choices
            out[var] = unit_name(units.strip())
    return out


def user_units(units: Mapping[str, str] | None) -> dict[str, UserUnit]:
    """``{var: units}`` -> ``{var: UserUnit}`` (checked as :func:`parse_units`)."""
    out = {}
    for var, name in parse_units(units).items():
        scale, offset = unit_affine(name, var, source="--units")
        out[var] = UserUnit(var, name, scale, offset)
    return out


def format_units(units: Mapping[str, str]) -> str:
    """``{var: units}`` -> ``"t2m=degC,tp=mm"``."""
    return ",".join(f"{k}={v}" for k, v in units.items())


def choices(variable: str) -> list[str]:
    """Units a user may ask for ``variable`` (canonical first)."""
    return units_of(variable)
