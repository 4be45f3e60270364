"""Gridded verification inputs: forecast products and the analysis, on one grid.

A forecast is read from CF product files (:mod:`probcast.products`: ``members``,
``percentiles``, ``probabilities_<var>``, ``parameters``) or from a canonical grid's
``fc_<var>`` fields (the raw NWP forecast, scored as a point forecast). Files are opened
lazily (Dask); values are converted to canonical units from each field's ``units``
attribute (products written with ``probcast predict --units``), thresholds too.

The analysis holds ``obs_<var>`` fields, or plain CF variables recognised by name
(:func:`probcast.ingest.normalise.identify`) or ``standard_name``, on a valid ``time``
axis (``valid_time`` in the CDS ERA5 layout) or on (reference time, period) axes; GRIB and
kerchunk files are read through :func:`probcast.ingest.gridded.open_gridded`.

Whether a forecast lies on the analysis grid is checked by
:func:`probcast.verify.grid_match.check_same_grid`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from probcast import periods
from probcast.ingest.encoding import open_cf
from probcast.ingest.errors import GriddedReadError
from probcast.ingest.grid_values import check_grid
from probcast.ingest.gridded import open_gridded, sniff_format
from probcast.ingest.normalise import identify
from probcast.products.units import PARAM_ROLES
from probcast.schema import FC_PREFIX, OBS_PREFIX, VARIABLES, unit_affine

FRT, FP = "forecast_reference_time", "forecast_period"
SPATIAL = ("y", "x", "latitude", "longitude", "point")
FORM_DIM = "form"
PRODUCT_SUFFIXES = ("_members", "_percentiles", "_parameters", "_probabilities")


@dataclass
class GridField:
    """One variable's gridded forecast in one form.

    Attributes:
        variable: Canonical variable name.
        kind: ``params``, ``members``, ``quantiles``, ``point`` or ``probabilities``.
        data: Lazy values in canonical units, dims ``(FRT, FP, *grid[, form])``; the form
            dim holds members, quantile levels, parameters or thresholds.
        path: File it was read from.
        levels: Quantile levels in (0, 1) (quantiles).
        family: Distribution family (params).
        param_names: Parameter order along the form dim (params).
        thresholds: Canonical thresholds along the form dim (probabilities).
    """

    variable: str
    kind: str
    data: xr.DataArray
    path: str
    levels: np.ndarray | None = None
    family: str | None = None
    param_names: tuple[str, ...] = ()
    thresholds: tuple[float, ...] = ()


@dataclass
class GridForecast:
    """A named forecast: the fields of one or more product files of one run."""

    name: str
    paths: list[str] = field(default_factory=list)
    fields: dict[str, dict[str, GridField]] = field(default_factory=dict)
    periods: dict[str, float] = field(default_factory=dict)

    def add(self, f: GridField) -> None:
        """Add a field; a second one of the same variable and form is an error."""
        have = self.fields.setdefault(f.variable, {})
        if f.kind in have:
            raise ValueError(
                f"forecast {self.name!r}: {f.variable} {f.kind} given twice "
                f"({have[f.kind].path} and {f.path})"
            )
        have[f.kind] = f

    def form(self, variable: str) -> GridField | None:
        """The most informative distribution form of ``variable`` (None: only probabilities)."""
        have = self.fields.get(variable, {})
        return next(
            (have[k] for k in ("params", "members", "quantiles", "point") if k in have), None
        )

    def probabilities(self, variable: str) -> GridField | None:
        """The exceedance probabilities of ``variable``, if given."""
        return self.fields.get(variable, {}).get("probabilities")


def is_grid(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a gridded dataset (not a station table, even in NetCDF)."""
    p = Path(path)
    if not p.exists():
        return False
    try:
        fmt = sniff_format(p)
    except GriddedReadError:
        return False
    if fmt in ("grib", "reference", "zarr"):
        return True
    try:
        with xr.open_dataset(p, decode_times=False) as ds:
            dims = set(ds.dims)
    except Exception:  # unreadable: the station reader says why
        return False
    return not ({"station", "row"} & dims) and bool(set(SPATIAL) & dims)


