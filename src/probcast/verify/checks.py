"""Checks of a forecast before it is scored: nothing that would be scored silently wrong.

Probabilities outside ``[0, 1]``, infinite values, parameters outside their family's domain
(a scale or shape <= 0, whose CRPS is NaN or negative), medians outside the variable's physical
range (a forecast in other units than it says) and crossing quantiles are refused with a
message naming the forecast, the variable and the column or row.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from probcast.dists import Predictive
from probcast.products.table import parse_columns
from probcast.ranges import clip_float_noise
from probcast.schema import VARIABLES, range_error

FLOAT_NOISE = 1e-5
"""Relative tolerance of the quantile-crossing check (rounding of stored values)."""


def check_forecast(fc: Predictive, df: pd.DataFrame, name: str) -> None:
    """Refuse a forecast that would be scored silently wrong.

    Args:
        fc: One variable's forecast, rows aligned with ``df``.
        df: The table it was read from (for the column names).
        name: Name of the forecast in messages.

    Raises:
        ValueError: Probabilities outside [0, 1] (naming the column), infinite values
            (missing values must be NaN), parameters outside their family's domain (a scale
            or shape <= 0: :data:`POSITIVE_PARAMS`), values outside the variable's physical range
            (its median for a distribution), crossing quantiles.
    """
    var = fc.variable
    cs = parse_columns(df.columns, var)
    for t, col in sorted(cs.probabilities.items()):
        p = np.asarray(fc.probabilities.get(t, df[col].to_numpy("float64")), dtype="float64")
        bad = np.isinf(p) | (p < 0) | (p > 1)
        if bad.any():
            raise ValueError(
                f"forecast {name!r}: column {col!r} has {int(bad.sum())} probabilities outside "
                f"[0, 1] (first {p[bad][0]:g} in row {int(np.flatnonzero(bad)[0])})"
            )
    vals = np.asarray(fc.values, dtype="float64").reshape(len(fc), -1)
    where = f"forecast {name!r}: {var} ({fc.kind})"
    inf = np.isinf(vals).any(axis=1)
    if inf.any():
        raise ValueError(
            f"{where} has infinite values in {int(inf.sum())} cases (first row "
            f"{int(np.flatnonzero(inf)[0])}); missing values must be NaN"
        )
    if fc.kind == "params":
        _check_params(fc, df, cs.other, where)
    if var in VARIABLES and fc.kind == "params":
        _check_range(fc.quantiles([0.5])[:, 0], var, where)
    elif var in VARIABLES:
        _check_values(fc, vals, var, where)
    if fc.kind == "quantiles" and vals.shape[1] > 1:
        step = np.diff(vals, axis=1)
        tol = FLOAT_NOISE * (1.0 + np.abs(vals[:, 1:]))
        cross = (step < -tol).any(axis=1)
        if cross.any():
            r = int(np.flatnonzero(cross)[0])
            levels = [float(a) for a in fc.levels] if fc.levels is not None else []
            raise ValueError(
                f"{where}: quantiles decrease with the level in {int(cross.sum())} cases "
                f"(row {r}: levels {levels}, values {vals[r].tolist()})"
            )


POSITIVE_PARAMS = ("scale", "shape")
"""Parameters that must be > 0 in every family of :mod:`probcast.dists` that has them (a
location or a gamma shift may take any finite value)."""


def _check_params(fc: Predictive, df: pd.DataFrame, columns: dict[str, str], where: str) -> None:
    """Refuse parameters outside the family's domain: a CRPS of them is NaN or negative."""
    for name in POSITIVE_PARAMS:
        if name not in fc.params:
            continue
        v = np.asarray(fc.params[name], dtype="float64")
        with np.errstate(invalid="ignore"):
            bad = v <= 0  # NaN: a missing forecast, dropped and counted
        if bad.any():
            r = int(np.flatnonzero(bad)[0])
            col = columns.get(name, f"{fc.variable}_{name}")
            raise ValueError(
                f"{where}, family {fc.family}: column {col!r} has {int(bad.sum())} value(s) "
                f"<= 0 (first {v[r]:g} in row {r}{_case(df, r)}); {name} must be > 0"
            )


def _case(df: pd.DataFrame, row: int) -> str:
    """``, case station=..., init_time=..., lead_time=...`` of a row (its key columns)."""
    keys = [k for k in ("station", "init_time", "lead_time") if k in df.columns]
    if not keys or row >= len(df):
        return ""
    return ", case " + ", ".join(f"{k}={df[k].iloc[row]}" for k in keys)


def _check_values(fc: Predictive, vals: np.ndarray, var: str, where: str) -> None:
    """Members, quantiles or points: any value a whole range beyond it, or medians outside.

    One min/max pass when every value is in range (the usual case); the medians only of the
    cases with a value outside it. Not the tails: a Gaussian forecast of a bounded variable
    (wind speed, precipitation) may put a low quantile or member below 0 and is still a
    forecast to score; a forecast in the wrong units gets its medians wrong too.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all NaN: nothing to check
        lo, hi = float(np.nanmin(vals)), float(np.nanmax(vals))
    if not np.isfinite(lo) or range_error(lo, hi, var) is None:
        return
    info = VARIABLES[var]
    with np.errstate(invalid="ignore"):
        rows = ((vals < info.valid_min) | (vals > info.valid_max)).any(axis=1)
    _check_range(_medians(fc, vals[rows]), var, where)  # first: it names the units that fit
    _check_gross(vals, var, where)


def _medians(fc: Predictive, vals: np.ndarray) -> np.ndarray:
    """Each case's median of its members, quantiles (the level nearest 0.5) or point."""
    if fc.kind == "quantiles" and fc.levels is not None:
        return vals[:, int(np.argmin(np.abs(np.asarray(fc.levels, dtype="float64") - 0.5)))]
    if fc.kind == "members" and vals.shape[1] > 1:
        if not np.isnan(vals).any():
            return np.median(vals, axis=1)  # 5x faster than nanmedian
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: NaN
            return np.nanmedian(vals, axis=1)
    return vals[:, 0]


def _check_range(values: np.ndarray, var: str, where: str) -> None:
    """Refuse forecast values outside ``var``'s physical range (beyond float noise).

    A forecast in other units than it says (a CSV without its sidecar) would otherwise be
    scored as if it were in canonical units: a temperature in degC read as K.
    """
    finite = values[np.isfinite(values)]
    if not finite.size or range_error(float(finite.min()), float(finite.max()), var) is None:
        return
    _, _, bad = clip_float_noise(finite, var)
    if bad.any():
        problem = range_error(float(finite.min()), float(finite.max()), var, n_bad=int(bad.sum()))
        raise ValueError(
            f"{where}: {problem} (a forecast file is read in canonical units unless its "
            "metadata, or a CSV's sidecar <file>.json, names others: probcast predict --units)"
        )


def _check_gross(vals: np.ndarray, var: str, where: str) -> None:
    """Refuse any value a whole physical range beyond it: corrupted, not a Gaussian tail."""
    info = VARIABLES[var]
    width = info.valid_max - info.valid_min
    with np.errstate(invalid="ignore"):
        gross = (vals < info.valid_min - width) | (vals > info.valid_max + width)
    if gross.any():
        r, c = (int(i[0]) for i in np.nonzero(gross))
        raise ValueError(
            f"{where}: {int(gross.sum())} value(s) beyond any plausible {var} (physical range "
            f"[{info.valid_min:g}, {info.valid_max:g}] {info.units}), first {vals[r, c]:g} "
            f"in row {r}"
        )
