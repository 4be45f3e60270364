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
complete vectors are scored (every component observed and forecast); forecasts compared in
one verification are scored on the same cases (:func:`tidy_multivariate`), and each score
comes with the number of vectors and their dimension (``vectors_<over>``, ``dim_<over>``):
a sum over 8 leads and one over 40 are different quantities.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
import scoringrules as sr
from scipy.stats import rankdata

from probcast.products.table import parse_columns
from probcast.schema import OBS_PREFIX
from probcast.verify.calibration import pit_members

OVER = {"lead_time": ("station", "init_time"), "station": ("init_time", "lead_time")}
"""Vector dimension -> the keys that identify one vector."""
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
        The vectors whose every component is observed and forecast (empty when none), over
        the components chosen by :func:`_components` (at most :data:`MAX_DIM`).
    """
    if over not in OVER:
        raise ValueError(f"over must be one of {sorted(OVER)}, got {over!r}")
    keys = list(OVER[over])
    frame = rows[[*keys, over]].reset_index(drop=True).assign(_row=np.arange(len(rows)))
    wide = frame.pivot_table(index=keys, columns=over, values="_row", aggfunc="first")
    idx = wide.to_numpy()
    idx = idx[:, _components(idx, obs)]
    complete = np.isfinite(idx).all(axis=1)
    idx = idx[complete].astype(np.int64)
    if not len(idx):
        m, d = members.shape[1], idx.shape[1]
        return np.empty((0, d)), np.empty((0, m, d))
    o = obs[idx]
    f = np.moveaxis(members[idx], 1, 2)  # (n, D, M) -> (n, M, D)
    ok = np.isfinite(o).all(axis=1) & np.isfinite(f).all(axis=(1, 2))
    return o[ok], f[ok]


def _components(idx: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """Columns of ``idx`` (vector x component row indices) to score, in their order.

    Runs differ in length (an 18 h and a 48 h cycle) and stations have gaps, so vectors over
    *every* component are rarely complete. The components are taken in order of how often
    they are observed, as many as maximise ``components x complete vectors`` (the values
    scored), so a few short runs or gappy stations do not leave no vector at all; beyond
    :data:`MAX_DIM` (stations, or lead times), evenly spaced ones.
    """
    seen = np.zeros(idx.shape, dtype=bool)
    ok = np.isfinite(idx)
    seen[ok] = np.isfinite(obs[idx[ok].astype(np.int64)])
    order = np.argsort(-seen.sum(axis=0), kind="stable")
    # complete vectors over the k most observed components, for every k
    values = np.cumprod(seen[:, order], axis=1).sum(axis=0) * np.arange(1, len(order) + 1)
    values[:1] = -1 if len(order) > 1 else values[:1]  # a vector needs two components
    k = int(np.argmax(values)) + 1 if len(order) else 0
    keep = np.sort(order[:k])
    if len(keep) > MAX_DIM:
        keep = keep[np.linspace(0, len(keep) - 1, MAX_DIM).round().astype(int)]
    return keep


def pit_correlation(o: np.ndarray, f: np.ndarray, seed: int = 0) -> float:
    """Mean rank correlation of the PIT between two components, over all pairs.

    The dependence left in the observations once each component's forecast is known: what
    coherent members can restore (about 0: independent members are right, and neither energy
    nor variogram score can tell them apart). It does not depend on the members' order.

    Args:
        o: ``(n, D)`` observations.
        f: ``(n, M, D)`` members.
        seed: Seed of the randomised PIT (ties).
    """
    if len(o) < 3:
        return float("nan")
    n, m, d = f.shape
    members = np.moveaxis(f, 1, 2).reshape(n * d, m)
    pit = pit_members(o.reshape(-1), members, np.random.default_rng(seed)).reshape(n, d)
    with np.errstate(all="ignore"):
        corr = np.corrcoef(rankdata(pit, axis=0), rowvar=False)
    return float(np.nanmean(corr[~np.eye(d, dtype=bool)]))


def _chunked(
    score: Callable[[np.ndarray, np.ndarray], np.ndarray], o: np.ndarray, f: np.ndarray
) -> np.ndarray:
    """``score`` over vectors in chunks: the estimators hold ``members * dim**2`` per vector."""
    per = max(1, f.shape[1] * f.shape[2] ** 2)
    step = max(1, CHUNK_VALUES // per)
    return np.concatenate([score(o[i : i + step], f[i : i + step]) for i in range(0, len(o), step)])


def multivariate_scores(
    rows: pd.DataFrame,
    members: Mapping[str, np.ndarray],
    *,
    variogram_p: float = 0.5,
    max_vectors: int | None = None,
) -> pd.DataFrame:
    """Energy and variogram scores over lead times and over stations; CRPS of lead sums.

    Args:
        rows: Prediction rows with key columns and ``obs_<var>``.
        members: Variable -> ``(rows, M)`` members.
        variogram_p: Order of the variogram score.
        max_vectors: Score at most this many vectors per dimension (evenly spaced; None:
            all).

    Returns:
        Tidy table: ``variable``, ``metric`` (``energy_lead_time``, ``variogram_lead_time``,
        ``energy_station``, ``variogram_station``, ``crps_lead_sum``; and
        ``pit_corr_lead_time``, ``pit_corr_station``: :func:`pit_correlation`;
        ``vectors_<over>`` and ``dim_<over>``: the vectors scored and their components),
        ``value`` (mean), ``n`` (vectors scored).
    """
    out = []
    for var, ens in members.items():
        obs = rows[f"{OBS_PREFIX}{var}"].to_numpy(dtype=np.float64)
        for over in OVER:
            o, f = vectors(rows, np.asarray(ens, dtype=np.float64), obs, over)
            if len(o) == 0 or o.shape[1] < 2:
                continue
            if max_vectors is not None and len(o) > max_vectors:
                pick = np.linspace(0, len(o) - 1, max_vectors).round().astype(np.int64)
                o, f = o[pick], f[pick]
            es = _chunked(lambda a, b: sr.es_ensemble(a, b, backend="numpy"), o, f)
            vs = _chunked(lambda a, b: sr.vs_ensemble(a, b, p=variogram_p, backend="numpy"), o, f)
            out.append((var, f"energy_{over}", float(np.mean(es)), len(o)))
            out.append((var, f"variogram_{over}", float(np.mean(vs)), len(o)))
            out.append((var, f"pit_corr_{over}", pit_correlation(o, f), len(o)))
            out.append((var, f"vectors_{over}", float(len(o)), len(o)))
            out.append((var, f"dim_{over}", float(o.shape[1]), len(o)))
            if over == "lead_time":
                total = sr.crps_ensemble(o.sum(axis=1), f.sum(axis=2), backend="numpy")
                out.append((var, "crps_lead_sum", float(np.mean(total)), len(o)))
    return pd.DataFrame(out, columns=["variable", "metric", "value", "n"])


def member_matrix(table: pd.DataFrame, var: str) -> np.ndarray | None:
    """The ``<var>_m000 ...`` member columns of a prediction table, ``(rows, M)``, or None."""
    cols = parse_columns(table.columns, var).members
    return table[cols].to_numpy(dtype=np.float64) if len(cols) > 1 else None


def _common_cases(
    merged: Mapping[str, pd.DataFrame], members: Mapping[str, dict[str, np.ndarray]], var: str
) -> dict[str, np.ndarray]:
    """Per method with members of ``var``, the positions of the cases every such method has.

    A case counts when it is observed and all its members are finite; each method's rows
    are then restricted to the cases common to all, so their vectors are the same ones.
    """
    keys: dict[str, tuple[pd.MultiIndex, np.ndarray]] = {}
    for method, table in merged.items():
        if var not in members[method]:
            continue
        ok = np.isfinite(table[f"{OBS_PREFIX}{var}"].to_numpy(dtype=np.float64))
        ok &= np.isfinite(members[method][var]).all(axis=1)
        frame = pd.DataFrame(
            {
                "station": table["station"].astype(str).to_numpy(),
                "init_time": pd.to_datetime(table["init_time"], utc=True).to_numpy(),
                "lead_time": table["lead_time"].to_numpy(dtype=np.float64),
            }
        )
        keys[method] = (pd.MultiIndex.from_frame(frame), ok)
    common: pd.MultiIndex | None = None
    for index, ok in keys.values():
        common = index[ok] if common is None else common.intersection(index[ok])
    if common is None:
        return {}
    return {m: np.flatnonzero(index.isin(common) & ok) for m, (index, ok) in keys.items()}


def tidy_multivariate(
    merged: Mapping[str, pd.DataFrame], variables: Sequence[str], *, max_vectors: int
) -> pd.DataFrame:
    """Multivariate scores of every forecast with members, as rows of the tidy score table.

    Forecasts with members of one variable are scored on the cases all of them have
    (observed, every member finite), so their scores compare.

    Args:
        merged: Method -> its prediction table merged with the truth (keys, ``obs_<var>``,
            member columns).
        variables: Variables to score.
        max_vectors: Vectors scored per dimension at most (see :func:`multivariate_scores`).

    Returns:
        ``method``, ``variable``, ``by`` (``all``), ``key`` (``all``), ``metric``, ``value``.
    """
    members = {
        method: {
            v: m
            for v in variables
            if f"{OBS_PREFIX}{v}" in table and (m := member_matrix(table, v)) is not None
        }
        for method, table in merged.items()
    }
    rows = []
    for var in variables:
        for method, pos in _common_cases(merged, members, var).items():
            table = merged[method].iloc[pos].reset_index(drop=True)
            scores = multivariate_scores(
                table, {var: members[method][var][pos]}, max_vectors=max_vectors
            )
            rows.append(scores.assign(method=method, by="all", key="all"))
    columns = ["method", "variable", "by", "key", "metric", "value"]
    if not rows:
        return pd.DataFrame(
            {c: pd.Series(dtype="float64" if c == "value" else "object") for c in columns}
        )
    return pd.concat(rows, ignore_index=True)[columns]
