"""``icp-wrf-precip-grid``: Spring 2005 ICP cases, three WRF configurations vs Stage II.

Source: R package SpatialVx (``wrf2caps*``, ``wrf4ncar*``, ``wrf4ncep*``, ``obs*``,
``ICPg240Locs``). Each forecast file ``wrf<config>MMDD`` is a 601 x 501 matrix of 1-h
precipitation (mm) at 24 h lead from the run of 2005-MM-DD (00 UTC assumed); it pairs with
the Stage II analysis ``obsMMDD+1`` valid at the same time.

Canonical layout:
- ``fc_tp`` is the raw forecast of configuration ``wrf4ncar`` (NCAR 4 km ARW);
  ``fc_tp_wrf2caps`` and ``fc_tp_wrf4ncep`` are extra predictors; ``obs_tp`` the analysis.
- dims ``(forecast_reference_time: cases, forecast_period: 1 (24 h), y: 501, x: 601)``.
  R's matrix rows are x (west-east) and columns y (south-north), so fields are transposed;
  ``ICPg240Locs`` lists lon/lat row by row (``loc.byrow = TRUE`` in SpatialVx).
- The grid is a 601 x 501 window of NCEP grid 240 (HRAP): polar stereographic, true at
  60N, central meridian 105W, sphere of radius 6371.2 km, 4762.5 m spacing. Projecting the
  given lon/lat reproduces that spacing to within 5 m, so a CF ``polar_stereographic``
  grid_mapping and projection ``x``/``y`` coordinates (m) are added.

A case missing a forecast configuration or the analysis keeps NaN there (reported).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import rdata
import xarray as xr

from probcast.data.prepare import Canonical, register
from probcast.schema import VARIABLES

YEAR = 2005
RAW_CONFIG = "wrf4ncar"
CONFIGS = ("wrf4ncar", "wrf2caps", "wrf4ncep")
NX, NY = 601, 501
HRAP = {"radius": 6371200.0, "lat_ts": 60.0, "lon0": -105.0, "spacing": 4762.5}


def _matrix(path: Path) -> np.ndarray:
    obj = rdata.read_rda(str(path))
    if len(obj) != 1:
        raise ValueError(f"{path}: expected one R object, found {sorted(obj)}")
    return np.asarray(next(iter(obj.values())), dtype="float64")


def _field(path: Path) -> np.ndarray:
    m = _matrix(path)
    if m.shape != (NX, NY):
        raise ValueError(f"{path}: field shape {m.shape}; expected ({NX}, {NY})")
    return m.T  # (x, y) -> (y, x)


def hrap_xy(lon: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spherical polar stereographic (HRAP) projection of lon/lat in degrees, metres."""
    la, lo = np.deg2rad(lat), np.deg2rad(lon - HRAP["lon0"])
    rho = HRAP["radius"] * (1 + np.sin(np.deg2rad(HRAP["lat_ts"]))) * np.cos(la) / (1 + np.sin(la))
    return rho * np.sin(lo), -rho * np.cos(lo)


def grid_coords(loc: np.ndarray, report: list[str]) -> dict[str, tuple]:
    """latitude/longitude (y, x) and HRAP projection x/y coordinates from ICPg240Locs."""
    if loc.shape != (NX * NY, 2):
        raise ValueError(f"ICPg240Locs: shape {loc.shape}; expected ({NX * NY}, 2)")
    lon, lat = loc[:, 0].reshape(NX, NY).T, loc[:, 1].reshape(NX, NY).T
    px, py = hrap_xy(lon, lat)
    step = HRAP["spacing"]
    x0 = float(np.round(np.mean(px - np.arange(NX)[None, :] * step)))
    y0 = float(np.round(np.mean(py - np.arange(NY)[:, None] * step)))
    x, y = x0 + np.arange(NX) * step, y0 + np.arange(NY) * step
    err = max(np.abs(px - x[None, :]).max(), np.abs(py - y[:, None]).max())
    report.append(f"ICPg240Locs: HRAP polar stereographic fit, largest position error {err:.0f} m")
    return {
        "latitude": (("y", "x"), lat, {"units": "degrees_north", "standard_name": "latitude"}),
        "longitude": (("y", "x"), lon, {"units": "degrees_east", "standard_name": "longitude"}),
        "x": ("x", x, {"units": "m", "standard_name": "projection_x_coordinate"}),
        "y": ("y", y, {"units": "m", "standard_name": "projection_y_coordinate"}),
        "polar_stereographic": (
            (),
            np.int32(0),
            {
                "grid_mapping_name": "polar_stereographic",
                "straight_vertical_longitude_from_pole": HRAP["lon0"],
                "latitude_of_projection_origin": 90.0,
                "standard_parallel": HRAP["lat_ts"],
                "earth_radius": HRAP["radius"],
                "false_easting": 0.0,
                "false_northing": 0.0,
            },
        ),
    }