def product_name(path: str | os.PathLike[str]) -> str:
    """Forecast name of a product file: ``out/run_parameters.nc`` -> ``run``."""
    stem = Path(path).name.split(".")[0]
    for suffix in PRODUCT_SUFFIXES:
        if suffix in stem:
            return stem[: stem.rindex(suffix)] or stem
    return stem


def _open(path: Path) -> xr.Dataset:
    fmt = sniff_format(path)  # a clear error for a missing file or another format
    if fmt not in ("netcdf4", "netcdf3", "zarr"):
        raise ValueError(f"{path}: a {fmt} file; gridded forecasts are read from NetCDF or Zarr")
    try:  # missing values as declared (Zarr fill_value, CF valid range): ingest.encoding
        return open_cf(path, fmt, chunks={}, decode_timedelta=True)
    except GriddedReadError:
        raise
    except Exception as err:  # any reader failure becomes one clear message
        raise ValueError(f"{path}: cannot read ({type(err).__name__}: {err})") from None


def _with_time_dims(da: xr.DataArray, path: Path) -> xr.DataArray:
    for dim in (FRT, FP):
        if dim not in da.dims:
            if dim not in da.coords or da[dim].ndim != 0:
                raise ValueError(
                    f"{path}: {da.name} has no {dim} (dims {dict(da.sizes)}); a gridded "
                    f"forecast needs {FRT} and {FP}"
                )
            da = da.expand_dims(dim)
    grid = [d for d in da.dims if d in SPATIAL]
    if not grid:
        raise ValueError(f"{path}: {da.name} has no grid dimension ({', '.join(SPATIAL)})")
    extra = [d for d in da.dims if d not in (FRT, FP, *grid)]
    keep = {FRT, FP, *grid, *extra, "latitude", "longitude"}
    drop = [c for c in da.coords if c not in keep or not set(da[c].dims) <= set(da.dims)]
    da = da.drop_vars(drop)
    return da.transpose(FRT, FP, *grid, *extra)


def _canonical(da: xr.DataArray, var: str, path: Path) -> xr.DataArray:
    units = da.attrs.get("units")
    if units is None:
        raise ValueError(
            f"{path}: {da.name} has no units attribute; expected {VARIABLES[var].units!r}"
        )
    scale, offset = unit_affine(str(units), var, source=str(path))
    return da if (scale, offset) == (1.0, 0.0) else da * scale + offset


def _param_canonical(da: xr.DataArray, var: str, param: str, path: Path) -> xr.DataArray:
    units = str(da.attrs.get("units", "1"))
    if units == "1" or PARAM_ROLES.get(param, "none") == "none":
        return da
    scale, offset = unit_affine(units, var, source=str(path))
    return da * scale + offset if PARAM_ROLES[param] == "location" else da * scale


def _tidy(t: float) -> float:
    """Thresholds stored as float32 back to the value written (0.1, not 0.100000001)."""
    return float(f"{float(t):.7g}")


def _probabilities(da: xr.DataArray, path: Path) -> GridField:
    var = str(da.attrs.get("diagnostic", ""))
    if var not in VARIABLES:
        raise ValueError(f"{path}: {da.name} has no diagnostic attribute naming a variable")
    coord = da["threshold"]
    units = str(coord.attrs.get("units", VARIABLES[var].units))
    scale, offset = unit_affine(units, var, source=f"{path}: threshold")
    ts = tuple(_tidy(t * scale + offset) for t in np.asarray(coord.values, "float64"))
    if str(da.attrs.get("units", "1")) == "%":
        da = da / 100.0
    data = _with_time_dims(da, path).rename(threshold=FORM_DIM).drop_vars(FORM_DIM)
    return GridField(var, "probabilities", data, str(path), thresholds=ts)


