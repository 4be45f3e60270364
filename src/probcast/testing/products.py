"""Synthetic gridded forecasts with real coordinate names, for tests and benchmarks.

The grid is a Lambert conformal conic grid like the NBM CONUS 2.5 km grid (2345 x 1597
points at full size), with 2-D latitude/longitude computed from the projection (spherical
earth, one standard parallel) and the CF grid-mapping variable.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from probcast import schema

NBM_CONUS_SHAPE = (1597, 2345)
"""(y, x) points of the NBM CONUS 2.5 km grid."""
GRID_MAPPING = "lambert_conformal_conic"
_EARTH_RADIUS = 6371200.0
_PARALLEL = 25.0
_CENTRAL_LON = -95.0
_LCC = {
    "grid_mapping_name": "lambert_conformal_conic",
    "standard_parallel": _PARALLEL,
    "longitude_of_central_meridian": _CENTRAL_LON,
    "latitude_of_projection_origin": _PARALLEL,
    "earth_radius": _EARTH_RADIUS,
}

FAMILIES = {
    "t2m": "normal",
    "td2m": "normal",
    "u10": "normal",
    "v10": "normal",
    "ws10": "truncated_normal",
    "tp": "censored_logistic",
    "tcc": "censored_normal_01",
}
"""Seven variables with the default family of their kind."""


def _lcc_latlon(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse spherical Lambert conformal conic (Snyder 1987, eqs. 14-10 to 14-18)."""
    phi1 = np.deg2rad(_PARALLEL)
    lam0 = np.deg2rad(_CENTRAL_LON)
    n = np.sin(phi1)
    f = np.cos(phi1) * np.tan(np.pi / 4 + phi1 / 2) ** n / n
    rho0 = _EARTH_RADIUS * f / np.tan(np.pi / 4 + phi1 / 2) ** n
    xx, yy = np.meshgrid(x, y)
    rho = np.hypot(xx, rho0 - yy)
    theta = np.arctan2(xx, rho0 - yy)
    lat = 2.0 * np.arctan((_EARTH_RADIUS * f / rho) ** (1.0 / n)) - np.pi / 2
    lon = lam0 + theta / n
    return np.rad2deg(lat), np.rad2deg(lon)


def grid(shape: tuple[int, int] = (64, 96), spacing: float = 2539.7) -> xr.Dataset:
    """An empty LCC grid: x/y (m), 2-D latitude/longitude and the grid-mapping variable.

    Args:
        shape: ``(ny, nx)``.
        spacing: Grid spacing in metres (2.54 km as the NBM).

    Returns:
        Dataset with coordinates only.
    """
    ny, nx = shape
    x = (np.arange(nx) - nx / 2) * spacing
    y = (np.arange(ny) + 400) * spacing
    lat, lon = _lcc_latlon(x, y)
    coords = {
        "y": ("y", y, {"standard_name": "projection_y_coordinate", "units": "m"}),
        "x": ("x", x, {"standard_name": "projection_x_coordinate", "units": "m"}),
        "latitude": (("y", "x"), lat),
        "longitude": (("y", "x"), lon),
        GRID_MAPPING: ((), np.int32(0), dict(_LCC)),
    }
    return xr.Dataset(coords=coords)


def _smooth(shape: tuple[int, ...], rng: np.random.Generator, waves: int = 4) -> np.ndarray:
    """Smooth field in about [-1, 1]: a sum of random plane waves over the last two dims."""
    ny, nx = shape[-2:]
    yy, xx = np.meshgrid(np.linspace(0, 1, ny), np.linspace(0, 1, nx), indexing="ij")
    field = np.zeros(shape, dtype=np.float32)
    for _ in range(waves):
        kx, ky = rng.uniform(1, 6, size=2)
        phase = rng.uniform(0, 2 * np.pi, size=(*shape[:-2], 1, 1))
        wave = np.sin(2 * np.pi * (kx * xx + ky * yy) + phase) / waves
        field += wave.astype(np.float32)
    return field


_LOC = {  # (mean, amplitude, scale mean) in canonical units
    "t2m": (285.0, 15.0, 1.5),
    "td2m": (278.0, 12.0, 2.0),
    "u10": (0.0, 8.0, 2.0),
    "v10": (0.0, 8.0, 2.0),
    "ws10": (6.0, 4.0, 1.5),
    "tp": (-1.0, 4.0, 1.0),
    "tcc": (0.5, 0.6, 0.2),
    "msl": (101300.0, 1500.0, 150.0),
}


