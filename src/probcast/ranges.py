"""Which variable's physical range a column's values have, and float noise at its bounds.

One rule for station tables (:mod:`probcast.validate`), grids
(:mod:`probcast.ingest.grid_values`), prediction inputs (:mod:`probcast.model.fallback`) and
forecasts to verify (:mod:`probcast.verify.checks`).
"""

from __future__ import annotations

import numpy as np

from probcast.schema import FC_PREFIX, OBS_PREFIX, VARIABLES

NOISE_TOLERANCE = 1e-4
"""Largest excess over a physical bound, relative to the bound's range, clipped as noise."""


def ranged_variable(column: str) -> str | None:
    """The variable whose units and physical range a column's values have, else None.

    ``fc_<var>``/``obs_<var>`` of a known variable, and an extra model's ``fc_<var>_<model>``
    (``fc_t2m_ukmo``); not the derived ``fc_<var>_spread`` and ``..._nbr<k>_<stat>``.
    """
    if not column.startswith((FC_PREFIX, OBS_PREFIX)):
        return None
    var, _, model = column.split("_", 1)[1].partition("_")
    derived = "spread" in model.split("_") or "_nbr" in f"_{model}"
    extra = bool(model) and column.startswith(FC_PREFIX) and not derived
    return var if var in VARIABLES and (not model or extra) else None


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
