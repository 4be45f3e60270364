"""The references the issued forecasts are judged against, fitted once and kept in the state.

From a reference (training) period table: a global EMOS per variable
(:func:`probcast.baselines.fit_emos`, the family's default) and the raw error statistics
of the NWP bias check. Both are stored in the monitor state with the table's SHA-256, and
refitted only when another table is given.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from probcast import io
from probcast.baselines.emos import EmosModel, fit_emos
from probcast.monitor.rolling import error_reference
from probcast.monitor.state import MonitorState
from probcast.monitor.tables import read_tables

log = logging.getLogger(__name__)
KEY = "references"


def fit_references(frame: pd.DataFrame, variables: Sequence[str]) -> dict[str, Any]:
    """EMOS coefficients and raw error statistics of ``variables`` on ``frame``.

    Returns:
        ``{"emos": {var: EmosModel.to_dict()}, "errors": {var: [mean, sd]}}`` (variables
        without ``fc_<var>`` and ``obs_<var>`` are left out).
    """
    emos: dict[str, Any] = {}
    for var in variables:
        if {f"fc_{var}", f"obs_{var}"} <= set(frame.columns):
            emos[var] = fit_emos(frame, var).to_dict()
            log.info("EMOS reference of %r fitted on %d rows", var, len(frame))
    return {"emos": emos, "errors": error_reference(frame, list(variables))}


def stored_references(
    state: MonitorState, table: str | Path | None, variables: Sequence[str]
) -> tuple[dict[str, EmosModel], dict[str, list[float]]]:
    """The references of ``table`` (fitted now, or read from the state when unchanged).

    With no table, the state's stored references (if any) are used.
    """
    stored = state.get(KEY) or {}
    if table is not None:
        digest = io.sha256_file(table)
        have = set(stored.get("variables", []))
        if stored.get("sha256") != digest or not set(variables) <= have:
            frame = read_tables([table])
            stored = {"sha256": digest, "variables": sorted(variables), "source": str(table)}
            stored.update(fit_references(frame, variables))
            state.put(KEY, stored)
    emos = {v: EmosModel.from_dict(d) for v, d in stored.get("emos", {}).items()}
    return emos, dict(stored.get("errors", {}))
