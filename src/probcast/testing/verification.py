"""Small synthetic truth and forecast tables with known calibration, for tests and demos.

The truth of each case is ``y = mu + sigma * z`` with a known ``mu`` (the "signal") and
``sigma``; forecasts of every form are built from the same ``(mu, sigma)``, so they are
calibrated by construction, while the raw forecast is ``mu`` plus a bias: a deterministic
forecast without spread. Real coordinate names as in the canonical station table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from probcast.schema import FC_PREFIX, OBS_PREFIX


def truth_table(
    *,
    n_stations: int = 6,
    n_inits: int = 20,
    lead_times: tuple[float, ...] = (6.0, 12.0, 24.0),
    variable: str = "t2m",
    seed: int = 0,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """A canonical truth table and the per-case ``(mu, sigma)`` behind it.

    Returns:
        ``(table, mu, sigma)``; the table holds keys, valid time, coordinates, the raw
        forecast ``fc_<var>`` (``mu + 0.5``) and the observation ``obs_<var>``.
    """
    rng = np.random.default_rng(seed)
    stations = [f"ST{i:03d}" for i in range(n_stations)]
    inits = pd.date_range("2020-01-01", periods=n_inits, freq="D", tz="UTC")
    idx = pd.MultiIndex.from_product([stations, inits, lead_times], names=["s", "i", "l"])
    df = idx.to_frame(index=False).rename(
        columns={"s": "station", "i": "init_time", "l": "lead_time"}
    )
    df["valid_time"] = df["init_time"] + pd.to_timedelta(df["lead_time"], unit="h")
    codes = pd.factorize(df["station"])[0]
    df["latitude"] = 50.0 + codes * 0.5
    df["longitude"] = 5.0 + codes * 0.7
    n = len(df)
    mu = 280.0 + 5.0 * rng.standard_normal(n)
    sigma = 1.0 + 0.05 * df["lead_time"].to_numpy() + 0.2 * rng.random(n)
    df[f"{FC_PREFIX}{variable}"] = mu + 0.5
    df[f"{OBS_PREFIX}{variable}"] = mu + sigma * rng.standard_normal(n)
    return df, mu, sigma


def keys_of(truth: pd.DataFrame) -> pd.DataFrame:
    """The key columns of a truth table (the start of a prediction table)."""
    return truth[["station", "init_time", "lead_time"]].copy()


def members_table(
    truth: pd.DataFrame,
    mu: np.ndarray,
    sigma: np.ndarray,
    *,
    n_members: int = 20,
    seed: int = 1,
    variable: str = "t2m",
) -> pd.DataFrame:
    """Calibrated ensemble members ``<var>_m000`` ... drawn from ``N(mu, sigma**2)``."""
    rng = np.random.default_rng(seed)
    draws = mu[:, None] + sigma[:, None] * rng.standard_normal((mu.size, n_members))
    cols = {f"{variable}_m{i:03d}": draws[:, i] for i in range(n_members)}
    return pd.concat([keys_of(truth), pd.DataFrame(cols, index=truth.index)], axis=1)


def quantiles_table(
    truth: pd.DataFrame,
    mu: np.ndarray,
    sigma: np.ndarray,
    *,
    levels: tuple[float, ...] = tuple(np.round(np.arange(0.05, 0.96, 0.05), 2)),
    variable: str = "t2m",
) -> pd.DataFrame:
    """Exact quantiles ``<var>_q<level>`` of ``N(mu, sigma**2)``."""
    cols = {f"{variable}_q{a:g}": stats.norm.ppf(a, mu, sigma) for a in levels}
    return pd.concat([keys_of(truth), pd.DataFrame(cols, index=truth.index)], axis=1)


def normal_params_table(
    truth: pd.DataFrame, mu: np.ndarray, sigma: np.ndarray, *, variable: str = "t2m"
) -> pd.DataFrame:
    """Parameters ``<var>_loc``, ``<var>_scale`` of the family ``normal``."""
    cols = {f"{variable}_loc": mu, f"{variable}_scale": sigma}
    return pd.concat([keys_of(truth), pd.DataFrame(cols, index=truth.index)], axis=1)
