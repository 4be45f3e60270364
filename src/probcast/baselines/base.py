"""What every baseline shares: the protocol, the forecast container and table helpers.

A baseline is fitted on a canonical training station table (``obs_<var>``, ``fc_<var>``,
``lead_time``, ``station``) and applied to a test table; it returns a :class:`Forecast`,
either distribution parameters of a registered family or an ensemble of members.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import jax.numpy as jnp
import numpy as np
import pandas as pd

from probcast import dists
from probcast.schema import FC_PREFIX, OBS_PREFIX, VARIABLES


@dataclass
class Forecast:
    """Predictive distributions for the rows of a table.

    Attributes:
        var: Target variable.
        family: Registered family name when parametric, else ``None``.
        params: Family parameters, each of shape ``(rows,)``.
        members: Ensemble members ``(rows, m)`` when not parametric.
    """

    var: str
    family: str | None = None
    params: dict[str, np.ndarray] | None = None
    members: np.ndarray | None = None

    def __post_init__(self) -> None:
        if (self.params is None) == (self.members is None):
            raise ValueError("a Forecast holds either params (with a family) or members")
        if self.params is not None and self.family is None:
            raise ValueError("a parametric Forecast needs its family name")

    def crps(self, y: np.ndarray, fair: bool = True) -> np.ndarray:
        """CRPS per row (closed form, or the ensemble estimator; NaN where undefined)."""
        y = np.asarray(y, dtype=np.float32)
        if self.members is not None:
            members = jnp.asarray(self.members)
            return np.asarray(dists.crps_ensemble(members, jnp.asarray(y), fair=fair))
        dist = dists.get(str(self.family))
        return np.asarray(dist.crps(self._jparams(), jnp.asarray(y)))

    def mean(self) -> np.ndarray:
        """Mean per row."""
        if self.members is not None:
            return np.asarray(self.members).mean(axis=-1)
        return np.asarray(dists.get(str(self.family)).mean(self._jparams()))

    def quantiles(self, levels: Sequence[float]) -> np.ndarray:
        """Quantiles ``(rows, k)`` at ``levels`` in [0, 1]."""
        lv = np.asarray(levels, dtype=np.float32)
        if self.members is not None:
            return np.moveaxis(np.quantile(self.members, lv, axis=-1), 0, -1)
        dist = dists.get(str(self.family))
        return np.asarray(dists.quantiles(dist, self._jparams(), jnp.asarray(lv)))

    def _jparams(self) -> dict[str, jnp.ndarray]:
        assert self.params is not None
        return {k: jnp.asarray(v, dtype=jnp.float32) for k, v in self.params.items()}

    def __len__(self) -> int:
        if self.members is not None:
            return int(self.members.shape[0])
        assert self.params is not None
        return int(np.broadcast_shapes(*(np.shape(v) for v in self.params.values()))[0])


@runtime_checkable
class Baseline(Protocol):
    """A classical post-processing method: fit on a training table, predict a test table."""

    name: str
    var: str

    def fit(self, train: pd.DataFrame) -> Baseline:
        """Fit on a canonical training table; returns ``self``."""
        ...

    def predict(self, table: pd.DataFrame) -> Forecast:
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
    ok = np.ones(len(train), dtype=bool)
    for c in columns:
        ok &= np.isfinite(train[c].to_numpy(dtype=np.float64))
    if not ok.any():
        raise ValueError(f"no training row has finite values of {list(columns)} for {var!r}")
    return train.loc[ok]


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
