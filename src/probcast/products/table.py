"""Station tables as a product: the column contract, written and parsed in one place.

A probcast prediction table has the key columns of the canonical station table
(``station``, ``init_time``, ``lead_time``, ``valid_time``) and, per target variable
``<var>``, one or more forecast *forms* (column conventions):

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

Quality flags (strings, not forecasts; :func:`parse_columns` keeps them apart and
verification ignores them): ``<var>_source`` says where a row's forecast of ``<var>``
came from (:data:`SOURCES`: ``model``, the trained network; ``emos``, the model's local EMOS
because a network input was missing or invalid; ``raw_dressed``, the raw forecast dressed
with the training error spread; ``missing``, no ``fc_<var>``: every forecast column of
``<var>`` is NaN), and ``applicability`` whether the row lies in the model's training domain
(``ok``, or ``lead``, ``station``, ``feature`` joined by ``+``;
:mod:`probcast.model.applicability`). Members and quantiles are limited to the variable's
physical bounds (:func:`clip_physical`).

The table records, next to the parameters, the family they belong to (``families``):
in the Parquet schema metadata (key ``probcast``), in the NetCDF global attribute
``probcast`` and, for CSV, in a JSON sidecar ``<file>.json`` written with it. So
``probcast predict`` then ``probcast verify`` needs no flag: :func:`read_predictions` gives
the families back. When a table holds several forms of one variable, the most informative
is scored: params, then members, then quantiles, then point. Parameters that are not the
predictive distribution (the mean over a mixture of seed networks) are written without a
family, so they are never scored as if they were.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from probcast import dists, schema, station_ids
from probcast.dists import Kind, Predictive
from probcast.schema import FC_PREFIX, KEY_COLUMNS, VARIABLES

_MEMBER = re.compile(r"^m(\d+)$")
_QUANTILE = re.compile(r"^q(\d*\.?\d+(?:[eE][-+]?\d+)?)$")
_PROB = re.compile(r"^p_gt_(-?\d*\.?\d+(?:[eE][-+]?\d+)?)$")


KEYS = ("station", "init_time", "lead_time", "valid_time")
"""Key columns copied from the input to a prediction table (those present)."""
META_KEY = "probcast"
PAD_MARK = station_ids.PAD_MARK
TABLE_SUFFIXES = schema.PREDICTION_SUFFIXES
SOURCE = "source"
"""Suffix of the per-variable flag column ``<var>_source``."""
SOURCES = ("model", "emos", "raw_dressed", "missing")
"""Values of ``<var>_source``, from the best to the last resort."""
APPLICABILITY = "applicability"
"""The per-row training-domain flag column."""
APPLICABILITY_OK = "ok"
APPLICABILITY_REASONS = ("lead", "station", "feature")
"""Reasons in an ``applicability`` label (bits 1, 2, 4 of its NetCDF encoding)."""


def source_column(var: str) -> str:
    """Name of the flag column saying where the forecasts of ``var`` came from."""
    return f"{var}_{SOURCE}"


def is_flag_column(column: str) -> bool:
    """Whether ``column`` is a quality flag (``<var>_source``, ``applicability``)."""
    if column == APPLICABILITY:
        return True
    var, sep, rest = str(column).rpartition("_")
    return bool(sep) and rest == SOURCE and var in VARIABLES


def applicability_labels(lead: np.ndarray, station: np.ndarray, feature: np.ndarray) -> np.ndarray:
    """``ok`` or the reasons joined by ``+`` per row, from three boolean arrays."""
    bits = np.asarray(lead, int) + 2 * np.asarray(station, int) + 4 * np.asarray(feature, int)
    return labels_from_bits(bits)


def _label_names() -> list[str]:
    """The label of each bit code 0..7."""
    out = []
    for code in range(8):
        parts = [r for i, r in enumerate(APPLICABILITY_REASONS) if code & (1 << i)]
        out.append("+".join(parts) or APPLICABILITY_OK)
    return out


def labels_from_bits(bits: np.ndarray) -> np.ndarray:
    """Applicability labels of their bit codes (negative or NaN: ``None``)."""
    values = np.asarray(bits, dtype="float64")
    ok = np.isfinite(values) & (values >= 0) & (values < 8)
    out = np.full(values.shape, None, dtype=object)
    out[ok] = np.asarray(_label_names(), dtype=object)[values[ok].astype(int)]
    return out


def bits_from_labels(labels: np.ndarray) -> np.ndarray:
    """Bit codes of applicability labels (``None`` or an unknown label: -1)."""
    codes = {name: code for code, name in enumerate(_label_names())}
    mapped = pd.Series(np.asarray(labels, dtype=object)).map(codes)
    return mapped.fillna(-1).to_numpy(dtype="int8")


def clip_physical(var: str, values: np.ndarray) -> tuple[np.ndarray, int]:
    """Values of ``var`` (members, quantiles) limited to its physical bounds.

    The bounds are ``schema.VARIABLES[var]``'s ``valid_min``/``valid_max`` (unknown variables
    are returned as they are); NaN stays NaN.

    Returns:
        ``(clipped values, number of values that were outside)``.
    """
    if var not in VARIABLES:
        return values, 0
    info = VARIABLES[var]
    arr = np.asarray(values)
    with np.errstate(invalid="ignore"):
        outside = int(((arr < info.valid_min) | (arr > info.valid_max)).sum())
    if not outside:
        return arr, 0
    return np.clip(arr, info.valid_min, info.valid_max).astype(arr.dtype, copy=False), outside


def format_level(q: float) -> str:
    """Column suffix of a quantile level or threshold: ``0.05``, ``1``, ``1e-05``.

    Six significant digits (``:g``) where they give the value back, else the shortest
    round-trip repr (``1.0000001``), so two levels never share a column name.
    """
    short = f"{float(q):g}"
    return short if float(short) == float(q) else repr(float(q))


def member_columns(var: str, members: np.ndarray) -> dict[str, np.ndarray]:
    """``<var>_m000 ...`` columns of members ``(rows, M)``."""
    return {f"{var}_m{j:03d}": members[:, j] for j in range(members.shape[1])}


def quantile_columns(
    var: str, levels: Sequence[float], values: np.ndarray
) -> dict[str, np.ndarray]:
    """``<var>_q<level>`` columns of quantiles ``(rows, k)``."""
    return {f"{var}_q{format_level(lv)}": values[:, j] for j, lv in enumerate(levels)}


def probability_columns(
    var: str, thresholds: Sequence[float], values: np.ndarray
) -> dict[str, np.ndarray]:
    """``<var>_p_gt_<t>`` columns of exceedance probabilities ``(rows, k)``."""
    return {f"{var}_p_gt_{format_level(t)}": values[:, j] for j, t in enumerate(thresholds)}


def param_columns(var: str, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``<var>_<param>`` columns of distribution parameters."""
    return {f"{var}_{name}": np.asarray(v) for name, v in params.items()}


