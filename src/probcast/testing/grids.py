"""Small synthetic canonical gridded datasets (forecast + truth) for tests and examples.

The truth is a smooth random field per run; the raw forecast is a biased, displaced and
noisy version of it, so neighbourhood predictors carry information. Precipitation (``tp``)
is clipped at zero with many dry points; temperature (``t2m``) is smooth around 280 K.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from probcast import schema
from probcast.testing import products as product_grids

LAYOUTS = ("projected", "regular", "point")


def _coords(
    shape: tuple[int, int], layout: str, spacing: float = 10000.0
) -> tuple[dict[str, object], tuple[str, ...]]:
    if layout == "projected":
        grid = product_grids.grid(shape, spacing=spacing)
        return {str(k): v for k, v in grid.coords.items()}, ("y", "x")
    lat = 40.0 + 0.1 * np.arange(shape[0])
    lon = -100.0 + 0.1 * np.arange(shape[1])
    if layout == "regular":
        return {"latitude": ("latitude", lat), "longitude": ("longitude", lon)}, (
            "latitude",
            "longitude",
        )
    if layout == "point":
        la, lo = np.meshgrid(lat, lon, indexing="ij")
        jitter = np.random.default_rng(1).uniform(-0.02, 0.02, size=(2, la.size))
        return {
            "latitude": ("point", la.ravel() + jitter[0]),
            "longitude": ("point", lo.ravel() + jitter[1]),
        }, ("point",)
    raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")


def _smooth(rng: np.random.Generator, n: int, shape: tuple[int, int]) -> np.ndarray:
    yy, xx = np.meshgrid(np.linspace(0, 1, shape[0]), np.linspace(0, 1, shape[1]), indexing="ij")
    out = np.zeros((n, *shape))
    for _ in range(3):
        k = rng.uniform(1.0, 3.0, size=(n, 2, 1, 1))
        phase = rng.uniform(0, 2 * np.pi, size=(n, 1, 1))
        out += np.sin(2 * np.pi * (k[:, 0] * xx + k[:, 1] * yy) + phase) / 3
    return out


# Per variable: (truth offset, truth scale, forecast bias); tp and tcc are then clipped.
SCALES: dict[str, tuple[float, float, float]] = {
    "tp": (0.0, 6.0, 0.0),
    "t2m": (280.0, 5.0, 1.0),
    "td2m": (275.0, 4.0, -0.5),
    "ws10": (5.0, 3.0, 0.5),
    "u10": (0.0, 5.0, 0.5),
    "v10": (0.0, 5.0, -0.5),
    "msl": (101_300.0, 1_000.0, 50.0),
    "sp": (97_000.0, 1_000.0, 50.0),
    "tcc": (0.5, 0.45, 0.05),
}


def _scaled(var: str, truth: np.ndarray, fc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit-free smooth fields -> physical values of ``var`` (biased forecast)."""
    if var not in SCALES:
        raise ValueError(f"synthetic grids know {sorted(SCALES)}, not {var!r}")
    if var == "tp":  # many dry points; the forecast drizzles
        return 6.0 * np.maximum(truth, 0.0), 5.0 * np.maximum(fc + 0.1, 0.0)
    offset, scale, bias = SCALES[var]
    truth, fc = offset + scale * truth, offset + bias + scale * fc
    if var == "ws10":
        return np.abs(truth), np.abs(fc)
    if var == "tcc":
        return np.clip(truth, 0.0, 1.0), np.clip(fc, 0.0, 1.0)
    return truth, fc


def forecast_grid(
    shape: tuple[int, int] = (24, 32),
    n_runs: int = 8,
    *,
    layout: str = "projected",
    variables: Sequence[str] = ("tp",),
    lead_hours: Sequence[float] = (24.0,),
    start: str = "2021-03-01",
    seed: int = 0,
    spacing: float = 10000.0,
) -> xr.Dataset:
    """Canonical forecast/truth dataset ``fc_<var>``/``obs_<var>``.

    Args:
        shape: ``(ny, nx)`` (``point`` layout: ``ny * nx`` jittered points).
        n_runs: Daily reference times from ``start``.
        layout: ``projected`` (LCC ``y``/``x``, 2-D lat/lon, grid mapping), ``regular``
            (1-D ``latitude``/``longitude``) or ``point``.
        variables: Any of :data:`SCALES` (``tp``, ``t2m``, ``td2m``, ``ws10``, ``u10``,
            ``v10``, ``msl``, ``sp``, ``tcc``).
        lead_hours: Forecast periods.
        start: First reference time.
        seed: Random seed.
        spacing: Grid spacing of the ``projected`` layout in metres (10 km; NBM's CONUS
            grid is 2345 x 1597 at 2.54 km: at 10 km that many points would span the globe).

    Returns:
        Dataset with dims ``(forecast_reference_time, forecast_period, *grid)``.
    """
    rng = np.random.default_rng(seed)
    coords, dims = _coords(shape, layout, spacing)
    n_p = len(lead_hours)
    fields = {}
    for var in variables:
        truth = _smooth(rng, n_runs * n_p, shape).reshape(n_runs, n_p, *shape)
        fc = np.roll(truth, 2, axis=-1) + rng.normal(0.0, 0.2, truth.shape)
        truth, fc = _scaled(var, truth, fc)
        units = {"units": schema.VARIABLES[var].units}
        full = ("forecast_reference_time", "forecast_period", *dims)
        if len(dims) == 1:
            flat = (n_runs, n_p, shape[0] * shape[1])
            fc, truth = fc.reshape(flat), truth.reshape(flat)
        fields[f"fc_{var}"] = (full, fc, units)
        fields[f"obs_{var}"] = (full, truth, units)
    coords["forecast_reference_time"] = pd.date_range(start, periods=n_runs, freq="D").to_numpy()
    coords["forecast_period"] = pd.to_timedelta(list(lead_hours), unit="h").to_numpy()
    return xr.Dataset(fields, coords=coords)