def _params(ds: xr.Dataset, path: Path, families: Mapping[str, str]) -> list[GridField]:
    by_var: dict[str, dict[str, xr.DataArray]] = {}
    fams: dict[str, str] = {}
    for name, da in ds.data_vars.items():
        param = da.attrs.get("distribution_parameter")
        if param is None:
            continue
        var = str(name)[: -len(str(param)) - 1]
        if var not in VARIABLES:
            continue
        by_var.setdefault(var, {})[str(param)] = _param_canonical(da, var, str(param), path)
        family = families.get(var) or da.attrs.get("distribution")
        if family is None:
            raise ValueError(f"{path}: {name} has no distribution attribute (give --family)")
        fams[var] = str(family)
    from probcast import dists

    out = []
    for var, params in by_var.items():
        names = tuple(dists.get(fams[var]).param_names)
        missing = [p for p in names if p not in params]
        if missing:
            raise ValueError(f"{path}: {fams[var]} parameters of {var} lack {missing}")
        stacked = xr.concat([_with_time_dims(params[p], path) for p in names], dim=FORM_DIM)
        stacked = stacked.transpose(..., FORM_DIM)
        out.append(
            GridField(var, "params", stacked, str(path), family=fams[var], param_names=names)
        )
    return out


def _fields(ds: xr.Dataset, path: Path, families: Mapping[str, str]) -> list[GridField]:
    out = _params(ds, path, families)
    for name, da in ds.data_vars.items():
        n = str(name)
        if "distribution_parameter" in da.attrs or "grid_mapping_name" in da.attrs:
            continue
        if "threshold" in da.dims:
            out.append(_probabilities(da, path))
        elif n in VARIABLES and "realization" in da.dims:
            data = _with_time_dims(_canonical(da, n, path), path)
            out.append(GridField(n, "members", data.rename(realization=FORM_DIM), str(path)))
        elif n in VARIABLES and "percentile" in da.dims:
            pct = np.asarray(da["percentile"].values, "float64")
            if np.any((pct <= 0) | (pct >= 100)):
                raise ValueError(f"{path}: percentiles of {n} must lie in (0, 100): {pct}")
            data = _with_time_dims(_canonical(da, n, path), path)
            data = data.rename(percentile=FORM_DIM).drop_vars(FORM_DIM)
            out.append(GridField(n, "quantiles", data, str(path), levels=pct / 100.0))
        elif n.startswith(FC_PREFIX) and n[len(FC_PREFIX) :] in VARIABLES:
            var = n[len(FC_PREFIX) :]
            data = _with_time_dims(_canonical(da, var, path), path)
            out.append(GridField(var, "point", data, str(path)))
    return out


def open_forecast(
    name: str,
    paths: list[str | os.PathLike[str]],
    families: Mapping[str, str] | None = None,
) -> GridForecast:
    """Open the product files (or canonical grids) of one forecast, lazily.

    Args:
        name: Forecast name (``--forecast NAME=FILE``).
        paths: Its files: product files of one run, or a grid with ``fc_<var>`` fields.
        families: ``{variable: family}`` for parameter fields without a
            ``distribution`` attribute.

    Returns:
        The :class:`GridForecast`.

    Raises:
        ValueError: Unreadable file, no forecast field, unconvertible units (the message
            names the file).
    """
    fc = GridForecast(name, [str(p) for p in paths])
    for p in map(Path, paths):
        ds = _open(p)
        found = _fields(ds, p, families or {})
        if not found:
            raise ValueError(
                f"{p}: no gridded forecast field; expected a probcast product (members, "
                f"percentiles, probabilities, parameters) or fc_<var> (found "
                f"{sorted(map(str, ds.data_vars))})"
            )
        for f in found:
            fc.add(f)
        fc.periods.update(_stated_periods(ds, p))
    return fc


def _stated_periods(ds: xr.Dataset, path: Path) -> dict[str, float]:
    """Periods a file states: ``probcast_periods`` (grids), ``statistic_period`` (products)."""
    out = periods.of(ds.attrs, str(path))
    for name, da in ds.data_vars.items():
        if "statistic_period" in da.attrs:
            var = str(da.attrs.get("diagnostic", str(name).split("_", 1)[0]))
            out[var] = periods.from_iso(da.attrs["statistic_period"], f"{path}: {name}")
    return out


