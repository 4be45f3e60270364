"""Read prediction tables into one :class:`Forecast` object per variable.

A probcast prediction table has the key columns of the canonical station table
(``station``, ``init_time``, ``lead_time``) and, per target variable ``<var>``, one or more
forecast *forms* (column conventions):

===============  ==========================  ==========================================
form             columns                     meaning
===============  ==========================  ==========================================
members          ``<var>_m000``, ...         ensemble members (``_mNNN``, any order)
quantiles        ``<var>_q0.05``, ...        quantile at the level after ``q``
probabilities    ``<var>_p_gt_<threshold>``  ``P(Y > threshold)``, used for Brier scores
params           ``<var>_<param>``           parameters of a family of
                                             :mod:`probcast.dists`
point            ``fc_<var>``                a deterministic forecast (raw NWP)
===============  ==========================  ==========================================

The family of a params form comes from the caller or a JSON sidecar next to the table
(``<table>.json`` or ``<table stem>.json``) holding ``{"families": {"<var>": "<name>"}}``
(``"distributions"`` is accepted as a synonym). When a table holds several forms of one
variable, the most informative is used: params, then members, then quantiles, then point.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from probcast.schema import FC_PREFIX, KEY_COLUMNS, VARIABLES

Kind = Literal["members", "quantiles", "params", "point"]

_MEMBER = re.compile(r"^m(\d+)$")
_QUANTILE = re.compile(r"^q(\d*\.?\d+(?:[eE][-+]?\d+)?)$")
_PROB = re.compile(r"^p_gt_(-?\d*\.?\d+(?:[eE][-+]?\d+)?)$")


@dataclass(frozen=True)
class Forecast:
    """One variable's forecasts in one form, one row per case.

    Attributes:
        variable: Canonical variable name.
        kind: ``members``, ``quantiles``, ``params`` or ``point``.
        values: ``(n, M)`` members, ``(n, Q)`` quantiles (ascending levels), ``(n, P)``
            parameters (in ``param_names`` order) or ``(n,)`` point values.
        levels: Quantile levels, shape ``(Q,)`` (quantiles form only).
        param_names: Parameter names (params form only).
        family: Distribution family name (params form only).
        probabilities: ``{threshold: P(Y > threshold)}`` columns given in the table.
    """

    variable: str
    kind: Kind
    values: np.ndarray
    levels: np.ndarray | None = None
    param_names: tuple[str, ...] = ()
    family: str | None = None
    probabilities: dict[float, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.values.shape[0])

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Parameters by name (params form)."""
        return {name: self.values[:, i] for i, name in enumerate(self.param_names)}

    @property
    def n_members(self) -> int | None:
        """Ensemble size (members form), else None."""
        return int(self.values.shape[1]) if self.kind == "members" else None

    def take(self, index: np.ndarray) -> Forecast:
        """The forecast restricted to rows ``index`` (boolean mask or integer positions)."""
        probs = {t: p[index] for t, p in self.probabilities.items()}
        return replace(self, values=self.values[index], probabilities=probs)


@dataclass
class ColumnSet:
    """The forecast columns of one variable in a table."""

    members: list[str] = field(default_factory=list)
    quantiles: dict[float, str] = field(default_factory=dict)
    probabilities: dict[float, str] = field(default_factory=dict)
    other: dict[str, str] = field(default_factory=dict)
    point: str | None = None


def parse_columns(columns: list[str] | pd.Index, variable: str) -> ColumnSet:
    """Sort a table's columns of ``variable`` into forms (see the module docstring)."""
    out = ColumnSet()
    prefix = f"{variable}_"
    for col in map(str, columns):
        if col == f"{FC_PREFIX}{variable}":
            out.point = col
        if not col.startswith(prefix):
            continue
        rest = col[len(prefix) :]
        if _MEMBER.match(rest):
            out.members.append(col)
        elif m := _QUANTILE.match(rest):
            out.quantiles[float(m.group(1))] = col
        elif m := _PROB.match(rest):
            out.probabilities[float(m.group(1))] = col
        else:
            out.other[rest] = col
    out.members.sort(key=lambda c: int(c.rsplit("_m", 1)[1]))
    return out


def detect_variables(columns: list[str] | pd.Index) -> list[str]:
    """Canonical variables with at least one forecast column in ``columns``."""
    found = []
    for var in VARIABLES:
        cs = parse_columns(columns, var)
        if cs.members or cs.quantiles or cs.probabilities or cs.other or cs.point:
            found.append(var)
    return found


def _param_names(family: str) -> tuple[str, ...]:
    from probcast import dists

    return tuple(dists.get(family).param_names)


