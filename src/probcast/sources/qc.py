"""Observation quality control before pairing, with counts per station, check and variable.

Checks (thresholds in :data:`RANGES`, :data:`SPIKE`, :data:`PERSIST_HOURS`):

* ``range``: outside the physical range (:data:`probcast.schema.VARIABLES`, plus rh,
  wdir10, gust);
* ``spike``: a value differing from *both* neighbours (each within 3 h) by more than
  ``SPIKE[var]`` in the same direction (a step there and back);
* ``persistence``: the same value reported for at least ``PERSIST_HOURS`` hours (a stuck
  sensor); calm wind (0) and zero precipitation are not checked;
* ``consistency``: dew point above temperature (+0.1 K) removes the dew point; a wind
  direction with zero speed removes the direction; a gust below the mean speed removes the
  gust.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from probcast.schema import VARIABLES
from probcast.sources.obs import REMOVED_COLUMNS, removed_rows
from probcast.sources.variables import EXTRA_RANGES

RANGES = {**{k: (v.valid_min, v.valid_max) for k, v in VARIABLES.items()}, **EXTRA_RANGES}
SPIKE = {"t2m": 8.0, "td2m": 8.0, "msl": 1000.0, "sp": 1000.0, "ws10": 20.0}
PERSIST_HOURS = 12.0
PERSIST_VARS = ("t2m", "td2m", "msl", "sp", "ws10")
NEIGHBOUR_HOURS = 3.0
CONSISTENCY: list[tuple[str, set[str], Callable[[pd.DataFrame], pd.Series]]] = [
    ("td2m", {"obs_t2m", "obs_td2m"}, lambda o: o["obs_td2m"] > o["obs_t2m"] + 0.1),
    ("wdir10", {"obs_ws10", "obs_wdir10"}, lambda o: o["obs_ws10"] == 0),
    ("gust", {"obs_ws10", "obs_gust"}, lambda o: o["obs_gust"] < o["obs_ws10"]),
]
"""``consistency`` rules, in order: (variable removed, columns needed, failing rows)."""


def _spikes(t: np.ndarray, x: np.ndarray, limit: float) -> np.ndarray:
    ok = np.isfinite(x)
    flag = np.zeros(len(x), dtype=bool)
    idx = np.flatnonzero(ok)
    if len(idx) < 3:
        return flag
    tt, xx = t[idx], x[idx]
    d_prev, d_next = xx[1:-1] - xx[:-2], xx[1:-1] - xx[2:]
    near = ((tt[1:-1] - tt[:-2]) <= NEIGHBOUR_HOURS) & ((tt[2:] - tt[1:-1]) <= NEIGHBOUR_HOURS)
    spike = near & (np.abs(d_prev) > limit) & (np.abs(d_next) > limit)
    spike &= np.sign(d_prev) == np.sign(d_next)
    flag[idx[1:-1][spike]] = True
    return flag


def _persistent(t: np.ndarray, x: np.ndarray, var: str) -> np.ndarray:
    flag = np.zeros(len(x), dtype=bool)
    idx = np.flatnonzero(np.isfinite(x))
    if len(idx) < 2:
        return flag
    xx, tt = x[idx], t[idx]
    run_start = 0
    for i in range(1, len(xx) + 1):
        if i == len(xx) or xx[i] != xx[run_start]:
            still = var == "ws10" and xx[run_start] == 0
            if not still and tt[i - 1] - tt[run_start] >= PERSIST_HOURS:
                flag[idx[run_start:i]] = True
            run_start = i
    return flag


def _drop(
    out: pd.DataFrame,
    pos: np.ndarray,
    counts: dict[str, dict[str, int]],
    check: str,
    var: str,
    mask: np.ndarray,
) -> None:
    col = f"obs_{var}"
    mask = np.asarray(mask, dtype=bool) & out.loc[pos, col].notna().to_numpy()
    if mask.any():
        out.loc[pos[mask], col] = np.nan
        per_var = counts.setdefault(check, {})
        per_var[var] = per_var.get(var, 0) + int(mask.sum())


def apply_qc(obs: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run every check on ``obs`` (``station``, ``time``, ``obs_*``).

    Returns:
        ``(cleaned, removed)``: a copy with failing values set to NaN, and the counts.
    """
    out = obs.sort_values(["station", "time"], kind="stable").reset_index(drop=True)
    rows: list[dict[str, object]] = []
    since = out["time"] - pd.Timestamp("1900-01-01", tz="UTC")
    hours = (since / pd.Timedelta(hours=1)).to_numpy()
    obs_cols = [c for c in out.columns if c.startswith("obs_")]
    have = set(obs_cols)
    consistency = [(v, sorted(needs), rule) for v, needs, rule in CONSISTENCY if needs <= have]
    for sid, idx in out.groupby("station", sort=False).indices.items():
        pos = np.asarray(idx)
        counts: dict[str, dict[str, int]] = {}
        t = hours[pos]
        for col in obs_cols:
            var = col[4:]
            x = out.loc[pos, col].to_numpy(dtype="float64")
            if var in RANGES:
                lo, hi = RANGES[var]
                _drop(out, pos, counts, "range", var, (x < lo) | (x > hi))
                x = out.loc[pos, col].to_numpy(dtype="float64")
            if var in SPIKE:
                _drop(out, pos, counts, "spike", var, _spikes(t, x, SPIKE[var]))
                x = out.loc[pos, col].to_numpy(dtype="float64")
            if var in PERSIST_VARS:
                _drop(out, pos, counts, "persistence", var, _persistent(t, x, var))
        for var, needs, rule in consistency:
            _drop(out, pos, counts, "consistency", var, rule(out.loc[pos, needs]).to_numpy())
        for check, c in counts.items():
            rows += removed_rows(str(sid), check, c)
    return out, pd.DataFrame(rows, columns=REMOVED_COLUMNS)
