"""The arguments of :func:`probcast.verify.evaluate.verify` (``probcast.evaluate``), checked.

Python callers get a ``TypeError``/``ValueError`` naming the argument and what it takes,
before anything is read or scored, instead of an error from deep inside pandas. The friendly
forms that cannot be misread are taken as meant:

* ``truth`` or a forecast as a path: read as ``probcast verify`` reads it (the truth with
  the station-table reader, a forecast with
  :func:`probcast.products.table_files.read_predictions`, both in canonical units by the
  units their metadata records, the forecast's families used where ``families`` gives
  none: :mod:`probcast.verify.truth`);
* ``truth`` as a DataFrame: converted by the units it records
  (``attrs["probcast_units"]``) and validated as a truth file is (observations outside
  their physical range, such as degC where K is expected, are refused);
* ``by`` and ``variables`` as one string (``"station"``; commas separate several);
* a threshold as one number (``{"tp": 1.0}``);
* ``families`` and ``units`` as a flat ``{variable: ...}`` mapping when there is one forecast.

``units`` (``{name: {variable: units}}``) says which forecasts are not in canonical units
(a table predicted with ``PredictRequest(units=...)``); they are converted
(:func:`probcast.products.units.table_to_canonical`) before scoring.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

PathLike = (str, os.PathLike)


@dataclass
class Arguments:
    """The checked arguments, in the forms :func:`~probcast.verify.evaluate.verify` uses."""

    truth: pd.DataFrame
    forecasts: dict[str, pd.DataFrame]
    families: dict[str, dict[str, str]]
    by: list[str]
    thresholds: dict[str, list[float]] | None
    variables: list[str] | None
    sources: dict[str, str] = field(default_factory=dict)
    units: dict[str, dict[str, str]] = field(default_factory=dict)
    truth_name: str = "truth"


def _kind(value: Any) -> str:
    return "a DataFrame" if isinstance(value, pd.DataFrame) else type(value).__name__


def check_arguments(
    truth: Any,
    forecasts: Any,
    *,
    reference: Any,
    families: Any,
    by: Any,
    thresholds: Any,
    variables: Any,
    units: Any,
    sources: Mapping[str, str] | None,
    truth_name: str,
) -> Arguments:
    """Check and normalise the arguments of ``verify`` (module docstring).

    Raises:
        TypeError: An argument of the wrong type (the message names it and what it takes).
        ValueError: A value that contradicts the others (units or families of no
            forecast, units of a file that records other units).
    """
    if not isinstance(forecasts, Mapping):
        raise TypeError(
            f"forecasts: expected a mapping {{name: prediction table}} such as "
            f"{{'model': table}}, got {_kind(forecasts)}"
        )
    if not forecasts:
        raise ValueError("no forecasts to verify")
    if reference is not None and not isinstance(reference, str):
        raise TypeError(f"reference: expected a forecast name (str) or None, got {reference!r}")
    names = list(forecasts)
    bad = [n for n in names if not isinstance(n, str)]
    if bad:
        raise TypeError(f"forecasts: names must be strings, got {bad}")
    truth_df = _truth(truth, truth_name)
    fams = _per_forecast(families, names, "families", "family", "censored_logistic")
    given_units = _per_forecast(units, names, "units", "units", "cm")
    tables: dict[str, pd.DataFrame] = {}
    srcs = dict(sources or {})
    for name, value in forecasts.items():
        if isinstance(value, pd.DataFrame):
            tables[name] = _in_canonical(value, name, given_units.get(name), fams.get(name))
        elif isinstance(value, PathLike):
            table, side, recorded = _read_forecast(Path(value), name, given_units.get(name))
            fams[name] = {**side, **fams.get(name, {})}
            own = None if recorded else given_units.get(name)  # recorded: read canonical
            tables[name] = _in_canonical(table, name, own, fams[name])
            srcs.setdefault(name, str(value))
        else:
            raise TypeError(
                f"forecasts[{name!r}]: expected a prediction table (DataFrame) or a path to "
                f"one, got {_kind(value)}"
            )
    return Arguments(
        truth_df,
        tables,
        fams,
        _names(by, "by", "column names such as ['lead_time', 'station']"),
        _thresholds(thresholds),
        None if variables is None else _names(variables, "variables", "names such as ['tp']"),
        srcs,
        {n: u for n, u in given_units.items() if u},
        str(truth) if isinstance(truth, PathLike) and truth_name == "truth" else truth_name,
    )


def _truth(truth: Any, truth_name: str) -> pd.DataFrame:
    """The truth in canonical units, validated as ``probcast verify`` validates a file."""
    if isinstance(truth, pd.DataFrame):
        from probcast.verify.truth import truth_frame

        return truth_frame(truth, truth_name)
    if isinstance(truth, PathLike):
        from probcast.verify.cli import _read
        from probcast.verify.truth import read_truth

        return _read(read_truth, str(truth))  # type: ignore[no-any-return]
    raise TypeError(
        f"truth: expected a station table (DataFrame with obs_<var> columns) or a path to "
        f"one, got {_kind(truth)}"
    )


def _per_forecast(
    value: Any, names: list[str], what: str, item: str, example: str
) -> dict[str, dict[str, str]]:
    """``{name: {variable: str}}`` from ``value`` (a flat mapping with one forecast)."""
    if value is None:
        return {}
    first = names[0] if names else "model"
    shape = f"{{name: {{variable: {item}}}}} such as {{{first!r}: {{'tp': {example!r}}}}}"
    if not isinstance(value, Mapping):
        raise TypeError(f"{what}: expected a mapping {shape}, got {_kind(value)}")
    flat = bool(value) and all(isinstance(v, str) for v in value.values())
    if flat:
        named = [k for k in value if k in names]
        if named:
            raise TypeError(
                f"{what}[{named[0]!r}]: expected a mapping {{variable: {item}}}, got "
                f"{value[named[0]]!r}; {what} takes {shape}"
            )
        if len(names) != 1:
            raise TypeError(
                f"{what}: a flat {{variable: {item}}} mapping is ambiguous with {len(names)} "
                f"forecasts {names}; give {shape}"
            )
        value = {names[0]: value}
    out: dict[str, dict[str, str]] = {}
    for name, inner in value.items():
        if name not in names:
            raise ValueError(
                f"{what} given for {name!r}, which is not one of the forecasts {names}"
            )
        if not isinstance(inner, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in inner.items()
        ):
            raise TypeError(
                f"{what}[{name!r}]: expected a mapping {{variable: {item}}} of strings, got "
                f"{inner!r}"
            )
        out[name] = dict(inner)
    return out


def _names(value: Any, what: str, expected: str) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, Iterable) and not isinstance(value, (bytes, Mapping)):
        items = list(value)
        if all(isinstance(v, str) for v in items):
            return items
    raise TypeError(f"{what}: expected a string or a sequence of {expected}, got {value!r}")


def _thresholds(value: Any) -> dict[str, list[float]] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(
            f"thresholds: expected a mapping {{variable: thresholds}} such as "
            f"{{'tp': [0.1, 1.0]}}, got {_kind(value)}"
        )
    out: dict[str, list[float]] = {}
    for var, ts in value.items():
        items = [ts] if np.ndim(ts) == 0 and not isinstance(ts, str) else ts
        if (
            not isinstance(var, str)
            or isinstance(items, (str, bytes, Mapping))
            or not all(_number(t) for t in np.asarray(items, dtype=object).ravel())
        ):
            raise TypeError(
                f"thresholds[{var!r}]: expected a number or a sequence of numbers (canonical "
                f"units), got {ts!r}"
            )
        out[var] = [float(t) for t in np.asarray(items, dtype=object).ravel()]
    return out


def _number(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _in_canonical(
    table: pd.DataFrame,
    name: str,
    units: Mapping[str, str] | None,
    families: Mapping[str, str] | None,
) -> pd.DataFrame:
    """``table`` converted from ``units`` (its values' units) to canonical units.

    Without ``units``, by the units the table records (``attrs``: a ``PredictResult.table``
    of a request with ``units``, :data:`probcast.products.units.UNITS_ATTR`).

    Its parameters are taken to be in ``units`` where their family has a form in them, as
    ``probcast predict --units`` writes them, else canonical
    (:func:`probcast.products.table_meta.units_metadata`).
    """
    from probcast.products.table_meta import units_metadata
    from probcast.products.units import UNITS_ATTR, table_to_canonical

    recorded = table.attrs.get(UNITS_ATTR) or {}  # a PredictResult.table in other units
    if not units:
        return table_to_canonical(table, recorded, f"forecast {name!r}") if recorded else table
    meta = units_metadata(list(table.columns), units, families, f"units[{name!r}]")
    if recorded and meta.get("units") != recorded.get("units"):
        raise ValueError(f"units[{name!r}]: {meta['units']}, but the table records {recorded}")
    try:
        return table_to_canonical(table, meta, f"forecast {name!r}")
    except (ValueError, TypeError) as err:
        raise ValueError(f"forecast {name!r}: cannot convert from {dict(units)}: {err}") from None


def _read_forecast(
    path: Path, name: str, units: Mapping[str, str] | None
) -> tuple[pd.DataFrame, dict[str, str], bool]:
    """A forecast file (canonical units by its metadata), its families, whether it has units.

    Raises:
        ValueError: ``units`` given for a file that records other units.
    """
    from probcast.products.table_files import read_predictions
    from probcast.products.table_meta import spelled
    from probcast.products.units import read_units
    from probcast.verify.cli import _read

    recorded = _read(read_units, str(path)).get("units") or {}
    if units and recorded and spelled(units) != recorded:
        raise ValueError(
            f"units[{name!r}]={dict(units)}, but {path} records its units as {recorded} "
            "(and is read in canonical units by them); drop units for this forecast"
        )
    table, side = _read(read_predictions, str(path))
    return table, side, bool(recorded)