def _cases(files: dict[str, Path]) -> list[str]:
    dates = {m.group(1) for k in files if (m := re.fullmatch(r"wrf\w+?(\d{4})\.rda", k))}
    return sorted(dates)


def _next_day(mmdd: str) -> str:
    return (pd.Timestamp(f"{YEAR}-{mmdd[:2]}-{mmdd[2:]}") + pd.Timedelta(days=1)).strftime("%m%d")


def _stack(files: dict[str, Path], names: list[str], report: list[str]) -> np.ndarray:
    out = np.full((len(names), 1, NY, NX), np.nan)
    missing = [n for n in names if n not in files]
    for i, name in enumerate(names):
        if name in files:
            out[i, 0] = _field(files[name])
    if missing:
        report.append(f"missing files (NaN there): {', '.join(missing)}")
    return out


def _attrs(source: str) -> dict[str, str]:
    var = VARIABLES["tp"]
    return {
        "standard_name": var.standard_name,
        "long_name": f"1-h {var.long_name}",
        "units": var.units,
        "source_units": "mm",
        "source_name": source,
        "grid_mapping": "polar_stereographic",
    }


@register("icp-wrf-precip-grid")
def convert(files: dict[str, Path]) -> Canonical:
    """Convert the ICP 2005 WRF cases to the canonical gridded dataset."""
    cases = _cases(files)
    report = [f"ICP: {len(cases)} cases {', '.join(cases)} (runs 00 UTC assumed, 24 h lead)"]
    dims = ("forecast_reference_time", "forecast_period", "y", "x")
    data = {}
    for config in CONFIGS:
        name = "fc_tp" if config == RAW_CONFIG else f"fc_tp_{config}"
        values = _stack(files, [f"{config}{c}.rda" for c in cases], report)
        data[name] = (dims, values, _attrs(config))
    obs = _stack(files, [f"obs{_next_day(c)}.rda" for c in cases], report)
    data["obs_tp"] = (dims, obs, _attrs("Stage II analysis"))
    frt = pd.to_datetime([f"{YEAR}-{c[:2]}-{c[2:]}" for c in cases]).to_numpy()
    coords = grid_coords(_matrix(files["ICPg240Locs.rda"]), report)
    coords["forecast_reference_time"] = ("forecast_reference_time", frt)
    coords["forecast_period"] = ("forecast_period", np.array([24 * 3600 * 10**9], "m8[ns]"))
    ds = xr.Dataset(
        data,
        coords=coords,
        attrs={
            "source": "SpatialVx ICP 2005 cases",
            "Conventions": "CF-1.8",
            "raw_forecast": RAW_CONFIG,
        },
    )
    ds = ds.assign_coords(valid_time=ds.forecast_reference_time + ds.forecast_period)
    for name in data:
        neg = int((ds[name] < 0).sum())
        report.append(
            f"{name}: max {float(ds[name].max()):.1f} mm, {neg} negative values, "
            f"{int(ds[name].isnull().sum())} missing"
        )
    return Canonical(data=ds, targets=["tp"], report=report)