def available_kinds(cs: ColumnSet, family: str | None) -> list[Kind]:
    """Forms present in ``cs``, most informative first."""
    kinds: list[Kind] = []
    if family is not None and all(p in cs.other for p in _param_names(family)):
        kinds.append("params")
    if cs.members:
        kinds.append("members")
    if cs.quantiles:
        kinds.append("quantiles")
    if cs.point:
        kinds.append("point")
    return kinds


def to_forecast(
    df: pd.DataFrame,
    variable: str,
    *,
    family: str | None = None,
    kind: Kind | None = None,
    source: str = "<table>",
) -> Forecast:
    """Build the :class:`Forecast` of ``variable`` from the columns of ``df``.

    Args:
        df: Prediction table (rows = cases).
        variable: Canonical variable name.
        family: Distribution family for a params form.
        kind: Form to use; default the most informative one present.
        source: Name of the table for error messages.

    Returns:
        The forecast, rows in the order of ``df``.

    Raises:
        ValueError: No usable form (the message lists the columns found), or a params form
            without a family.
    """
    cs = parse_columns(df.columns, variable)
    kinds = available_kinds(cs, family)
    if kind is None:
        if not kinds and cs.other and family is None:
            raise ValueError(
                f"{source}: variable {variable!r} has columns {sorted(cs.other.values())} "
                "that look like distribution parameters but no family was given (pass "
                'family= or write a sidecar {"families": {"' + variable + '": NAME}})'
            )
        if not kinds:
            raise ValueError(
                f"{source}: no forecast of {variable!r}; expected {variable}_mNNN, "
                f"{variable}_q<level>, {variable}_<param> (+ family) or {FC_PREFIX}{variable}"
            )
        kind = kinds[0]
    elif kind not in kinds:
        raise ValueError(f"{source}: {variable!r} has no {kind} form; found {kinds}")
    probs = {t: df[c].to_numpy("float64") for t, c in sorted(cs.probabilities.items())}
    if kind == "members":
        return Forecast(variable, kind, df[cs.members].to_numpy("float64"), probabilities=probs)
    if kind == "quantiles":
        lv = sorted(cs.quantiles)
        if any(not 0 < a < 1 for a in lv):
            raise ValueError(f"{source}: quantile levels of {variable!r} must be in (0, 1): {lv}")
        vals = df[[cs.quantiles[a] for a in lv]].to_numpy("float64")
        return Forecast(variable, kind, vals, levels=np.asarray(lv), probabilities=probs)
    if kind == "params":
        assert family is not None
        names = _param_names(family)
        vals = df[[cs.other[p] for p in names]].to_numpy("float64")
        return Forecast(variable, kind, vals, param_names=names, family=family, probabilities=probs)
    assert cs.point is not None
    return Forecast(variable, "point", df[cs.point].to_numpy("float64"), probabilities=probs)


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The JSON sidecar of a prediction table (``{}`` when there is none)."""
    p = Path(path)
    for cand in (p.with_name(p.name + ".json"), p.with_suffix(".json")):
        if cand != p and cand.exists():
            with cand.open() as fh:
                meta = json.load(fh)
            if not isinstance(meta, dict):
                raise ValueError(f"{cand}: sidecar must hold a JSON object, got {type(meta)}")
            return meta
    return {}


def sidecar_families(meta: dict[str, Any]) -> dict[str, str]:
    """``{variable: family}`` from a sidecar's ``families`` (or ``distributions``) entry."""
    fams = meta.get("families", meta.get("distributions", {}))
    if isinstance(fams, str):  # "tp:censored_logistic,t2m:normal"
        fams = dict(item.split(":", 1) for item in fams.split(",") if item)
    return {str(k): str(v) for k, v in dict(fams).items()}


def normalise_keys(df: pd.DataFrame, source: str = "<table>") -> pd.DataFrame:
    """Coerce key columns: ``init_time`` to UTC datetimes, ``lead_time`` to float hours.

    Raises:
        ValueError: A key column is missing.
    """
    missing = [k for k in KEY_COLUMNS if k not in df.columns]
    if missing:
        raise ValueError(f"{source}: missing key columns {missing}; expected {list(KEY_COLUMNS)}")
    out = df.copy()
    out["station"] = out["station"].astype(str)
    out["init_time"] = pd.to_datetime(out["init_time"], utc=True)
    lead = out["lead_time"]
    if pd.api.types.is_timedelta64_dtype(lead):
        out["lead_time"] = lead.dt.total_seconds() / 3600.0
    else:
        out["lead_time"] = lead.astype("float64")
    return out


def read_forecast_table(path: str | Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """Read a prediction table (CSV/Parquet) and the families of its sidecar.

    Returns:
        ``(table with normalised keys, {variable: family})``.
    """
    from probcast.ingest.tables import read_table

    df = read_table(path, validate=False)
    return normalise_keys(df, str(path)), sidecar_families(read_sidecar(path))
