"""Which variable's physical range a column's values have, and float noise at its bounds.

One rule for station tables (:mod:`probcast.validate`), grids
(:mod:`probcast.ingest.grid_values`), prediction inputs (:mod:`probcast.model.fallback`) and
forecasts to verify (:mod:`probcast.verify.checks`).
"""

from __future__ import annotations

import logging
import re

import numpy as np

from probcast.schema import FC_PREFIX, OBS_PREFIX, VARIABLES, UnitError, unit_affine, units_hint

log = logging.getLogger(__name__)

NOISE_TOLERANCE = 1e-4
"""Largest excess over a physical bound, relative to the bound's range, clipped as noise."""


DERIVED = frozenset(
    {
        *("spread", "std", "sd", "stdev", "var", "iqr"),
        *("anom", "anomaly", "diff", "delta", "trend", "change", "tendency"),
        *("bias", "err", "error"),
    }
)
"""Suffix words of ``fc_<var>_...`` predictors that are not values of ``<var>`` (differences,
spreads): they keep their values and are not range-checked as ``<var>``."""


def ranged_variable(column: str) -> str | None:
    """The variable whose units and physical range a column's values have, else None.

    ``fc_<var>``/``obs_<var>`` of a known variable, and an extra model's ``fc_<var>_<model>``
    (``fc_t2m_ukmo``, ``fc_t2m_max``); not a derived quantity whose suffix names a spread,
    a difference or a neighbourhood statistic (:data:`DERIVED`, ``..._nbr<k>_<stat>``).
    """
    if not column.startswith((FC_PREFIX, OBS_PREFIX)):
        return None
    var, tokens = _parts(column)
    derived = any(t in DERIVED or t.startswith("nbr") for t in tokens)
    extra = bool(tokens) and column.startswith(FC_PREFIX) and not derived
    return var if var in VARIABLES and (not tokens or extra) else None


def _parts(column: str) -> tuple[str, list[str]]:
    """``fc_t2m_nbr3_std`` -> ``("t2m", ["nbr3", "std"])`` (lower-case suffix words)."""
    var, _, rest = column.split("_", 1)[1].partition("_")
    return var, rest.lower().split("_") if rest else []


def derived_variable(column: str) -> tuple[str, int] | None:
    """``(variable, power)`` of a derived ``fc_<var>_...`` column: its units are ``<var>``'s^power.

    Power 1 for spreads and differences (``fc_t2m_spread``, ``fc_sp_trend``), 2 for a
    variance (``fc_t2m_var``); None for any other column (neighbourhood statistics are
    computed by probcast from converted fields).
    """
    if not column.startswith(FC_PREFIX):
        return None
    var, tokens = _parts(column)
    if var not in VARIABLES or not tokens or any(t.startswith("nbr") for t in tokens):
        return None
    derived = [t for t in tokens if t in DERIVED]
    if not derived:
        return None
    return var, 2 if "var" in derived else 1


_SQUARED = re.compile(r"^\(?([^()\s]+?)\)?(?:\*\*2|\^2|2)$")


def difference_scale(units: str, var: str, power: int = 1) -> float | None:
    """Factor from a spread or difference of ``var`` in ``units`` to canonical units.

    A difference converts by the scale of the units alone (a spread in degC is one in K; in
    hPa it is 100 Pa); ``delta_`` spellings are accepted. With ``power`` 2 (a variance)
    ``units`` is a squared unit (``K2``, ``K**2``, ``(m/s)^2``) and the factor is squared.

    Returns:
        The factor, or None if ``units`` is not convertible.
    """
    base = str(units).strip()
    if power == 2:
        match = _SQUARED.match(base.replace(" ", ""))
        if match is None:
            return None
        base = match.group(1)
    for spelling in dict.fromkeys((base, base.replace("delta_", ""))):
        try:
            scale, _ = unit_affine(spelling, var)
        except UnitError:
            continue
        return scale**power
    return None


def clip_float_noise(values: np.ndarray, var: str) -> tuple[np.ndarray, int, np.ndarray]:
    """Clip values outside the physical range of ``var`` by float noise only.

    Args:
        values: Values in canonical units (NaN allowed).
        var: Canonical variable name.

    Returns:
        ``(values with the noise clipped, number clipped, mask of the remaining
        out-of-range values)``; the input array is not modified.
    """
    info = VARIABLES[var]
    arr = np.asarray(values, dtype="float64")
    tol = NOISE_TOLERANCE * (info.valid_max - info.valid_min)
    with np.errstate(invalid="ignore"):
        low, high = arr < info.valid_min, arr > info.valid_max
        noise = (low & (arr >= info.valid_min - tol)) | (high & (arr <= info.valid_max + tol))
    out = np.where(noise, np.clip(arr, info.valid_min, info.valid_max), arr) if noise.any() else arr
    return out, int(noise.sum()), (low | high) & ~noise


def range_message(source: str, col: str, var: str, values: np.ndarray, bad: np.ndarray) -> str:
    """One line for values of column ``col`` (variable ``var``) outside its physical range.

    Names the source, the column, the count and the worst value with its row, and the units
    in which the values would fit (:func:`probcast.schema.units_hint`); ``bad`` marks them.
    """
    info = VARIABLES[var]
    with np.errstate(invalid="ignore"):
        excess = np.where(bad, np.maximum(info.valid_min - values, values - info.valid_max), 0)
    i = int(np.argmax(excess))
    finite = values[np.isfinite(values)]
    return (
        f"{source}: column {col!r}: {int(bad.sum())} value(s) outside the physical range "
        f"[{info.valid_min:g}, {info.valid_max:g}] {info.units} for {var}, worst {values[i]:g} "
        f"in row {i} (found min {finite.min():g}, max {finite.max():g}); "
        + units_hint(float(finite.min()), float(finite.max()), var)
    )


def checked_values(
    source: str, col: str, var: str, values: np.ndarray, hint: str = ""
) -> np.ndarray:
    """``values`` of column ``col`` (variable ``var``) checked against its physical range.

    Infinite values and values outside the range beyond float noise are refused; float
    noise at a bound is clipped (and logged).

    Args:
        source: The table's name for messages.
        col: The column.
        var: Its canonical variable.
        values: Its values (float64, NaN allowed).
        hint: Appended to the out-of-range message.

    Returns:
        The values, float noise clipped.

    Raises:
        ValueError: Infinite values, or values outside the range (naming the column, the
            worst value and its row, and the units they would fit).
    """
    info = VARIABLES[var]
    if np.isinf(values).any():
        raise ValueError(
            f"{source}: column {col!r} has {int(np.isinf(values).sum())} infinite value(s); "
            f"expected finite {info.units} or NaN"
        )
    clipped, n_noise, bad = clip_float_noise(values, var)
    if bad.any():
        raise ValueError(range_message(source, col, var, values, bad) + hint)
    if n_noise:
        log.info("%s: %s: clipped %d value(s) outside [%g, %g] by float noise only "
                 "(<= %g of the range)", source, col, n_noise, info.valid_min,
                 info.valid_max, NOISE_TOLERANCE)  # fmt: skip
    return clipped
