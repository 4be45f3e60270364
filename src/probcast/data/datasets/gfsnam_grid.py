"""``gfsnam-precip-grid``: GFS/NAM precipitation forecasts and analyses (SpatialVx example).

Source: R package SpatialVx, ``data(GFSNAMfcstEx)``, ``data(GFSNAMobsEx)``,
``data(GFSNAMlocEx)``. Its documentation says: accumulated precipitation in mm from "a real,
but unknown" model (GFS or NAM) and analysis, 361 times (rows) x 2352 locations (columns),
"accumulation is either 3-h or 24-h", locations a subset of a 70 x 100 60-km grid "where
each time point had no missing observations". No dates or lead times are given.

Canonical layout and the choices made:
- The 2352 locations are scattered land points of a projected grid (2282 distinct
  longitudes, 2093 latitudes), not a lon/lat lattice, so they keep a 1-D ``point`` dim with
  ``latitude(point)``/``longitude(point)`` (SpatialVx's own examples reshape to an arbitrary
  49 x 48 array that has no geographic meaning).
- ``forecast_reference_time`` is a synthetic daily index starting 2000-01-01 (attribute
  ``synthetic = "yes"``); ``forecast_period`` is a nominal 24 h. Only the order of times
  is real; the fixed split is by position (first 240 times train).

Known problems and repairs (counts are reported by the converter):
- In 118 of the 361 analysis fields all values carry a small constant offset (the dry
  value, shared by most points, is e.g. -0.04 or +0.06 mm instead of 0) and the values
  lie on a 0.1524 mm (0.006 in) lattice instead of 0.1 mm: the offset is estimated as the
  field's most frequent value and subtracted.
- Remaining negative analysis values are set to 0; the documentation's "no missing
  observations" is not true: 843 analysis values are NaN and stay NaN.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import rdata
import xarray as xr

from probcast.data.prepare import Canonical, register
from probcast.schema import VARIABLES

START = pd.Timestamp("2000-01-01")
"""First synthetic reference time; one field per day after it."""
PERIOD = pd.Timedelta(hours=24)
OFFSET_MAX = 0.1
"""Largest |dry-value offset| (mm) treated as a repairable offset."""


def _read(path: Path, name: str) -> np.ndarray:
    obj = rdata.read_rda(str(path))
    if name not in obj:
        raise ValueError(f"{path}: R object {name!r} not found; found {sorted(obj)}")
    values = np.array(obj[name], dtype="float64")
    values[np.isnan(values)] = np.nan  # R's NA is a NaN with a payload; make it a plain NaN
    return values


def dry_offsets(obs: np.ndarray) -> np.ndarray:
    """Most frequent value of each time's field (the dry value; 0 in a clean analysis)."""
    out = np.zeros(obs.shape[0])
    for i, row in enumerate(obs):
        finite = row[np.isfinite(row)]
        vals, counts = np.unique(np.round(finite, 4), return_counts=True)
        if vals.size:  # mean of the modal class: the exact dry value, not its rounding
            out[i] = finite[np.round(finite, 4) == vals[counts.argmax()]].mean()
    return out


def _repair_obs(obs: np.ndarray, report: list[str]) -> np.ndarray:
    offsets = dry_offsets(obs)
    fix = (np.abs(offsets) > 1e-6) & (np.abs(offsets) <= OFFSET_MAX)
    obs = obs - np.where(fix, offsets, 0.0)[:, None]
    report.append(
        f"GFSNAMobsEx: {int(fix.sum())} of {len(obs)} analysis fields carry a constant offset "
        f"(dry value {offsets[fix].min():+.3f}..{offsets[fix].max():+.3f} mm instead of 0); "
        "subtracted the field's most frequent value"
        if fix.any()
        else "GFSNAMobsEx: no dry-value offsets found"
    )
    neg = np.isfinite(obs) & (obs < 0)
    report.append(
        f"GFSNAMobsEx: {int(neg.sum())} negative values after repair (largest "
        f"{obs[neg].min() if neg.any() else 0:.2g} mm) set to 0"
    )
    obs = np.where(neg, 0.0, obs)
    report.append(
        f"GFSNAMobsEx: {int(np.isnan(obs).sum())} missing (NaN) analysis values "
        f"in {int(np.isnan(obs).any(axis=1).sum())} fields (kept as NaN)"
    )
    return obs


def _field(values: np.ndarray) -> xr.Variable:
    var = VARIABLES["tp"]
    attrs = {
        "standard_name": var.standard_name,
        "long_name": var.long_name,
        "units": var.units,
        "source_units": "mm",
    }
    dims = ("forecast_reference_time", "forecast_period", "point")
    return xr.Variable(dims, values[:, None, :], attrs)


def build(fcst: np.ndarray, obs: np.ndarray, loc: np.ndarray, report: list[str]) -> xr.Dataset:
    """Assemble the canonical dataset from the three R matrices (time x point, point x 2)."""
    if fcst.shape != obs.shape or fcst.shape[1] != loc.shape[0]:
        raise ValueError(
            f"GFSNAM shapes disagree: forecast {fcst.shape}, analysis "
            f"{obs.shape}, locations {loc.shape}"
        )
    frt = pd.date_range(START, periods=fcst.shape[0], freq="D").to_numpy()
    fp = np.array([PERIOD.to_timedelta64()], dtype="timedelta64[ns]")
    ds = xr.Dataset(
        {"fc_tp": _field(fcst), "obs_tp": _field(_repair_obs(obs, report))},
        coords={
            "forecast_reference_time": ("forecast_reference_time", frt, {"synthetic": "yes"}),
            "forecast_period": ("forecast_period", fp, {"nominal": "3 h or 24 h, unknown"}),
            "latitude": ("point", loc[:, 1], {"units": "degrees_north"}),
            "longitude": ("point", loc[:, 0], {"units": "degrees_east"}),
        },
        attrs={"source": "SpatialVx GFSNAMfcstEx/GFSNAMobsEx/GFSNAMlocEx", "Conventions": "CF-1.8"},
    )
    return ds.assign_coords(valid_time=ds.forecast_reference_time + ds.forecast_period)


@register("gfsnam-precip-grid")
def convert(files: dict[str, Path]) -> Canonical:
    """Convert the three SpatialVx R data files to the canonical gridded dataset."""
    fcst = _read(files["GFSNAMfcstEx.rda"], "GFSNAMfcstEx")
    obs = _read(files["GFSNAMobsEx.rda"], "GFSNAMobsEx")
    loc = _read(files["GFSNAMlocEx.rda"], "GFSNAMlocEx")
    report = [
        f"GFSNAM: {fcst.shape[0]} times x {fcst.shape[1]} points; times have no dates in the "
        f"source: synthetic daily reference times from {START.date()}, nominal 24 h period",
        f"GFSNAMfcstEx: {int(np.isnan(fcst).sum())} missing, {int((fcst < 0).sum())} negative",
    ]
    return Canonical(data=build(fcst, obs, loc, report), targets=["tp"], report=report)
