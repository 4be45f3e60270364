"""``data build`` with ``output: {kind: zarr-grid}``: NWP fields + gridded truth -> Zarr grid.

Output folder::

    OUT/grid.zarr           the canonical grid (docs/gridded.md), one reference time per cycle
    OUT/grid-state.json     the reference times committed to the store, and its grid
    OUT/build-summary.json  cycles, missing data, notes

The model grid is the target: ``fc_<var>`` are the NWP fields as they are (GRIB through
:func:`probcast.ingest.gridded.open_gridded`, NetCDF/Zarr/references lazily, cropped to
``area``), and the truth (ERA5 NetCDF or ARCO-ERA5) is interpolated onto the model's grid
points (``output.method``: ``bilinear``, default, or ``nearest``;
:mod:`probcast.sources.regular`) at every valid time. Accumulated ``tp`` in the archive is
taken as accumulated since initialisation: ``fc_tp`` is the amount of the
``accumulation_hours`` ending at the valid time (the difference of two periods) and
``obs_tp`` the sum of the truth's 1-h amounts over the same hours (NaN unless all exist).

Incremental and resume-safe: the first cycle creates the store under a temporary name and
renames it; each later cycle is appended along ``forecast_reference_time`` and then
recorded in ``grid-state.json`` (atomic). A rerun skips the recorded cycles, and first cuts
the store back to them, so a cycle interrupted half-way is written again, never twice.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from probcast import io
from probcast.ingest.gridded import open_gridded
from probcast.ingest.normalise import FP, FRT, SPATIAL_DIMS, normalise
from probcast.schema import VARIABLES
from probcast.sources import fs, regular
from probcast.sources.archive import Archive
from probcast.sources.area import crop, inside_area
from probcast.sources.build import BuildResult
from probcast.sources.config import BuildSpec
from probcast.sources.errors import SourceError
from probcast.sources.grib import on_disk
from probcast.sources.grid_store import append_cycle, committed, grid_signature
from probcast.sources.partitions import with_periods
from probcast.sources.variables import EXTRA_UNITS, derive, needed, wind_direction

STORE = "grid.zarr"


def open_truth(spec: BuildSpec) -> xr.Dataset:
    """The gridded truth on ``time x latitude x longitude``, canonical names, lazy for ARCO."""
    from probcast.sources.arco import canonical, open_arco
    from probcast.sources.era5 import ERA5_NAMES, open_era5

    so = spec.truth.get("storage_options")
    urls = fs.expand(spec.truth["paths"], so)
    if spec.truth["source"] == "arco-era5":
        parts = [open_arco(u, so, spec.variables) for u in urls]
        return parts[0] if len(parts) == 1 else xr.merge(parts, compat="override", join="outer")
    ds, _ = open_era5(urls, so)
    names = {k: v for k, v in ERA5_NAMES.items() if k in ds.data_vars and "time" in ds[k].dims}
    if not names:
        raise SourceError(f"{urls[0]}: no ERA5 field of {sorted(ERA5_NAMES)}")
    keep: dict[str, str] = {}
    for src, canon in names.items():
        keep.setdefault(canon, src)
    return canonical(ds[list(keep.values())].rename({s: c for c, s in keep.items()}), urls[0])


class NwpGrids:
    """Whole model fields of one cycle from an ``archive`` (``fc_<var>`` on period x grid)."""

    def __init__(self, spec: BuildSpec, out: Path) -> None:
        self.spec = spec
        self.so = spec.nwp.get("storage_options")
        self.archive = Archive(spec.nwp["paths"], self.so, cache_dir=out / "_inventory")
        self._grib: dict[str, xr.Dataset] = {}

    def cycles(self) -> list[pd.Timestamp]:
        """Cycles of the spec's period (every one found, or the spec's cycle hours)."""
        return list(self.archive.cycles(self.spec.start, self.spec.end, self.spec.cycles))

    def _grib_file(self, url: str) -> xr.Dataset:
        if url not in self._grib:
            fsys, path = fs.filesystem(url, self.so)
            if "file" in (fsys.protocol if isinstance(fsys.protocol, tuple) else (fsys.protocol,)):
                self._grib[url] = open_gridded(path)
            else:
                with on_disk(fs.read_bytes(url, self.so)) as tmp:
                    self._grib[url] = open_gridded(tmp)
        return self._grib[url]

    def fields(self, init: pd.Timestamp) -> xr.Dataset | None:
        """``fc_<var>`` of cycle ``init`` (canonical units, native periods), or None."""
        key = np.datetime64(init.tz_convert("UTC").tz_localize(None), "ns")
        parts = []
        for url in self.archive.xarray.urls:
            ds = self.archive.xarray.dataset(url)
            if key in ds[FRT].values:
                sub = crop(ds.sel({FRT: key}), self.spec.area).load()
                parts.append(normalise(sub, Path(url), role="forecast"))
        inv = self.archive.inventory()
        for url in sorted(set(inv.loc[inv["init_time"] == init, "url"])):
            ds = self._grib_file(str(url))
            if key in ds[FRT].values:
                parts.append(crop(ds.sel({FRT: key}), self.spec.area))
        if not parts:
            return None
        if self.spec.area is not None:
            parts = [inside_area(p, self.spec.area, self.spec.source) for p in parts]
        merged = xr.merge(parts, compat="override", join="outer", combine_attrs="override")
        drop = [c for c in merged.coords if c in (FRT, "valid_time")]
        return merged.drop_vars(drop)


def _windows(ds: xr.Dataset, var: str, leads: list[float], hours: float) -> np.ndarray:
    """``fc_tp`` over the ``hours`` ending at each lead, from amounts since initialisation."""
    da = ds[f"fc_{var}"]
    have = {float(h): i for i, h in enumerate(ds[FP].values / np.timedelta64(1, "h"))}
    shape = da.isel({FP: 0}).shape
    out = []
    for lead in leads:
        start = lead - hours
        if lead in have and start == 0:
            out.append(da.isel({FP: have[lead]}).values)
        elif lead in have and start in have:
            out.append(da.isel({FP: have[lead]}).values - da.isel({FP: have[start]}).values)
        else:
            out.append(np.full(shape, np.nan))
    return np.stack(out)


def forecast_values(ds: xr.Dataset, spec: BuildSpec, missing: list[str]) -> dict[str, np.ndarray]:
    """``var -> (lead, *grid)`` forecast values at the spec's leads (NaN where absent)."""
    hours = ds[FP].values / np.timedelta64(1, "h")
    pos = {float(h): i for i, h in enumerate(hours)}
    values: dict[str, np.ndarray] = {}
    for var in needed(spec.variables):
        if f"fc_{var}" not in ds:
            continue
        if var == "tp":
            values[var] = _windows(ds, var, spec.lead_times, spec.accumulation_hours)
            continue
        da = ds[f"fc_{var}"]
        nan = np.full(da.isel({FP: 0}).shape, np.nan)
        values[var] = np.stack(
            [da.isel({FP: pos[x]}).values if x in pos else nan for x in spec.lead_times]
        )
    lacking = [x for x in spec.lead_times if x not in pos]
    if lacking:
        missing.append(f"lead times {lacking} h not in the archive")
    return _derived(values, spec.variables)


