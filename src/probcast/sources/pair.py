"""Pair forecasts with observations at their valid times.

Instantaneous variables take, per station and variable, the observation nearest to the
valid time within ``match_minutes`` (reports are rarely on the hour: METARs at :50/:53).
Wind direction is the exception: ``obs_wdir10`` comes from the report that gave
``obs_ws10`` (NaN when that report has no direction, e.g. a calm), so speed and direction
always describe one wind; a truth without any speed pairs directions on their own.
``obs_tp`` is the amount over the ``accumulation_hours`` ending at the valid time: a report
whose own period (``tp_hours``) equals it, or else the sum of ``accumulation_hours``
consecutive 1-h amounts (all present), within the same tolerance.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def _nearest(
    fc: pd.DataFrame,
    obs: pd.DataFrame,
    col: str,
    tolerance: pd.Timedelta,
    take: str | None = None,
) -> np.ndarray:
    """Per forecast row, ``take`` (default ``col``) of the nearest report with a ``col``."""
    take = take or col
    cols = list(dict.fromkeys(["station", "time", col, take]))
    right = obs.loc[obs[col].notna(), cols].sort_values("time")
    left = fc[["station", "valid_time"]].reset_index().sort_values("valid_time")
    if right.empty or left.empty:
        return np.full(len(fc), np.nan)
    # One time resolution on both sides (CSV readers may give microseconds).
    right["time"] = right["time"].dt.as_unit("ns")
    left["valid_time"] = left["valid_time"].dt.as_unit("ns")
    merged = pd.merge_asof(
        left,
        right,
        left_on="valid_time",
        right_on="time",
        by="station",
        direction="nearest",
        tolerance=tolerance,
    )
    return merged.set_index("index")[take].reindex(fc.index).to_numpy(dtype="float64")


def _precip(obs: pd.DataFrame, hours: float) -> pd.DataFrame:
    if "obs_tp" not in obs or "tp_hours" not in obs:
        return pd.DataFrame(columns=["station", "time", "obs_tp"])
    direct = obs.loc[obs["tp_hours"] == hours, ["station", "time", "obs_tp"]]
    hourly = obs.loc[
        (obs["tp_hours"] == 1.0) & obs["obs_tp"].notna(), ["station", "time", "obs_tp"]
    ]
    if hours == 1.0 or hourly.empty:
        return direct
    parts = []
    for _, g in hourly.groupby("station"):
        # Sum over whole hours: one value per clock hour (the last report in it).
        s = g.set_index(g["time"].dt.ceil("h"))["obs_tp"]
        s = s[~s.index.duplicated(keep="last")].asfreq("h")
        total = s.rolling(int(hours), min_periods=int(hours)).sum().dropna()
        parts.append(
            pd.DataFrame(
                {"station": g["station"].iloc[0], "time": total.index, "obs_tp": total.values}
            )
        )
    return pd.concat([direct, *parts], ignore_index=True)


def pair(
    fc: pd.DataFrame,
    obs: pd.DataFrame,
    variables: Sequence[str],
    *,
    accumulation_hours: float,
    match_minutes: float,
) -> pd.DataFrame:
    """Add ``obs_<var>`` columns to the forecast rows ``fc`` (NaN where none matches)."""
    out = fc.copy()
    tol = pd.Timedelta(minutes=match_minutes)
    for var in variables:
        col = f"obs_{var}"
        if var == "tp":
            out[col] = _nearest(out, _precip(obs, accumulation_hours), col, tol)
        elif var == "wdir10" and col in obs and obs.get("obs_ws10", pd.Series()).notna().any():
            out[col] = _nearest(out, obs, "obs_ws10", tol, take=col)  # the speed's report
        elif col in obs:
            out[col] = _nearest(out, obs, col, tol)
        else:
            out[col] = np.nan
    return out
