"""The rows of a served forecast: padding to known sizes, and every row asked for answered.

:func:`bucketed` pads the rows to predict to a power of two (the compiled kernels are
reused); :func:`complete` gives the answer one row per station (or point) and lead time
asked for, a row whose input is missing from the cycle (a lead the station's run lacks, a
grid point whose forecast is NaN) answered with NaN values and ``<var>_source = missing``
instead of being left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd

from probcast.products.table import PAD_MARK, SOURCE


def bucketed(
    table: pd.DataFrame, smallest: int = 64, usable: pd.DataFrame | None = None
) -> pd.DataFrame:
    """``table`` padded to the next power of two rows (at least ``smallest``).

    The network is compiled once per input shape: without padding, every new number of rows
    compiles it again (seconds on a CPU). Pad rows copy a row whose forecasts are all
    present (of ``table``, else of ``usable``: rows asked for whose inputs are missing are
    then answered as missing, not refused as a table nothing can be predicted from), under
    station ids ``<id>~pad<k>`` (unique keys, :data:`~probcast.products.table.PAD_MARK`);
    they are dropped from the answer and left out of the domain warning.
    """
    n = len(table)
    size = max(smallest, 1 << max(0, n - 1).bit_length())
    if size == n:
        return table
    row = _usable_row(table)
    if row is None and usable is not None:
        row = _usable_row(usable)
    if row is None:
        row = table.iloc[[n - 1]]
    pad = row.iloc[np.zeros(size - n, dtype=int)].copy()
    pad["station"] = [f"{s}{PAD_MARK}{k}" for k, s in enumerate(pad["station"].astype(str))]
    return pd.concat([table, pad.reindex(columns=table.columns)], ignore_index=True)


def _usable_row(table: pd.DataFrame) -> pd.DataFrame | None:
    """The first row of ``table`` whose ``fc_*`` values are all finite, as a frame."""
    if table.empty:
        return None
    fc = [c for c in table.columns if str(c).startswith("fc_")]
    if not fc:
        return table.iloc[[0]]
    values = table[fc].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float)
    ok = np.flatnonzero(np.isfinite(values).all(axis=1))
    return table.iloc[[int(ok[0])]] if ok.size else None


def complete(
    pred: pd.DataFrame,
    stations: Sequence[str],
    leads: Sequence[float],
    cycle: datetime,
    targets: Sequence[str],
) -> pd.DataFrame:
    """``pred`` with a row for every (station, lead time) asked for, in that order.

    Absent rows get the keys, NaN values and ``<var>_source = missing`` for every target.
    """
    want = pd.MultiIndex.from_product(
        [list(dict.fromkeys(stations)), sorted({float(h) for h in leads})],
        names=["station", "lead_time"],
    )
    have = pred.assign(lead_time=pred["lead_time"].astype(float))
    have = have.set_index(["station", "lead_time"])
    present = set(have.index)
    missing = pd.MultiIndex.from_tuples([k for k in want if k not in present], names=want.names)
    if not len(missing):
        return pred
    init = pd.Timestamp(cycle)
    init = init.tz_localize("UTC") if init.tzinfo is None else init.tz_convert("UTC")
    extra = pd.DataFrame(
        {
            "station": missing.get_level_values("station"),
            "lead_time": missing.get_level_values("lead_time"),
        }
    )
    if "init_time" in pred:
        extra["init_time"] = init
    if "valid_time" in pred:
        extra["valid_time"] = init + pd.to_timedelta(extra["lead_time"], unit="h")
    for var in targets:
        if f"{var}_{SOURCE}" in pred:
            extra[f"{var}_{SOURCE}"] = "missing"
    out = pd.concat([pred, extra.reindex(columns=pred.columns)], ignore_index=True)
    order = {k: i for i, k in enumerate(want)}
    keys = zip(out["station"], out["lead_time"], strict=True)
    rank = [order.get((s, float(h)), len(order)) for s, h in keys]
    return out.iloc[np.argsort(rank, kind="stable")].reset_index(drop=True)
