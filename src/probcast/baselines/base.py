"""What every baseline shares: the protocol and table helpers.

A baseline is fitted on a canonical training station table (``obs_<var>``, ``fc_<var>``,
``lead_time``, ``station``) and applied to a test table; it returns a
:class:`probcast.dists.Predictive`: parameters of a registered family, or members.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from probcast.dists import Predictive
from probcast.schema import FC_PREFIX, OBS_PREFIX, VARIABLES


@runtime_checkable
class Baseline(Protocol):
    """A classical post-processing method: fit on a training table, predict a test table."""

    name: str
    var: str

    def fit(self, train: pd.DataFrame) -> Baseline:
        """Fit on a canonical training table; returns ``self``."""
        ...

    def predict(self, table: pd.DataFrame) -> Predictive:
        """Predictive distributions for every row of ``table`` (NaN where fc is missing)."""
        ...


def target_columns(table: pd.DataFrame, var: str, *, need_obs: bool) -> tuple[str, str]:
    """Return ``(fc_<var>, obs_<var>)`` after checking they exist in ``table``."""
    if var not in VARIABLES:
        raise KeyError(f"unknown variable {var!r}; expected one of {', '.join(sorted(VARIABLES))}")
    fc, obs = FC_PREFIX + var, OBS_PREFIX + var
    needed = [fc, "lead_time"] + ([obs] if need_obs else [])
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise KeyError(
            f"table lacks column(s) {missing} needed for target {var!r}; has {list(table.columns)}"
        )
    return fc, obs


def training_rows(train: pd.DataFrame, columns: Sequence[str], var: str) -> pd.DataFrame:
    """Rows of ``train`` where every one of ``columns`` is finite; error when none is."""
    ok, _ = training_values(train, columns, var)
    return train.loc[ok]


def training_values(
    train: pd.DataFrame, columns: Sequence[str], var: str
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """:func:`training_rows` as arrays: the mask of the rows kept and their float64 values.

    Raises:
        KeyError: A column is missing.
        ValueError: No row has every one of ``columns`` finite.
    """
    missing = [c for c in columns if c not in train.columns]
    if missing:
        raise KeyError(f"training table lacks column(s) {missing} needed for {var!r}")
    values = {c: train[c].to_numpy(dtype=np.float64) for c in dict.fromkeys(columns)}
    ok = np.logical_and.reduce([np.isfinite(v) for v in values.values()])
    if not ok.any():
        raise ValueError(f"no training row has finite values of {list(columns)} for {var!r}")
    return ok, values if ok.all() else {c: v[ok] for c, v in values.items()}


def clip_physical(values: np.ndarray, var: str) -> np.ndarray:
    """Clip to the physical bounds of bounded variables (``nonneg``/``positive``/``fraction``)."""
    v = VARIABLES[var]
    if v.kind == "real":
        return values
    return np.clip(values, v.valid_min, v.valid_max)


def lead_edges(lead: np.ndarray, n_bins: int) -> np.ndarray:
    """Inner edges of at most ``n_bins`` lead-time bins (empty: a single bin).

    With no more distinct lead times than bins each lead time is its own bin (edges at the
    midpoints); otherwise the edges are quantiles of the training lead times.
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    uniq = np.unique(lead[np.isfinite(lead)])
    if n_bins == 1 or len(uniq) <= 1:
        return np.array([], dtype=np.float64)
    if len(uniq) <= n_bins:
        return 0.5 * (uniq[1:] + uniq[:-1])
    return np.unique(np.quantile(lead, np.linspace(0.0, 1.0, n_bins + 1)[1:-1]))


def assign_bins(lead: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each lead time (leads outside the training range go to the end bins)."""
    return np.searchsorted(np.asarray(edges), np.asarray(lead, dtype=np.float64), side="right")