def _derived(values: dict[str, np.ndarray], wanted: list[str]) -> dict[str, np.ndarray]:
    out = derive(values, ["ws10", "rh"])
    if "wdir10" in wanted and "u10" in out and "v10" in out:
        out["wdir10"] = wind_direction(out["u10"], out["v10"])
    return out


def truth_values(
    truth: xr.Dataset,
    init: pd.Timestamp,
    spec: BuildSpec,
    lat: np.ndarray,
    lon: np.ndarray,
) -> dict[str, np.ndarray]:
    """``var -> (lead, point)`` truth at the valid times, regridded onto the points."""
    from probcast.sources.arco import canonical

    base = init.tz_convert("UTC").tz_localize(None)
    times = pd.DatetimeIndex(truth["time"].values)
    valid = [base + pd.Timedelta(hours=h) for h in spec.lead_times]
    at = times.get_indexer(pd.DatetimeIndex(valid))
    n_acc = max(round(spec.accumulation_hours), 1)
    acc = [times.get_indexer(pd.date_range(end=t, periods=n_acc, freq="h")) for t in valid]
    used = np.unique(np.concatenate([at, *acc]))
    used = used[used >= 0]
    if used.size == 0:
        return {}
    rows = {int(i): k for k, i in enumerate(used)}
    at_list = [int(i) for i in at]
    method = spec.output.get("method", "bilinear")
    pts = canonical(regular.sample(truth.isel(time=used), lat, lon, method), "truth")
    nan = np.full(len(lat), np.nan)
    values: dict[str, np.ndarray] = {}
    for name, da in pts.data_vars.items():
        arr = da.transpose("time", "point").values
        if name == "tp":
            values["tp"] = np.stack(
                [arr[[rows[int(i)] for i in a]].sum(axis=0) if (a >= 0).all() else nan for a in acc]
            )
        else:
            values[str(name)] = np.stack([arr[rows[i]] if i >= 0 else nan for i in at_list])
    return _derived(values, spec.variables)


