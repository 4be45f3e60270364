"""Statistic periods: the hours that an accumulated or extreme variable covers.

``tp`` at a valid time is the amount over the ``P`` hours ending then; ``tmax`` and ``tmin``
are the extremes over them. ``P`` is a property of the data (6 h, 24 h, ...), not of the
variable, and a model trained on 6-h amounts gives wrong numbers, with nothing to show it,
when it is fed 24-h ones. So the period travels with the data:

- station tables: ``DataFrame.attrs["probcast_periods"]``, which pandas keeps in a Parquet
  file's schema (``pandas`` metadata, ``attributes``); ``probcast data build`` and
  ``probcast data prepare`` write it;
- gridded datasets: the global attribute ``probcast_periods`` (NetCDF, Zarr);
- a training config: ``data.periods`` (``"tp:6,tmax:24"``) for tables that do not carry it;
- a model: ``periods`` in its ``domain.json``;
- products: each such variable's ``statistic_period`` (ISO 8601 duration, ``PT6H``) next
  to its ``cell_methods``.

The value is always a JSON object ``{"tp": 6.0}`` (hours > 0), a string in the attributes.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

ATTR = "probcast_periods"
"""Attribute name of the periods on a DataFrame, a Dataset or in a file."""

FROM_START = "probcast_from_start"
"""Attribute (JSON list) of a gridded dataset's variables accumulated since the start of the
forecast (a GRIB ``tp`` over 0-6 h, 0-12 h, ...): prediction de-accumulates them to the
model's period (:func:`probcast.sources.deaccum.grid_from_start`)."""

STATISTICS = {"tp": "sum", "tmax": "maximum", "tmin": "minimum"}
"""Variables that are statistics over a period, and their CF ``cell_methods`` method."""

Periods = dict[str, float]


