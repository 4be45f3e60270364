"""Put gridded truth on a gridded forecast's (reference time, period) axes by valid time.

Fields with a ``units`` attribute are converted to canonical units first
(:func:`probcast.ingest.grid_values.canonical_units`), so a truth in degC pairs correctly
with a forecast in K.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from probcast.ingest.grid_values import canonical_units
from probcast.schema import FC_PREFIX, OBS_PREFIX

FRT, FP = "forecast_reference_time", "forecast_period"
_SPATIAL = ("y", "x", "latitude", "longitude", "point")


def _truth_on_time(truth: xr.Dataset) -> xr.Dataset:
    """Truth as ``obs_*`` fields on a valid ``time`` axis (analyses may come as lead 0)."""
    if "time" in truth.dims:
        out = truth
    elif FRT in truth.dims and FP in truth.dims and truth.sizes[FP] == 1:
        valid = (truth[FRT] + truth[FP].isel({FP: 0})).values
        out = truth.isel({FP: 0}, drop=True).assign_coords({FRT: valid}).rename({FRT: "time"})
        out = out.drop_vars([c for c in ("valid_time",) if c in out.coords])
    else:
        raise ValueError(
            "truth needs a 'time' axis (or one forecast_period of an analysis); "
            f"got dims {dict(truth.sizes)}"
        )
    ren = {
        v: OBS_PREFIX + str(v)[len(FC_PREFIX) :]
        for v in out.data_vars
        if str(v).startswith(FC_PREFIX)
    }
    out = canonical_units(out.rename(ren), "truth", require=False)
    fields = [v for v in out.data_vars if str(v).startswith(OBS_PREFIX)]
    if not fields:
        raise ValueError(f"truth has no obs_<var> field; found {list(truth.data_vars)}")
    return out[fields]


def check_same_grid(a: xr.Dataset, b: xr.Dataset, *, atol: float = 1e-6) -> None:
    """Raise ValueError naming the first difference when two datasets' grids differ."""
    dims_a = [d for d in _SPATIAL if d in a.dims]
    dims_b = [d for d in _SPATIAL if d in b.dims]
    if dims_a != dims_b or any(a.sizes[d] != b.sizes[d] for d in dims_a):
        raise ValueError(
            "grids differ: forecast spatial dims "
            f"{ {d: a.sizes[d] for d in dims_a} } vs truth { {d: b.sizes[d] for d in dims_b} }"
        )
    for name in ("latitude", "longitude", "y", "x", "point"):
        if name in a.coords and name in b.coords:
            va, vb = np.asarray(a[name].values, "float64"), np.asarray(b[name].values, "float64")
            if va.shape != vb.shape or not np.allclose(va, vb, atol=atol, equal_nan=True):
                diff = np.nanmax(np.abs(va - vb)) if va.shape == vb.shape else "shape"
                raise ValueError(f"grids differ: {name} of forecast and truth differ (max {diff})")


def align_truth(forecast: xr.Dataset, truth: xr.Dataset) -> xr.Dataset:
    """Add ``obs_<var>`` fields valid at each forecast's valid time to ``forecast``.

    Args:
        forecast: Canonical gridded forecast (``forecast_reference_time`` x
            ``forecast_period`` x grid).
        truth: Gridded truth on the same grid, ``obs_<var>`` (or ``fc_<var>`` of an
            analysis) on a valid ``time`` axis.

    Returns:
        ``forecast`` with ``obs_<var>`` on ``(forecast_reference_time, forecast_period,
        grid)``; NaN where the truth has no field at that valid time.

    Raises:
        ValueError: Grids differ, axes are missing, truth holds no field or a ``units``
            attribute is not convertible.
    """
    if FRT not in forecast.dims or FP not in forecast.dims:
        raise ValueError(f"forecast needs {FRT} and {FP} dims; got {dict(forecast.sizes)}")
    forecast = canonical_units(forecast, "forecast", require=False)
    obs = _truth_on_time(truth)
    check_same_grid(forecast, obs)
    if obs.indexes["time"].has_duplicates:
        raise ValueError("truth has duplicate valid times")
    valid = forecast[FRT] + forecast[FP]
    times = np.unique(valid.values.ravel())
    grid_coords = [c for c in obs.coords if c not in ("time",) and c in forecast.coords]
    obs = obs.drop_vars(grid_coords).reindex(time=times)
    picked = obs.sel(time=valid).drop_vars("time")
    picked = picked.transpose(FRT, FP, ...)
    out = forecast.drop_vars([v for v in picked.data_vars if v in forecast.data_vars])
    out = out.assign_coords(valid_time=valid)
    return out.assign({str(v): picked[v] for v in picked.data_vars})