def _points(ds: xr.Dataset) -> tuple[list[str], np.ndarray, np.ndarray]:
    spatial = [d for d in SPATIAL_DIMS if d in ds.dims]
    la, lo = ds["latitude"], ds["longitude"]
    if la.dims == ("latitude",) and lo.dims == ("longitude",):
        lat, lon = np.meshgrid(la.values, lo.values, indexing="ij")
    else:
        lat, lon = (
            np.broadcast_to(c.transpose(*spatial).values, [ds.sizes[d] for d in spatial])
            for c in (la, lo)
        )
    return spatial, np.asarray(lat, "float64").ravel(), np.asarray(lon, "float64").ravel()


def _attrs(var: str) -> dict[str, str]:
    if var in VARIABLES:
        v = VARIABLES[var]
        return {"units": v.units, "standard_name": v.standard_name, "long_name": v.long_name}
    return {"units": EXTRA_UNITS.get(var, "1"), "long_name": var}


def cycle_dataset(
    nwp: xr.Dataset, truth: xr.Dataset, init: pd.Timestamp, spec: BuildSpec, missing: list[str]
) -> xr.Dataset:
    """One cycle in the canonical grid layout (reference time of length 1)."""
    spatial, lat, lon = _points(nwp)
    shape = [nwp.sizes[d] for d in spatial]
    dims = (FRT, FP, *spatial)
    fc = forecast_values(nwp, spec, missing)
    obs = truth_values(truth, init, spec, lat, lon)
    key = np.datetime64(init.tz_convert("UTC").tz_localize(None), "ns")
    leads = pd.to_timedelta(spec.lead_times, unit="h").to_numpy()
    nan = np.full((len(leads), *shape), np.nan)
    mapping = next((v.attrs["grid_mapping"] for v in nwp.data_vars.values()
                    if "grid_mapping" in v.attrs), None)  # fmt: skip
    data = {}
    for var in spec.variables:
        for prefix, vals in (("fc", fc.get(var)), ("obs", obs.get(var))):
            arr = nan if vals is None else np.asarray(vals, "float64").reshape(len(leads), *shape)
            attrs = _attrs(var) | ({"grid_mapping": mapping} if mapping else {})
            data[f"{prefix}_{var}"] = (dims, arr[None], attrs)
        if var not in fc:
            missing.append(f"no forecast field for {var}")
    coords: dict[str, Any] = {FRT: [key], FP: leads}
    coords.update({str(k): v for k, v in nwp.coords.items() if set(v.dims) <= set(spatial)})
    ds = xr.Dataset(data, coords=coords)
    return with_periods(ds.assign_coords(valid_time=ds[FRT] + ds[FP]), spec.accumulation_hours)


def build_grid(spec: BuildSpec, out: str | os.PathLike[str]) -> BuildResult:
    """Run a grid build (see the module docstring).

    Raises:
        SourceError: On a configuration or source problem (a one-line message).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    io.sweep(out)
    result = BuildResult(
        out=out, area=spec.area.as_list() if spec.area else None, output="zarr-grid"
    )
    store = out / STORE
    valued: dict[str, bool] = {}  # field -> any value in the cycles written now
    done = committed(store)
    truth = open_truth(spec)
    nwp = NwpGrids(spec, out)
    for init in nwp.cycles():
        key = f"{init:%Y-%m-%dT%H:%M}Z"
        if key in done["cycles"]:
            result.skipped.append(key)
            continue
        fields = nwp.fields(init)
        if fields is None:
            result.missing_nwp[key] = [f"no field of cycle {init:%Y-%m-%d %H} UTC"]
            continue
        missing: list[str] = []
        ds = cycle_dataset(fields, truth, init, spec, missing)
        signature = grid_signature(ds)
        if done["grid"] and done["grid"] != signature:
            result.missing_nwp[key] = [f"grid {signature} differs from the store's {done['grid']}"]
            continue
        for name in ds.data_vars:
            valued[str(name)] = valued.get(str(name), False) or bool(ds[name].notnull().any())
        obs = [v for v in ds.data_vars if str(v).startswith("obs_")]
        if all(np.isnan(ds[v].values).all() for v in obs):
            result.missing_obs.append(key)
        if missing:
            result.incomplete[key] = missing
        done = append_cycle(store, ds, key, done, signature)
        result.written.append(key)
    result.rows = len(done["cycles"])
    result.notes.append(f"{store}: {result.rows} reference time(s) on grid {done['grid']}")
    empty = sorted(name for name, any_value in valued.items() if not any_value)
    if empty:  # training and `data check` refuse an all-NaN field
        result.notes.append(
            f"no value in any cycle written: {', '.join(empty)} (not in the archive or the "
            "truth: leave the variable out of `variables`, or train on the others with "
            "--config.data.targets / predictors)"
        )
    io.write_json(out / "build-summary.json", result.summary())
    return result