def check_periods(truth: xr.Dataset, name: str, forecasts: list[GridForecast]) -> None:
    """Refuse a forecast whose accumulation period differs from the analysis's.

    Raises:
        ValueError: Naming the forecast, the variable and both periods.
    """
    want = periods.of(truth.attrs, name)
    for fc in forecasts:
        if (var := periods.differ(fc.periods, want)) is not None:
            raise ValueError(
                f"forecast {fc.name!r} ({', '.join(fc.paths)}): {var} is over "
                f"{fc.periods[var]:g} h, but the truth {name} holds {want[var]:g}-h {var}; "
                "score a forecast against an analysis of its own period"
            )


def _obs_name(name: str, da: xr.DataArray) -> str | None:
    if name.startswith(OBS_PREFIX):
        return name if name[len(OBS_PREFIX) :] in VARIABLES else None
    var = identify(name, da)
    std = str(da.attrs.get("standard_name", ""))
    if var is None and std:
        hits = [v.name for v in VARIABLES.values() if v.standard_name == std]
        cell = str(da.attrs.get("cell_methods", ""))
        if std == "air_temperature":
            hits = ["tmax" if "maximum" in cell else "tmin" if "minimum" in cell else "t2m"]
        var = hits[0] if len(hits) == 1 else None
    return OBS_PREFIX + var if var else None


def _on_valid_time(ds: xr.Dataset, path: Path) -> xr.Dataset:
    if "time" in ds.dims:
        return ds
    if "valid_time" in ds.dims:  # the CDS ERA5 layout (a scalar 'time' there is no axis)
        return ds.drop_vars([c for c in ("time",) if c in ds.coords]).rename(valid_time="time")
    for dim in (FRT, FP):
        if dim not in ds.dims:
            if dim not in ds.coords:
                raise ValueError(
                    f"{path}: the analysis needs a valid 'time' (or 'valid_time') axis or "
                    f"{FRT} and {FP}; found dims {dict(ds.sizes)}"
                )
            ds = ds.expand_dims(dim)
    valid = (ds[FRT] + ds[FP]).transpose(FRT, FP).values
    ds = ds.drop_vars([c for c in ds.coords if c in ("valid_time", "time")])
    times, first = np.unique(valid.ravel(), return_index=True)  # one field per valid time
    i, j = np.unravel_index(first, valid.shape)
    picked = ds.isel({FRT: xr.DataArray(i, dims="time"), FP: xr.DataArray(j, dims="time")})
    return picked.drop_vars([FRT, FP]).assign_coords(time=times)


def open_truth(path: str | os.PathLike[str]) -> xr.Dataset:
    """The gridded analysis as ``obs_<var>`` on ``(time, *grid)``, canonical units, lazy.

    Raises:
        ValueError: Unreadable file, no recognisable field, missing or unconvertible
            units, an analysis entirely missing or outside its physical range, no time
            axis (the message names the file).
    """
    p = Path(path)
    fmt = sniff_format(p)
    if fmt in ("grib", "reference"):
        ds = open_gridded(p, role="obs")
    else:
        raw = _open(p)
        ren: dict[str, str] = {}
        obs_first = any(str(n).startswith(OBS_PREFIX) for n in raw.data_vars)
        for name, da in raw.data_vars.items():
            if str(name).startswith(FC_PREFIX) or (
                obs_first and not str(name).startswith(OBS_PREFIX)
            ):
                continue  # a forecast field, never the truth
            obs = _obs_name(str(name), da)
            if obs and obs not in ren.values() and set(da.dims) & set(SPATIAL):
                ren[str(name)] = obs
        if not ren:
            raise ValueError(
                f"{p}: no analysis field; expected obs_<var> or a variable with a known "
                f"name or standard_name (found {sorted(map(str, raw.data_vars))})"
            )
        ds = raw[list(ren)].rename(ren)
        ds = check_grid(ds, str(p))  # units, then infinite, all-missing, impossible values
    stated = periods.of(ds.attrs if fmt in ("grib", "reference") else raw.attrs, str(p))
    ds = _on_valid_time(ds, p)
    if ds.indexes["time"].has_duplicates:
        raise ValueError(f"{p}: the analysis has duplicate valid times")
    return periods.recorded(ds, stated)


def grid_dims(da: xr.DataArray | xr.Dataset) -> tuple[str, ...]:
    """The spatial dimensions, in their order."""
    return tuple(str(d) for d in da.dims if d in SPATIAL)
