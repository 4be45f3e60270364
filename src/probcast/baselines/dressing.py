"""Error dressing: the raw forecast plus the empirical training errors of its lead time.

Each lead-time bin keeps ``n_members`` evenly spaced quantiles of its training errors
``obs - fc``; a test row's members are its forecast plus those errors, clipped to the
physical bounds (so precipitation members stay >= 0 and pile up at 0 for dry cases).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from probcast import defaults
from probcast.baselines.base import (
    assign_bins,
    clip_physical,
    lead_edges,
    target_columns,
    training_rows,
)
from probcast.dists import Predictive


class DressingBaseline:
    """Additive error dressing per lead-time bin.

    Args:
        var: Target variable.
        n_members: Members per row (quantiles of the training errors at ``(i + 0.5)/n``).
        max_lead_bins: Most lead-time bins (each lead time its own bin when fewer).
    """

    def __init__(
        self, var: str, n_members: int = defaults.MEMBERS, max_lead_bins: int = 12
    ) -> None:
        if n_members < 1:
            raise ValueError(f"n_members must be >= 1, got {n_members}")
        self.var = var
        self.name = "dressing"
        self.n_members = n_members
        self.max_lead_bins = max_lead_bins
        self.edges = np.array([], dtype=np.float64)
        self.errors: np.ndarray | None = None  # (n_bins, n_members)

    def fit(self, train: pd.DataFrame) -> DressingBaseline:
        """Collect the error quantiles of every lead-time bin."""
        fc, obs = target_columns(train, self.var, need_obs=True)
        rows = training_rows(train, [fc, obs, "lead_time"], self.var)
        lead = rows["lead_time"].to_numpy(dtype=np.float64)
        err = rows[obs].to_numpy(dtype=np.float64) - rows[fc].to_numpy(dtype=np.float64)
        self.edges = lead_edges(lead, self.max_lead_bins)
        bins = assign_bins(lead, self.edges)
        levels = (np.arange(self.n_members) + 0.5) / self.n_members
        table = np.empty((len(self.edges) + 1, self.n_members))
        for b in range(len(table)):
            sel = err[bins == b]
            table[b] = np.quantile(sel if len(sel) else err, levels)
        self.errors = table
        return self

    def predict(self, table: pd.DataFrame) -> Predictive:
        """Members ``(rows, n_members)``: forecast plus the errors of the row's bin."""
        if self.errors is None:
            raise RuntimeError("DressingBaseline.predict called before fit")
        fc, _ = target_columns(table, self.var, need_obs=False)
        bins = assign_bins(table["lead_time"].to_numpy(dtype=np.float64), self.edges)
        members = table[fc].to_numpy(dtype=np.float64)[:, None] + self.errors[bins]
        members = clip_physical(members, self.var)
        return Predictive.from_members(self.var, members.astype(np.float32))

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable state."""
        if self.errors is None:
            raise RuntimeError("DressingBaseline.to_dict called before fit")
        return {
            "kind": "dressing",
            "var": self.var,
            "n_members": self.n_members,
            "max_lead_bins": self.max_lead_bins,
            "edges": self.edges.tolist(),
            "errors": self.errors.tolist(),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DressingBaseline:
        """Inverse of :meth:`to_dict`."""
        obj = cls(d["var"], int(d["n_members"]), int(d["max_lead_bins"]))
        obj.edges = np.asarray(d["edges"], dtype=np.float64)
        obj.errors = np.asarray(d["errors"], dtype=np.float64)
        return obj
