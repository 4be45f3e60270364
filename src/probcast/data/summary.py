"""Plain-text summary of a prepared dataset (station table or gridded Dataset).

One function per kind computes the same statistics for a part (train or test):
size, period, lead times, missing fractions and the MAE of the raw forecast; a formatter
lays train and test side by side.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from probcast.data.prepare import Prepared
from probcast.schema import FC_PREFIX, OBS_PREFIX

GRID_NON_SPATIAL = ("forecast_reference_time", "forecast_period", "realization")
"""Dims of a gridded variable that are not spatial (everything else counts as points)."""

Stats = dict[str, str]


def _period(times: Any) -> str:
    values = pd.to_datetime(pd.Series(np.asarray(times).ravel()))
    if values.empty:
        return "-"
    return f"{values.min():%Y-%m-%d %H:%M} .. {values.max():%Y-%m-%d %H:%M}"


def _leads(hours: np.ndarray) -> str:
    unique = np.unique(hours[np.isfinite(hours)])
    if unique.size == 0:
        return "-"
    if unique.size == 1:
        return f"{unique[0]:g} h (1 value)"
    return f"{unique.min():g}..{unique.max():g} h ({unique.size} values)"


def _mae(fc: np.ndarray, obs: np.ndarray) -> str:
    ok = np.isfinite(fc) & np.isfinite(obs)
    if not ok.any():
        return "-"
    return f"{np.mean(np.abs(fc[ok] - obs[ok])):.4g} (n={int(ok.sum())})"


def _value_names(names: list[str]) -> list[str]:
    return [n for n in names if n.startswith((FC_PREFIX, OBS_PREFIX))]


def station_stats(df: pd.DataFrame, targets: list[str]) -> Stats:
    """Statistics of one part of a station table."""
    stats: Stats = {
        "rows": f"{len(df):,}",
        "stations": f"{df['station'].nunique():,}",
        "init period": _period(df["init_time"]),
        "lead times": _leads(df["lead_time"].to_numpy(dtype="float64")),
    }
    for col in _value_names([str(c) for c in df.columns]):
        stats[f"missing {col}"] = f"{df[col].isna().mean():.2%}"
    for var in targets:
        fc, obs = FC_PREFIX + var, OBS_PREFIX + var
        if fc in df and obs in df:
            stats[f"MAE {fc} vs {obs}"] = _mae(
                df[fc].to_numpy(dtype="float64"), df[obs].to_numpy(dtype="float64")
            )
    return stats


def _grid_points(ds: xr.Dataset) -> int:
    names = _value_names([str(v) for v in ds.data_vars]) or [str(v) for v in ds.data_vars]
    dims = {d for v in names for d in ds[v].dims if d not in GRID_NON_SPATIAL}
    return int(np.prod([ds.sizes[d] for d in dims])) if dims else 1


def _grid_leads(ds: xr.Dataset) -> str:
    if "forecast_period" not in ds.coords:
        return "-"
    period = np.atleast_1d(ds["forecast_period"].values)
    if np.issubdtype(period.dtype, np.timedelta64):
        hours = period / np.timedelta64(1, "h")
    else:
        hours = period.astype("float64")
    return _leads(np.asarray(hours, dtype="float64"))


def _grid_mae(ds: xr.Dataset, var: str) -> str:
    fc, obs = ds[FC_PREFIX + var], ds[OBS_PREFIX + var]
    label = ""
    if "realization" in fc.dims:
        fc, label = fc.mean("realization"), " [ensemble mean]"
    fc_b, obs_b = xr.broadcast(fc, obs)
    return _mae(fc_b.values.astype("float64"), obs_b.values.astype("float64")) + label


def grid_stats(ds: xr.Dataset, targets: list[str]) -> Stats:
    """Statistics of one part of a gridded dataset (points = product of spatial dims)."""
    times: Any = ds["forecast_reference_time"].values if "forecast_reference_time" in ds else []
    stats: Stats = {
        "forecast times": f"{ds.sizes.get('forecast_reference_time', 0):,}",
        "grid points": f"{_grid_points(ds):,}",
        "init period": _period(times),
        "lead times": _grid_leads(ds),
    }
    for name in _value_names([str(v) for v in ds.data_vars]):
        values = ds[name].values
        stats[f"missing {name}"] = f"{np.isnan(values.astype('float64')).mean():.2%}"
    for var in targets:
        if FC_PREFIX + var in ds and OBS_PREFIX + var in ds:
            stats[f"MAE {FC_PREFIX}{var} vs {OBS_PREFIX}{var}"] = _grid_mae(ds, var)
    return stats


def _part_stats(part: pd.DataFrame | xr.Dataset, targets: list[str]) -> Stats:
    if isinstance(part, xr.Dataset):
        return grid_stats(part, targets)
    return station_stats(part, targets)


def _table(train: Stats, test: Stats) -> list[str]:
    keys = list(dict.fromkeys([*train, *test]))
    width = max(len(k) for k in keys) + 2
    col = max(len(v) for v in [*train.values(), *test.values(), "train"]) + 2
    lines = [f"{'':<{width}}{'train':<{col}}test"]
    lines += [f"{k:<{width}}{train.get(k, '-'):<{col}}{test.get(k, '-')}" for k in keys]
    return lines


def summarize(prepared: Prepared) -> str:
    """Return a plain-text summary of a prepared dataset.

    Lists per part (train/test): rows and stations (or forecast times and grid points),
    the init-time period, lead times (min/max/count), the missing fraction per
    ``fc_``/``obs_`` column, the MAE of the raw forecast ``fc_<var>`` against ``obs_<var>``
    per target, then the converter's report lines and the written paths.

    Args:
        prepared: Result of :func:`probcast.data.prepare.prepare`.

    Returns:
        The summary, several lines.
    """
    head = (
        f"dataset {prepared.name} ({prepared.kind}), targets: {', '.join(prepared.targets) or '-'}"
    )
    train = _part_stats(prepared.train, prepared.targets)
    test = _part_stats(prepared.test, prepared.targets)
    lines = [head, "", *_table(train, test)]
    if prepared.report:
        lines += ["", "report:", *(f"  - {line}" for line in prepared.report)]
    if prepared.paths:
        lines += ["", "written:", *(f"  {k}: {p}" for k, p in prepared.paths.items())]
    return "\n".join(lines)
