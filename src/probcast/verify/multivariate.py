"""Multivariate scores of members: energy and variogram scores, CRPS of aggregates.

Marginal scores (CRPS per row) cannot tell coherent members (scenarios) from independent
draws; these can:

* **energy score** (Gneiting et al. 2008, Test 17) of the vector over lead times (per
  station and run) or over stations (per run and lead time);
* **variogram score** of order 0.5 (Scheuerer & Hamill 2015, Mon. Wea. Rev. 143), more
  sensitive to the correlation structure;
* **CRPS of the sum over lead times** (e.g. a daily precipitation total from 6-hourly
  members): member-wise sums are only right if the members are coherent in time.

Scores come from scoringrules (``es_ensemble``, ``vs_ensemble``, ``crps_ensemble``). Only
complete vectors are scored (every component observed and forecast).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd
import scoringrules as sr

from probcast.schema import OBS_PREFIX

OVER = {"lead_time": ("station", "init_time"), "station": ("init_time", "lead_time")}
"""Vector dimension -> the keys that identify one vector."""
STATION_COVERAGE = 0.95
"""Vectors over stations use the stations observed in at least this share of the runs."""
CHUNK_VALUES = 20_000_000
"""Values held at once by the pairwise estimators (about 160 MB of float64)."""
MAX_DIM = 100
"""At most this many components per vector (evenly spaced stations beyond): the variogram
score's cost and memory grow with the square of the dimension."""


def vectors(
    rows: pd.DataFrame, members: np.ndarray, obs: np.ndarray, over: str
) -> tuple[np.ndarray, np.ndarray]:
    """Complete vectors along ``over``: observations ``(n, D)`` and members ``(n, M, D)``.

    Args:
        rows: Key columns of the rows (``station``, ``init_time``, ``lead_time``).
        members: ``(rows, M)`` members.
        obs: ``(rows,)`` observations.
        over: ``lead_time`` or ``station``.

    Returns:
        The vectors whose every component is observed and forecast (empty when none); over
        stations, only those observed in at least :data:`STATION_COVERAGE` of the runs, at
        most :data:`MAX_DIM` of them (evenly spaced).
    """
    if over not in OVER:
        raise ValueError(f"over must be one of {sorted(OVER)}, got {over!r}")
    keys = list(OVER[over])
    frame = rows[[*keys, over]].reset_index(drop=True).assign(_row=np.arange(len(rows)))
    wide = frame.pivot_table(index=keys, columns=over, values="_row", aggfunc="first")
    idx = wide.to_numpy()
    if over == "station":
        # Keep the stations present (forecast and observed) in most runs, so that a few
        # stations with gaps do not leave no complete vector at all.
        seen = np.where(np.isfinite(idx), 1.0, 0.0)
        seen[np.isfinite(idx)] = np.isfinite(obs[idx[np.isfinite(idx)].astype(np.int64)])
        idx = idx[:, seen.mean(axis=0) >= STATION_COVERAGE]
        if idx.shape[1] > MAX_DIM:
            idx = idx[:, np.linspace(0, idx.shape[1] - 1, MAX_DIM).round().astype(int)]
    complete = np.isfinite(idx).all(axis=1)
    idx = idx[complete].astype(np.int64)
    if not len(idx):
        m, d = members.shape[1], idx.shape[1]
        return np.empty((0, d)), np.empty((0, m, d))
    o = obs[idx]
    f = np.moveaxis(members[idx], 1, 2)  # (n, D, M) -> (n, M, D)
    ok = np.isfinite(o).all(axis=1) & np.isfinite(f).all(axis=(1, 2))
    return o[ok], f[ok]


def _chunked(
    score: Callable[[np.ndarray, np.ndarray], np.ndarray], o: np.ndarray, f: np.ndarray
) -> np.ndarray:
    """``score`` over vectors in chunks: the estimators hold ``members * dim**2`` per vector."""
    per = max(1, f.shape[1] * f.shape[2] ** 2)
    step = max(1, CHUNK_VALUES // per)
    return np.concatenate([score(o[i : i + step], f[i : i + step]) for i in range(0, len(o), step)])


def multivariate_scores(
    rows: pd.DataFrame, members: Mapping[str, np.ndarray], *, variogram_p: float = 0.5
) -> pd.DataFrame:
    """Energy and variogram scores over lead times and over stations; CRPS of lead sums.

    Args:
        rows: Prediction rows with key columns and ``obs_<var>``.
        members: Variable -> ``(rows, M)`` members.
        variogram_p: Order of the variogram score.

    Returns:
        Tidy table: ``variable``, ``metric`` (``energy_lead_time``, ``variogram_lead_time``,
        ``energy_station``, ``variogram_station``, ``crps_lead_sum``), ``value`` (mean),
        ``n`` (vectors scored).
    """
    out = []
    for var, ens in members.items():
        obs = rows[f"{OBS_PREFIX}{var}"].to_numpy(dtype=np.float64)
        for over in OVER:
            o, f = vectors(rows, np.asarray(ens, dtype=np.float64), obs, over)
            if len(o) == 0 or o.shape[1] < 2:
                continue
            es = _chunked(lambda a, b: sr.es_ensemble(a, b, backend="numpy"), o, f)
            vs = _chunked(lambda a, b: sr.vs_ensemble(a, b, p=variogram_p, backend="numpy"), o, f)
            out.append((var, f"energy_{over}", float(np.mean(es)), len(o)))
            out.append((var, f"variogram_{over}", float(np.mean(vs)), len(o)))
            if over == "lead_time":
                total = sr.crps_ensemble(o.sum(axis=1), f.sum(axis=2), backend="numpy")
                out.append((var, "crps_lead_sum", float(np.mean(total)), len(o)))
    return pd.DataFrame(out, columns=["variable", "metric", "value", "n"])