def predictive_columns(fc: Predictive) -> dict[str, np.ndarray]:
    """The columns of one :class:`~probcast.dists.Predictive` (any form)."""
    cols: dict[str, np.ndarray]
    if fc.kind == "params":
        cols = param_columns(fc.variable, fc.params)
    elif fc.kind == "members":
        cols = member_columns(fc.variable, fc.values)
    elif fc.kind == "quantiles":
        assert fc.levels is not None
        cols = quantile_columns(fc.variable, list(fc.levels), fc.values)
    else:
        cols = {f"{FC_PREFIX}{fc.variable}": fc.values}
    ts = sorted(fc.probabilities)
    if ts:
        stacked = np.stack([fc.probabilities[t] for t in ts], axis=1)
        cols.update(probability_columns(fc.variable, ts, stacked))
    return cols


def predictive_table(
    keys: pd.DataFrame, forecasts: Sequence[Predictive]
) -> tuple[pd.DataFrame, dict[str, str]]:
    """A prediction table of ``forecasts`` beside ``keys``, and the families of its params."""
    cols: dict[str, np.ndarray] = {}
    families: dict[str, str] = {}
    for fc in forecasts:
        cols.update(predictive_columns(fc))
        if fc.kind == "params":
            families[fc.variable] = str(fc.family)
    frame = pd.DataFrame(cols, index=keys.index)
    return pd.concat([keys, frame], axis=1), families


