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


# Per variable: (mean, seasonal amplitude, diurnal amplitude, noise sd, forecast bias).
NETWORK_VARIABLES: dict[str, tuple[float, float, float, float, float]] = {
    "t2m": (285.0, 10.0, 4.0, 1.5, 0.8),
    "td2m": (278.0, 8.0, 1.5, 1.5, -0.6),
    "u10": (0.5, 1.0, 0.5, 2.5, 0.3),
    "v10": (-0.3, 1.0, 0.5, 2.5, -0.2),
    "msl": (101_300.0, 400.0, 50.0, 600.0, 40.0),
    "tcc": (0.55, 0.1, 0.05, 0.3, 0.05),
    "tp": (0.0, 0.0, 0.0, 0.0, 0.0),
}


NETWORK_LEADS: tuple[float, ...] = tuple(3.0 * k for k in range(1, 41))
"""40 lead times, 3 h to 120 h."""


def network_table(
    n_stations: int = 1000,
    n_days: int = 730,
    leads: tuple[float, ...] = NETWORK_LEADS,
    *,
    targets: tuple[str, ...] = tuple(NETWORK_VARIABLES),
    start: str = "2021-01-01",
    seed: int = 0,
) -> pd.DataFrame:
    """A national-network-size station table (e.g. 1,000 stations x 2 years x 40 leads).

    Vectorised (tens of millions of rows in seconds), ``float32`` predictors and truth, the
    station column categorical. Each target's truth has a seasonal and diurnal cycle, a
    station offset and noise; its forecast a station- and lead-dependent bias and error.

    Args:
        n_stations: Number of stations (``ST0000``, ...).
        n_days: Number of daily 00 UTC runs.
        leads: Lead times in hours.
        targets: Any of :data:`NETWORK_VARIABLES`.
        start: First initialisation date.
        seed: Random seed.

    Returns:
        Canonical station table with ``fc_<var>``/``obs_<var>`` per target.
    """
    unknown = sorted(set(targets) - set(NETWORK_VARIABLES))
    if unknown:
        raise ValueError(f"network_table knows {sorted(NETWORK_VARIABLES)}, not {unknown}")
    rng = np.random.default_rng(seed)
    lead_arr = np.asarray(leads, dtype="float64")
    n_leads = len(lead_arr)
    n = n_stations * n_days * n_leads
    st = np.repeat(np.arange(n_stations, dtype=np.int32), n_days * n_leads)
    day = np.tile(np.repeat(np.arange(n_days, dtype=np.int32), n_leads), n_stations)
    lead = np.tile(lead_arr, n_stations * n_days)
    inits = pd.date_range(start, periods=n_days, freq="D", tz="UTC")
    names = pd.Index([f"ST{s:04d}" for s in range(n_stations)])
    init_time = inits[day]
    table = pd.DataFrame(
        {
            "station": pd.Categorical.from_codes(st, categories=names),
            "init_time": init_time,
            "lead_time": lead,
            "valid_time": init_time + pd.to_timedelta(lead, unit="h"),
        }
    )
    lat = rng.uniform(25.0, 49.0, n_stations)
    lon = rng.uniform(-124.0, -67.0, n_stations)
    alt = rng.gamma(1.5, 400.0, n_stations)
    table["latitude"], table["longitude"], table["altitude"] = lat[st], lon[st], alt[st]
    season = np.sin(2 * np.pi * (day + lead / 24.0) / 365.25).astype(np.float32)
    diurnal = np.sin(2 * np.pi * ((lead % 24.0) - 6.0) / 24.0).astype(np.float32)
    growth = (1.0 + lead / 120.0).astype(np.float32)
    for var in targets:
        mean, amp_s, amp_d, noise, bias = NETWORK_VARIABLES[var]
        offset = rng.normal(0.0, max(noise, 1e-3), n_stations).astype(np.float32)
        station_bias = rng.normal(bias, abs(bias) + 1e-3, n_stations).astype(np.float32)
        if var == "tp":
            wet = rng.random(n, dtype=np.float32) < 0.3
            truth = np.where(wet, rng.gamma(0.7, 3.0, n).astype(np.float32), 0.0)
            error = rng.normal(0.0, 0.8, n).astype(np.float32) * growth
            fc = np.maximum(0.0, 0.8 * truth + error).astype(np.float32)
        else:
            truth = mean + amp_s * season + amp_d * diurnal + offset[st]
            truth = truth + rng.normal(0.0, noise, n).astype(np.float32)
            error = rng.normal(0.0, 0.6 * noise, n).astype(np.float32) * growth
            fc = truth + station_bias[st] + error
            if var == "tcc":
                truth, fc = np.clip(truth, 0.0, 1.0), np.clip(fc, 0.0, 1.0)
        table[f"fc_{var}"] = fc.astype(np.float32)
        table[f"obs_{var}"] = np.asarray(truth, dtype=np.float32)
    return table
