"""The raw deterministic forecast as a point mass: its CRPS is the absolute error."""

from __future__ import annotations

import numpy as np
import pandas as pd

from probcast.baselines.base import target_columns
from probcast.dists import Predictive


class RawBaseline:
    """Point mass at ``fc_<var>`` (a one-member ensemble): the reference to beat."""

    def __init__(self, var: str) -> None:
        self.var = var
        self.name = "raw"

    def fit(self, train: pd.DataFrame) -> RawBaseline:
        """Nothing to fit; checks the columns exist."""
        target_columns(train, self.var, need_obs=True)
        return self

    def predict(self, table: pd.DataFrame) -> Predictive:
        """One member per row: the raw forecast."""
        fc, _ = target_columns(table, self.var, need_obs=False)
        return Predictive.from_members(self.var, table[fc].to_numpy(dtype=np.float32)[:, None])