@dataclass
class ColumnSet:
    """The forecast columns of one variable in a table."""

    members: list[str] = field(default_factory=list)
    quantiles: dict[float, str] = field(default_factory=dict)
    probabilities: dict[float, str] = field(default_factory=dict)
    other: dict[str, str] = field(default_factory=dict)
    point: str | None = None
    flags: dict[str, str] = field(default_factory=dict)


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
        elif rest == SOURCE:
            out.flags[rest] = col
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
    return tuple(dists.get(family).param_names)


def _all_param_names() -> set[str]:
    return {p for d in dists.DISTRIBUTIONS.values() for p in d.param_names}


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


def to_predictive(
    df: pd.DataFrame,
    variable: str,
    *,
    family: str | None = None,
    kind: Kind | None = None,
    source: str = "<table>",
) -> Predictive:
    """Build the :class:`~probcast.dists.Predictive` of ``variable`` from the columns of ``df``.

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
            without a family when no members or quantiles are there to score instead (the
            point column ``fc_<var>`` is the raw forecast, never the parameters' stand-in;
            members or quantiles beside parameters without a family are the forecast, the
            parameters only their mean: :mod:`probcast.predict` writes mixtures so).
    """
    cs = parse_columns(df.columns, variable)
    kinds = available_kinds(cs, family)
    if kind is None:
        params_like = sorted(c for p, c in cs.other.items() if p in _all_param_names())
        if family is None and ((not kinds and cs.other) or (kinds == ["point"] and params_like)):
            # Else the raw forecast fc_<var> would be scored in place of the parameters.
            raise ValueError(
                f"{source}: variable {variable!r} has columns "
                f"{params_like or sorted(cs.other.values())} that look like distribution "
                "parameters but no family was given (probcast verify --family "
                f"NAME:{variable}=FAMILY, family=, or a sidecar "
                '{"families": {"' + variable + '": FAMILY}}; families: '
                f"{', '.join(sorted(dists.DISTRIBUTIONS))})"
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
        return Predictive(variable, kind, df[cs.members].to_numpy("float64"), probabilities=probs)
    if kind == "quantiles":
        lv = sorted(cs.quantiles)
        if any(not 0 < a < 1 for a in lv):
            raise ValueError(f"{source}: quantile levels of {variable!r} must be in (0, 1): {lv}")
        vals = df[[cs.quantiles[a] for a in lv]].to_numpy("float64")
        return Predictive(variable, kind, vals, levels=np.asarray(lv), probabilities=probs)
    if kind == "params":
        assert family is not None
        names = _param_names(family)
        vals = df[[cs.other[p] for p in names]].to_numpy("float64")
        return Predictive(
            variable, kind, vals, param_names=names, family=family, probabilities=probs
        )
    assert cs.point is not None
    return Predictive(variable, "point", df[cs.point].to_numpy("float64"), probabilities=probs)


def normalise_keys(df: pd.DataFrame, source: str = "<table>") -> pd.DataFrame:
    """Coerce key columns: times (``init_time``, ``valid_time``) to UTC, ``lead_time`` to hours.

    Whatever the file format gave: NetCDF gives naive times and timedelta lead times.

    Raises:
        ValueError: A key column is missing.
    """
    missing = [k for k in KEY_COLUMNS if k not in df.columns]
    if missing:
        raise ValueError(f"{source}: missing key columns {missing}; expected {list(KEY_COLUMNS)}")
    out = df.copy()
    out["station"] = station_ids.as_text(out["station"])  # 7, 7.0 and "7" alike
    for col in ("init_time", "valid_time"):
        if col in out:
            try:
                out[col] = pd.to_datetime(out[col], utc=True)
            except (ValueError, TypeError) as err:
                raise ValueError(f"{source}: column {col!r}: expected times ({err})") from None
    lead = out["lead_time"]
    if pd.api.types.is_timedelta64_dtype(lead):
        out["lead_time"] = lead.dt.total_seconds() / 3600.0
    else:
        try:
            out["lead_time"] = lead.astype("float64")
        except (ValueError, TypeError) as err:
            raise ValueError(
                f"{source}: column 'lead_time': expected hours as numbers ({err})"
            ) from None
    return out