def parse(value: Any, where: str) -> Periods:
    """Periods from ``"tp:6,tmax:24"``, a JSON object string or a mapping.

    Args:
        value: The periods; empty (``""``, ``None``, ``{}``) gives ``{}``.
        where: What holds them (a file, a config key), named in errors.

    Raises:
        ValueError: A variable that is not a statistic over a period, or an hour count that
            is not a finite number > 0.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{"):
            try:
                value = json.loads(text)
            except json.JSONDecodeError as err:
                raise ValueError(f"{where}: periods are not valid JSON ({err})") from None
        else:
            pairs = [item.split(":", 1) for item in text.split(",") if item.strip()]
            if any(len(p) != 2 for p in pairs):
                raise ValueError(
                    f"{where}: periods {text!r}; expected VAR:HOURS pairs, e.g. tp:6,tmax:24"
                )
            value = {k.strip(): v.strip() for k, v in pairs}
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: periods must map variables to hours, got {value!r}")
    out: Periods = {}
    for var, hours in value.items():
        if var not in STATISTICS:
            raise ValueError(
                f"{where}: {var!r} has no period; only {sorted(STATISTICS)} are statistics "
                "over a period"
            )
        try:
            number = float(hours)
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number) or number <= 0:
            raise ValueError(f"{where}: period of {var} is {hours!r}; expected hours > 0")
        out[str(var)] = number
    return out


def dumps(periods: Mapping[str, float]) -> str:
    """The attribute value of ``periods`` (sorted JSON)."""
    return json.dumps({k: float(v) for k, v in sorted(periods.items())})


def of(attrs: Mapping[Any, Any], where: str) -> Periods:
    """The periods recorded in ``attrs`` (of a DataFrame or Dataset); ``{}`` when none.

    Variables stated to have no fixed period (:func:`unfixed`) are left out.
    """
    return parse(_split(attrs, where)[0], f"{where}: attribute {ATTR}")


def unfixed(attrs: Mapping[Any, Any], where: str) -> dict[str, str]:
    """Variables that ``attrs`` state to have no fixed period, and why.

    A GRIB ``tp`` accumulated since the start of the forecast (0-6 h, 0-12 h, ...) is
    recorded so (:mod:`probcast.ingest.grib_windows`): an amount, but over a period that
    grows with the lead time. A model that uses the variable refuses it.
    """
    return _split(attrs, where)[1]


def from_start(attrs: Mapping[Any, Any]) -> list[str]:
    """The variables that ``attrs`` record as accumulated since the start (:data:`FROM_START`)."""
    value = attrs.get(FROM_START)
    names = json.loads(value) if isinstance(value, str) and value.strip() else value or []
    return [str(v) for v in names if v in STATISTICS]


def _split(attrs: Mapping[Any, Any], where: str) -> tuple[dict[str, Any], dict[str, str]]:
    value = attrs.get(ATTR)
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}, {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as err:
            raise ValueError(f"{where}: attribute {ATTR} is not valid JSON ({err})") from None
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: attribute {ATTR} must map variables to hours: {value!r}")
    words = {str(k): v for k, v in value.items() if isinstance(v, str) and not _number(v)}
    return {k: v for k, v in value.items() if k not in words}, words


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def recorded(obj: Any, periods: Mapping[str, float]) -> Any:
    """``obj`` (a DataFrame or Dataset) with ``periods`` in its attributes (in place)."""
    if periods:
        obj.attrs[ATTR] = dumps(periods)
    else:
        obj.attrs.pop(ATTR, None)
    return obj


def iso(hours: float) -> str:
    """ISO 8601 duration of ``hours``: ``PT6H``, ``PT1H30M``, ``PT24H``."""
    minutes = round(float(hours) * 60)
    h, m = divmod(minutes, 60)
    return "PT" + (f"{h}H" if h else "") + (f"{m}M" if m or not h else "")


def from_iso(text: str, where: str) -> float:
    """Hours of an ISO 8601 duration such as ``PT6H``, ``PT1H30M`` or ``P1D``.

    Raises:
        ValueError: Not such a duration, or not > 0 (names ``where``).
    """
    found = re.fullmatch(r"P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?)?", str(text).strip())
    hours = math.nan
    if found and any(found.groups()):
        d, h, m = (int(g) if g else 0 for g in found.groups())
        hours = 24.0 * d + h + m / 60.0
    if not hours > 0:
        raise ValueError(f"{where}: statistic_period {text!r}; expected a duration like PT6H")
    return hours


def of_schema(schema: Any, where: str) -> Periods:
    """The periods a Parquet file records: pandas' attributes in its Arrow ``schema``."""
    return of((schema.pandas_metadata or {}).get("attributes") or {}, where)


def differ(
    a: Mapping[str, float], b: Mapping[str, float], variables: Iterable[str] | None = None
) -> str | None:
    """The first variable whose periods ``a`` and ``b`` both state and that differ.

    Only ``variables`` count (default: all); ``None`` when none differs (a side that states
    no period for a variable is not compared).
    """
    common = set(a) & set(b) & (set(a) if variables is None else set(variables))
    return next((v for v in sorted(common) if not math.isclose(a[v], b[v])), None)


def combine(found: Mapping[str, float], configured: Mapping[str, float], where: str) -> Periods:
    """The data's periods, completed by a config's; they must agree where both state one.

    Raises:
        ValueError: A variable whose configured period differs from the data's.
    """
    if (var := differ(configured, found)) is not None:
        raise ValueError(
            f"{where}: data.periods gives {var} {configured[var]:g} h, but the data records "
            f"{found[var]:g} h; remove data.periods or correct it"
        )
    return {**dict(configured), **dict(found)}


def check_same(
    model: Mapping[str, float], data: Mapping[str, float], variables: list[str], where: str
) -> None:
    """Refuse input whose period of a model variable differs from the model's.

    A side that records no period for a variable cannot be checked (nothing is refused).

    Raises:
        ValueError: Naming the input, the variable and both periods.
    """
    if (var := differ(model, data, variables)) is not None:
        raise ValueError(
            f"{where}: {var} is over {data[var]:g} h, but the model was trained on "
            f"{model[var]:g}-h {var}; build the input with the model's period "
            f"(data build accumulation_hours: {model[var]:g})"
        )