def _time_coords(lead_hours: Sequence[float], with_frt_dim: bool) -> dict[str, object]:
    frt = pd.Timestamp("2024-01-15T00:00").to_datetime64()
    fp = pd.to_timedelta(list(lead_hours), unit="h").to_numpy()
    coords: dict[str, object] = {"forecast_period": ("forecast_period", fp)}
    coords["forecast_reference_time"] = ("forecast_reference_time", [frt]) if with_frt_dim else frt
    return coords


def params(
    shape: tuple[int, int] = (64, 96),
    variables: Sequence[str] = tuple(FAMILIES),
    lead_hours: Sequence[float] = (24.0,),
    *,
    with_frt_dim: bool = False,
    seed: int = 0,
) -> xr.Dataset:
    """Smooth location/scale fields ``<var>_loc``/``<var>_scale`` on an LCC grid.

    Args:
        shape: ``(ny, nx)``.
        variables: Variables (keys of :data:`FAMILIES` or ``msl``).
        lead_hours: Forecast periods in hours.
        with_frt_dim: Make forecast_reference_time a dimension of length 1.
        seed: Random seed.

    Returns:
        Dataset with dims ``([forecast_reference_time,] forecast_period, y, x)``.
    """
    rng = np.random.default_rng(seed)
    base = grid(shape)
    lead = (1, len(lead_hours)) if with_frt_dim else (len(lead_hours),)
    dims = (("forecast_reference_time",) if with_frt_dim else ()) + ("forecast_period", "y", "x")
    fields = {}
    for var in variables:
        mean, amp, scale = _LOC[var]
        loc = mean + amp * _smooth((*lead, *shape), rng)
        spread = scale * (1.0 + 0.5 * _smooth((*lead, *shape), rng))
        units = schema.VARIABLES[var].units
        fields[f"{var}_loc"] = (dims, loc.astype(np.float32), {"units": units})
        fields[f"{var}_scale"] = (dims, spread.astype(np.float32), {"units": units})
    ds = xr.Dataset(fields, coords=base.coords).assign_coords(
        _time_coords(lead_hours, with_frt_dim)
    )
    return ds


def members(
    shape: tuple[int, int] = (32, 48),
    variables: Sequence[str] = ("t2m", "tp"),
    n_members: int = 11,
    *,
    seed: int = 0,
) -> xr.Dataset:
    """Ensemble members (smooth field plus member perturbation) along ``realization``.

    Args:
        shape: ``(ny, nx)``.
        variables: Variables.
        n_members: Number of members.
        seed: Random seed.

    Returns:
        Dataset with dims ``(realization, forecast_period, y, x)``.
    """
    rng = np.random.default_rng(seed)
    base = grid(shape)
    dims = ("realization", "forecast_period", "y", "x")
    fields = {}
    for var in variables:
        mean, amp, scale = _LOC[var]
        centre = mean + amp * _smooth((1, *shape), rng)
        noise = scale * _smooth((n_members, 1, *shape), rng)
        values = centre[None] + noise
        if schema.VARIABLES[var].kind in ("nonneg", "positive"):
            values = np.maximum(values, 0.0)
        fields[var] = (dims, values.astype(np.float32), {"units": schema.VARIABLES[var].units})
    coords = {**_time_coords((24.0,), False), "realization": np.arange(n_members)}
    return xr.Dataset(fields, coords=base.coords).assign_coords(coords)


def flat(da: xr.DataArray, lead: str) -> np.ndarray:
    """``da`` as ``(lead, points)``: the lead dimension first, then every other flattened."""
    times = [d for d in ("forecast_reference_time", "forecast_period") if d in da.dims]
    order = [lead, *times, *(d for d in da.dims if d != lead and d not in times)]
    return np.asarray(da.transpose(*order).values).reshape(da.sizes[lead], -1)


def assert_probabilities_as_table(
    paths: Mapping[str, Any], table: pd.DataFrame, thresholds: Mapping[str, Sequence[float]]
) -> None:
    """Gridded probability products equal a station table's ``<var>_p_gt_<t>`` columns.

    Within the 2**-7 storage step of probabilities (0.004); the table's rows in the grid's
    flattened order (reference time, period, then the grid).
    """
    for var, ts in thresholds.items():
        with xr.open_dataset(paths[f"probabilities_{var}"]) as ds:
            name = next(str(n) for n in ds.data_vars if "threshold" in ds[n].dims)
            got = flat(ds[name], "threshold")
        for k, t in enumerate(ts):
            want = table[f"{var}_p_gt_{t:g}"].to_numpy()
            np.testing.assert_allclose(got[k], want, atol=0.004, equal_nan=True)
