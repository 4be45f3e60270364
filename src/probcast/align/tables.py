"""Join station observations to station forecasts by station and valid time."""

from __future__ import annotations

import pandas as pd

from probcast import station_ids
from probcast.schema import OBS_PREFIX


def _utc(s: pd.Series, what: str) -> pd.Series:
    try:
        t = pd.to_datetime(s)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{what}: cannot parse times ({err})") from None
    return t.dt.tz_localize("UTC") if t.dt.tz is None else t.dt.tz_convert("UTC")


def align_station_obs(
    forecasts: pd.DataFrame,
    observations: pd.DataFrame,
    tolerance: str | pd.Timedelta = "30min",
) -> pd.DataFrame:
    """Attach the observation nearest to each forecast's valid time, per station.

    Args:
        forecasts: Canonical station table (``station``, ``init_time``, ``lead_time``,
            ``valid_time``, ``fc_*``).
        observations: ``station``, ``time`` and ``obs_<var>`` columns.
        tolerance: Largest allowed |obs time - valid time|; farther rows get NaN.

    Returns:
        ``forecasts`` with the ``obs_*`` columns, in the forecasts' row order.

    Raises:
        ValueError: Missing columns, an ``obs_*`` column already in ``forecasts`` or
            duplicate (station, time) observations.
    """
    for name, df, cols in (
        ("forecasts", forecasts, ("station", "valid_time")),
        ("observations", observations, ("station", "time")),
    ):
        missing = [c for c in cols if c not in df]
        if missing:
            raise ValueError(f"{name} lacks column(s) {missing}")
    obs_cols = [c for c in observations if str(c).startswith(OBS_PREFIX)]
    if not obs_cols:
        raise ValueError(f"observations have no obs_<var> column; found {list(observations)}")
    clash = [c for c in obs_cols if c in forecasts]
    if clash:
        raise ValueError(f"forecasts already hold {clash}; drop them before aligning")
    obs = observations[["station", "time", *obs_cols]].copy()
    obs["station"] = station_ids.as_text(obs["station"])
    obs["time"] = _utc(obs["time"], "observations.time")
    dup = obs.duplicated(["station", "time"])
    if dup.any():
        first = obs[dup].iloc[0]
        raise ValueError(
            f"observations: {int(dup.sum())} duplicate (station, time) rows, e.g. "
            f"{first.station} at {first.time}"
        )
    fc = forecasts.copy()
    fc["_row"] = range(len(fc))
    fc["_vt"] = _utc(fc["valid_time"], "forecasts.valid_time")
    fc["_st"] = station_ids.as_text(fc["station"])
    merged = pd.merge_asof(
        fc.sort_values("_vt"),
        obs.rename(columns={"station": "_st"}).sort_values("time"),
        left_on="_vt",
        right_on="time",
        by="_st",
        tolerance=pd.Timedelta(tolerance),
        direction="nearest",
    )
    merged = merged.sort_values("_row").drop(columns=["_row", "_vt", "_st", "time"])
    return merged.reset_index(drop=True)
