"""The metadata of a prediction-table file: its JSON text, families and ``units`` entries.

:func:`json_text` encodes the metadata the same way for every format (CSV sidecar, Parquet
schema, NetCDF attribute): NumPy scalars and arrays as numbers and lists, anything else JSON
cannot hold as its text. :func:`units_metadata` builds the ``units``/``param_units`` entries
that :func:`probcast.products.units.table_to_units` records for ``probcast predict
--units``, from the units a table's values are in and the families of its parameters, so
that :func:`probcast.products.table_files.write_predictions` records them for a table
converted elsewhere (``PredictRequest(units=...)``) and :func:`to_canonical` converts it
back when :func:`probcast.products.table_files.read_predictions` reads it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probcast.products.table import parse_columns
from probcast.units import user_units


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def json_text(meta: Mapping[str, Any], *, indent: int | None = None) -> str:
    """``meta`` as JSON: NumPy scalars/arrays as numbers/lists, other non-JSON values as text."""
    return json.dumps(dict(meta), indent=indent, default=_json_default)


def unit_entries(meta: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """The ``units``/``param_units`` entries of a table's metadata (those that are mappings)."""
    return {k: dict(meta[k]) for k in ("units", "param_units") if isinstance(meta.get(k), dict)}


def units_metadata(
    columns: Sequence[str],
    units: Mapping[str, str] | None,
    families: Mapping[str, str] | None,
    what: str = "units",
) -> dict[str, dict[str, str]]:
    """``{"units": ..., "param_units": ...}`` of a table whose values are in ``units``.

    The parameters of a variable are taken to be in ``units`` where the conversion keeps
    their family (:func:`probcast.products.units.params_convert`, the rule ``probcast
    predict --units`` converts them by) and canonical otherwise (``param_units``).

    Args:
        columns: The table's columns.
        units: ``{variable: units}`` of the table's values (None or empty: ``{}``).
        families: ``{variable: family}`` of its parameter columns.
        what: How error messages name ``units``.

    Raises:
        ValueError: Unknown variables or units, or units of a variable the table has no
            forecast of.
    """
    from probcast.products.units import PARAM_ROLES, params_convert

    if units is not None and not isinstance(units, Mapping):
        raise TypeError(f"{what}: expected a mapping {{variable: units}}, got {units!r}")
    try:
        conv = user_units(units)
    except ValueError as err:
        raise ValueError(f"{what}: {err}") from None
    param_units: dict[str, str] = {}
    for var, unit in conv.items():
        cs = parse_columns([str(c) for c in columns], var)
        params = [c for p, c in cs.other.items() if p in PARAM_ROLES]
        values = [*cs.members, *cs.quantiles.values(), *[c for c in (cs.point,) if c]]
        if not (values or params or cs.probabilities):
            raise ValueError(f"{what} given for {var!r}, but the table has no forecast of it")
        if params and not params_convert((families or {}).get(var), unit):
            param_units[var] = unit.canonical
    if not conv:
        return {}
    meta = {"units": {v: u.units for v, u in conv.items()}}
    if param_units:
        meta["param_units"] = param_units
    return meta


def file_metadata(
    frame: pd.DataFrame,
    families: Mapping[str, str] | None,
    units: Mapping[str, str] | None,
    extra: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """A table file's metadata: families, ``extra``, then the entries of ``units``.

    Raises:
        TypeError: ``families``, ``units`` or ``metadata`` not mappings.
        ValueError: ``units`` that are unknown, name a variable the table lacks, or differ
            from the ``units`` of ``metadata``.
    """
    for name, value in (("families", families), ("metadata", extra)):
        if value is not None and not isinstance(value, Mapping):
            raise TypeError(f"{name}: expected a mapping or None, got {type(value).__name__}")
    meta: dict[str, Any] = {"families": dict(families or {}), **dict(extra or {})}
    recorded = units_metadata(list(frame.columns), units, families)
    if recorded:
        given = meta.pop("units", None)
        meta.pop("param_units", None)  # follows from ``units`` and the families
        if given is not None and spelled(given) != recorded["units"]:
            raise ValueError(
                f"units={dict(units or {})} disagree with the units of metadata ({given}); "
                "give them once"
            )
        meta.update(recorded)
    return meta


def spelled(units: Any) -> Any:
    """``units`` as :func:`units_metadata` records them (aliases and CF spelling resolved).

    Units that cannot be parsed come back as they are (to be compared, and differ).
    """
    try:
        return {v: u.units for v, u in user_units(units).items()}
    except (ValueError, TypeError, AttributeError):
        return units


def to_canonical(df: pd.DataFrame, units: dict[str, Any], path: Path) -> pd.DataFrame:
    """``df`` in canonical units by its ``units`` metadata; errors name the file."""
    from probcast.products.units import table_to_canonical

    if not units.get("units"):
        return df
    try:
        return table_to_canonical(df, units, str(path))
    except (ValueError, TypeError) as err:
        if str(err).startswith(str(path)):
            raise
        raise ValueError(
            f"{path}: cannot convert to canonical units ({err}); the values of the variables "
            f"in its units metadata {units['units']} must be numbers"
        ) from None
