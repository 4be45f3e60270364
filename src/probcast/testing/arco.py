"""A small synthetic Zarr store in the ARCO-ERA5 layout (for tests; the values are made up).

Same layout as ``gs://gcp-public-data-arco-era5/ar/full_37-1h-0p25deg-chunk-1.zarr-v3``:
Zarr v2 with consolidated metadata, ``time`` in hours since 1900-01-01, ``latitude``
descending from 90, ``longitude`` 0..360, a ``level`` axis, long variable names with ECMWF
``units`` spellings, one chunk per hour. The grid is coarse (``step`` degrees).

Values (a formula, so tests check them by hand), ``h`` hours since the first time:

* ``2m_temperature`` = 280 + lat / 10 + lon / 100 + 0.1 h (K)
* ``10m_u_component_of_wind`` = lat / 10 (m s**-1); ``10m_v_component_of_wind`` = 2
* ``mean_sea_level_pressure`` = 100000 + 10 lat + lon + h (Pa)
* ``total_precipitation`` = 0.001 (m in the hour ending at ``time``: 1 kg m-2)
* ``temperature`` (on ``level``) = 250 K, a pressure-level field that is never read
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

FORMULAS = {
    "2m_temperature": "K",
    "10m_u_component_of_wind": "m s**-1",
    "10m_v_component_of_wind": "m s**-1",
    "mean_sea_level_pressure": "Pa",
    "total_precipitation": "m",
}


def arco_values(name: str, lat: np.ndarray, lon: np.ndarray, hours: np.ndarray) -> np.ndarray:
    """The synthetic value of ARCO field ``name`` (shape ``hours x points``; lon 0..360)."""
    lat, lon = np.broadcast_arrays(np.asarray(lat, "float64"), np.asarray(lon, "float64") % 360)
    h = np.asarray(hours, "float64")[:, None]
    if name == "2m_temperature":
        return 280.0 + lat / 10 + lon / 100 + 0.1 * h
    if name == "10m_u_component_of_wind":
        return np.broadcast_to(lat / 10, (h.shape[0], lat.size)).copy()
    if name == "10m_v_component_of_wind":
        return np.full((h.shape[0], lat.size), 2.0)
    if name == "mean_sea_level_pressure":
        return 100000.0 + 10 * lat + lon + h
    if name == "total_precipitation":
        return np.full((h.shape[0], lat.size), 0.001)
    raise KeyError(name)


def write_arco_store(path: str | Path, start: str, hours: int, *, step: float = 5.0) -> xr.Dataset:
    """Write the synthetic store at ``path``; return the dataset written."""
    times = pd.date_range(start, periods=hours, freq="h")
    lat = np.arange(90.0, -90.0 - step / 2, -step)
    lon = np.arange(0.0, 360.0 - step / 2, step)
    la, lo = np.meshgrid(lat, lon, indexing="ij")
    h = np.arange(hours)
    data: dict[str, tuple] = {}
    for name, units in FORMULAS.items():
        values = arco_values(name, la.ravel(), lo.ravel(), h).reshape(hours, *la.shape)
        attrs = {"long_name": name.replace("_", " "), "short_name": name[:3], "units": units}
        data[name] = (("time", "latitude", "longitude"), values.astype("float32"), attrs)
    levels = np.array([500, 850, 1000], dtype="int64")
    data["temperature"] = (
        ("time", "level", "latitude", "longitude"),
        np.full((hours, 3, *la.shape), 250.0, dtype="float32"),
        {"units": "K"},
    )
    coords = {"time": times, "latitude": lat, "longitude": lon, "level": levels}
    ds = xr.Dataset(data, coords=coords)
    encoding: dict[str, dict] = {
        "time": {"units": "hours since 1900-01-01", "dtype": "int64"},
    }
    for name in data:
        chunks = (1, *ds[name].shape[1:])
        encoding[name] = {"chunks": chunks}
    ds.to_zarr(path, mode="w", consolidated=True, zarr_format=2, encoding=encoding)
    return ds
