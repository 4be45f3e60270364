"""Small synthetic canonical station tables for tests, examples and benchmarks.

The truth is a smooth seasonal/diurnal signal plus station offsets and noise; the raw
forecasts are biased, noisy versions of it, so a calibrated model can clearly beat them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def station_table(
    n_stations: int = 4,
    n_inits: int = 40,
    leads: tuple[float, ...] = (6.0, 12.0, 24.0),
    *,
    targets: tuple[str, ...] = ("t2m", "tp"),
    start: str = "2021-01-01",
    seed: int = 0,
) -> pd.DataFrame:
    """A canonical station table with one row per (station, init_time, lead_time).

    Args:
        n_stations: Number of stations (``ST000``, ``ST001``, ...).
        n_inits: Number of daily 00 UTC runs.
        leads: Lead times in hours.
        targets: Any of ``t2m`` (K, normal errors) and ``tp`` (kg m-2, zeros and skew).
        start: First initialisation date.
        seed: Random seed.

    Returns:
        Table with key, time and static columns, ``fc_<var>`` / ``obs_<var>`` per target
        and an extra predictor ``fc_ws10``.
    """
    rng = np.random.default_rng(seed)
    inits = pd.date_range(start, periods=n_inits, freq="D", tz="UTC")
    st, it, lt = np.meshgrid(np.arange(n_stations), np.arange(n_inits), np.asarray(leads))
    st, it, lt = st.ravel(), it.ravel(), lt.ravel()
    table = pd.DataFrame(
        {
            "station": [f"ST{s:03d}" for s in st],
            "init_time": inits[it],
            "lead_time": lt.astype("float64"),
        }
    )
    table["valid_time"] = table["init_time"] + pd.to_timedelta(table["lead_time"], unit="h")
    table["latitude"] = 45.0 + 0.25 * st
    table["longitude"] = 5.0 + 0.5 * st
    table["altitude"] = 50.0 * st
    n = len(table)
    hour = table["valid_time"].dt.hour.to_numpy()
    wind = np.abs(rng.normal(5.0, 2.0, n))
    table["fc_ws10"] = wind
    if "t2m" in targets:
        truth = (
            275.0
            + 4.0 * np.sin(2 * np.pi * hour / 24)
            + 6.0 * np.sin(2 * np.pi * it / 365.0)
            - 0.0065 * 50.0 * st
        )
        truth = truth + rng.normal(0.0, 1.5, n)
        table["fc_t2m"] = truth + 1.0 + 0.5 * st + rng.normal(0.0, 1.0 + 0.05 * lt, n)
        table["obs_t2m"] = truth
    if "tp" in targets:
        wet = rng.random(n) < 0.4
        amount = np.where(wet, rng.gamma(0.8, 2.0, n), 0.0)
        table["fc_tp"] = np.maximum(0.0, 0.7 * amount + rng.normal(0.0, 0.6, n))
        table["obs_tp"] = amount
    return table
