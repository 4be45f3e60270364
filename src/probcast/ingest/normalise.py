"""Normalisation of opened gridded datasets into the canonical model.

Canonical variable names and units (:mod:`probcast.schema`), CF attributes, the time axes
``forecast_reference_time`` x ``forecast_period`` (or ``time`` for truth), ``realization`` for
ensemble members and a ``grid_mapping`` variable for projected grids. Used by
:func:`probcast.ingest.gridded.open_gridded`; see docs/gridded.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from probcast.ingest.errors import GriddedReadError
from probcast.ingest.grid_values import period_values, reference_values
from probcast.schema import FC_PREFIX, OBS_PREFIX, VARIABLES, UnitError, canonical_name
from probcast.schema import to_canonical_units as _to_units

FRT, FP = "forecast_reference_time", "forecast_period"

# Names met in NWP files that schema.ALIASES does not cover (lower case). Kept here, not in
# schema.py: they are reader knowledge (wgrib2, THREDDS/NCSS, cfgrib cfVarNames).
GRID_ALIASES: dict[str, str] = {
    "temperature_height_above_ground": "t2m",
    "dewpoint_temperature_height_above_ground": "td2m",
    "u-component_of_wind_height_above_ground": "u10",
    "v-component_of_wind_height_above_ground": "v10",
    "wind_speed_height_above_ground": "ws10",
    "total_precipitation_surface_mixed_intervals_accumulation": "tp",
    "total_precipitation_surface_accumulation": "tp",
    "pressure_reduced_to_msl_msl": "msl",
    "mslp_eta_model_reduction_msl": "msl",
    "pressure_surface": "sp",
    "total_cloud_cover_entire_atmosphere": "tcc",
    "total_cloud_cover_entire_atmosphere_single_layer": "tcc",
    "tmp_2maboveground": "t2m",
    "dpt_2maboveground": "td2m",
    "ugrd_10maboveground": "u10",
    "vgrd_10maboveground": "v10",
    "apcp_surface": "tp",
    "prmsl_meansealevel": "msl",
    "pres_surface": "sp",
    "tcdc_entireatmosphere": "tcc",
    "mx2t": "tmax",
    "mn2t": "tmin",
    "mx2t6": "tmax",
    "mn2t6": "tmin",
    "tmax_2maboveground": "tmax",
    "tmin_2maboveground": "tmin",
}
_SURFACE_LEVELS = {"surface", "heightAboveGround", "meanSea", "entireAtmosphere", "atmosphere"}
_REF_NAMES = ("forecast_reference_time", "reftime", "reftime1", "reference_time", "init_time")
_LEAD_NAMES = ("forecast_period", "step", "lead_time", "leadtime")
_VALID_NAMES = ("time", "valid_time", "time1", "time2", "validtime")
_MEMBER_NAMES = ("number", "realization", "member", "ensemble", "ens")
_LEVEL_COORDS = (
    "heightAboveGround",
    "surface",
    "meanSea",
    "isobaricInhPa",
    "entireAtmosphere",
    "atmosphere",
    "depthBelowLandLayer",
    "height",
    "height_above_ground",
)
_LEVEL_PREFIXES = ("height", "isobaric", "pressure", "altitude", "level", "depth")
SPATIAL_DIMS = ("y", "x", "latitude", "longitude", "point")


def _candidates(name: str, da: xr.DataArray) -> list[str]:
    keys = [
        da.attrs.get("GRIB_shortName"),
        da.attrs.get("GRIB_cfVarName"),
        name,
        da.attrs.get("short_name"),
    ]
    return [str(k) for k in keys if k and k not in ("unknown", "undef", "~")]


def _canonical(name: str) -> str | None:
    key = name.strip().lower()
    if key in GRID_ALIASES:
        return GRID_ALIASES[key]
    for prefix in ("total_precipitation_surface",):  # THREDDS: ..._6_Hour_Accumulation etc.
        if key.startswith(prefix):
            return "tp"
    canon = canonical_name(key)
    return canon if canon in VARIABLES else None


def identify(name: str, da: xr.DataArray) -> str | None:
    """Return the canonical name of file variable ``name`` or None when not recognised."""
    level = da.attrs.get("GRIB_typeOfLevel")
    if level is not None and level not in _SURFACE_LEVELS:
        return None  # e.g. temperature on pressure levels is not 2 m temperature
    for cand in _candidates(name, da):
        canon = _canonical(cand)
        if canon is not None:
            return canon
    return None


def _as_time(value: object) -> np.datetime64:
    ts = pd.Timestamp(value)  # type: ignore[arg-type]
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.as_unit("ns").to_datetime64()


def _find(ds: xr.Dataset, names: Sequence[str], standard_name: str) -> str | None:
    """Coordinate with CF ``standard_name`` (cfgrib sets them), else the first known name."""
    for name in ds.coords:
        if ds[name].attrs.get("standard_name") == standard_name:
            return str(name)
    return next((n for n in names if n in ds.coords or n in ds.dims), None)


def _wgrib2_reference(ds: xr.Dataset, valid: str) -> np.datetime64 | None:
    attrs = ds[valid].attrs
    if "reference_time" in attrs:  # wgrib2 writes unix seconds
        return _as_time(pd.Timestamp(float(attrs["reference_time"]), unit="s"))
    if "reference_date" in attrs:
        return _as_time(str(attrs["reference_date"]).replace(" UTC", "").replace(".", "-"))
    return None


def _lead_from_valid(ds: xr.Dataset, ref: str | None, valid: str, src: Path) -> xr.Dataset:
    """Give ``ds`` a forecast_period derived from valid time - reference time."""
    for name in (ref, valid):  # numbers (an epoch without units) are never read as times
        if name is not None:
            reference_values(ds[name], str(src), name)
    if ref is None:
        frt = _wgrib2_reference(ds, valid)
        if frt is None:  # an analysis/truth file: valid time is its own reference, lead 0
            return ds.rename({valid: FRT}).expand_dims({FP: [np.timedelta64(0, "ns")]})
        ds = ds.assign_coords({FRT: frt})
        ref = FRT
    if ds[ref].ndim > 0 and ds[valid].ndim > 0 and ds[ref].dims != ds[valid].dims:
        raise GriddedReadError(f"{src}: 2-D reference/valid time layout is not supported")
    if ds[valid].ndim == 1 and ds[ref].ndim == 0:
        lead = (ds[valid] - ds[ref]).values.astype("timedelta64[ns]")
        dim = ds[valid].dims[0]
        ds = ds.assign_coords({FP: (dim, lead)}).swap_dims({dim: FP}).drop_vars(valid)
        return ds.rename({ref: FRT}) if ref != FRT else ds
    raise GriddedReadError(f"{src}: cannot derive forecast_period from {ref!r} and {valid!r}")


def to_time_axes(ds: xr.Dataset, src: Path) -> xr.Dataset:
    """Rename/derive the time coordinates to (forecast_reference_time, forecast_period).

    A numeric period is converted by its duration unit (``'h'``, ``'minutes'``, ``'s'``);
    numbers without a usable time unit are refused
    (:func:`probcast.ingest.grid_values.period_values`, ``reference_values``).

    Raises:
        GriddedReadError: No time coordinate, or times that are numbers without a time unit
            (naming the file, the coordinate and the units expected).
    """
    ref = _find(ds, _REF_NAMES, FRT)
    lead = _find(ds, _LEAD_NAMES, FP)
    valid = _find(ds, _VALID_NAMES, "time")
    valid = None if valid == ref else valid
    if lead is not None and ref is None:  # cfgrib without CF attrs: 'time' is the reference
        ref, valid = valid, None
    if ref is None and valid is None:
        raise GriddedReadError(f"{src}: no time coordinate; expected a reference/valid time")
    names = {FRT: str(ref or valid), FP: str(lead)}  # as in the file, for messages
    if lead is not None and ref is not None:
        ds = ds.drop_vars([v for v in ("valid_time", valid) if v and v in ds.variables])
        ds = ds.rename({k: v for k, v in ((ref, FRT), (lead, FP)) if k != v})
    else:
        ds = _lead_from_valid(ds, ref, str(valid or ref), src)
    for dim in (FRT, FP):
        if ds[dim].ndim == 0:
            ds = ds.expand_dims(dim)
    frt = reference_values(ds[FRT], str(src), names[FRT])
    fp = period_values(ds[FP], str(src), names[FP])  # numbers by their duration unit
    ds = ds.assign_coords({FRT: frt, FP: fp})
    return ds.assign_coords(valid_time=ds[FRT] + ds[FP])


def tidy_dims(ds: xr.Dataset) -> xr.Dataset:
    """Members -> realization, 'values'/'lat'/'lon' -> point/latitude/longitude; drop levels."""
    ren = {"values": "point", "lat": "latitude", "lon": "longitude"}
    ds = ds.rename({k: v for k, v in ren.items() if k in ds.variables or k in ds.dims})
    for name in _MEMBER_NAMES:
        if name in ds.dims and ds.sizes[name] == 1:
            ds = ds.squeeze(name, drop=True)
        elif name in ds.dims:
            ds = ds.rename({name: "realization"}) if name != "realization" else ds
            break
        if name in ds.coords and ds[name].ndim == 0:
            ds = ds.drop_vars(name)
    for dim in [d for d in ds.dims if str(d).startswith(_LEVEL_PREFIXES) and ds.sizes[d] == 1]:
        ds = ds.squeeze(dim, drop=True)  # e.g. THREDDS height_above_ground1 = [2.0]
    scalar_levels = [c for c in _LEVEL_COORDS if c in ds.coords and ds[c].ndim == 0]
    return ds.drop_vars(scalar_levels)


def _lambert_mapping(attrs: dict) -> xr.DataArray | None:
    """A CF grid_mapping variable built from cfgrib's GRIB_* attributes (Lambert grids)."""
    if attrs.get("GRIB_gridType") != "lambert":
        return None
    gm = {
        "grid_mapping_name": "lambert_conformal_conic",
        "standard_parallel": [attrs.get("GRIB_Latin1InDegrees"), attrs.get("GRIB_Latin2InDegrees")],
        "longitude_of_central_meridian": attrs.get("GRIB_LoVInDegrees"),
        "latitude_of_projection_origin": attrs.get("GRIB_LaDInDegrees"),
        "earth_radius": 6371229.0,
        "grid_spacing_x_m": attrs.get("GRIB_DxInMetres"),
        "grid_spacing_y_m": attrs.get("GRIB_DyInMetres"),
    }
    return xr.DataArray(np.int32(0), attrs={k: v for k, v in gm.items() if v is not None})


def _grid_mapping(ds: xr.Dataset) -> tuple[str, xr.DataArray] | None:
    for v in ds.data_vars.values():
        name = v.attrs.get("grid_mapping") or v.encoding.get("grid_mapping")
        if name and name in ds.variables:
            return str(name), ds[name]
        built = _lambert_mapping(v.attrs)
        if built is not None:
            return "lambert_conformal_conic", built
    return None


def _convert(da: xr.DataArray, canon: str, src: Path, name: str) -> xr.DataArray:
    units = da.attrs.get("units", da.attrs.get("GRIB_units"))
    if units is None:
        raise GriddedReadError(
            f"{src}: variable {name!r} ({canon}) has no units attribute; expected "
            f"{VARIABLES[canon].units!r} or a convertible unit"
        )
    try:
        values = _to_units(da.values, str(units), canon, source=f"{src}: variable {name!r}")
    except UnitError as err:
        raise GriddedReadError(str(err)) from None
    var = VARIABLES[canon]
    attrs = {
        "standard_name": var.standard_name,
        "long_name": var.long_name,
        "units": var.units,
        "source_name": name,
        "source_units": str(units),
    }
    return xr.DataArray(values, dims=da.dims, coords=da.coords, attrs=attrs)


def wanted_names(variables: Iterable[str] | None) -> list[str] | None:
    """Canonical names of the variables a caller asked for (None: every variable)."""
    return None if variables is None else [_canonical(v) or v.lower() for v in variables]


def normalise(
    ds: xr.Dataset,
    src: Path,
    *,
    variables: Iterable[str] | None = None,
    role: str = "forecast",
    keep_unknown: bool = False,
) -> xr.Dataset:
    """Normalise one opened dataset to the canonical gridded model (see module docstring)."""
    prefix = FC_PREFIX if role == "forecast" else OBS_PREFIX
    if all(str(v).startswith((FC_PREFIX, OBS_PREFIX)) for v in ds.data_vars) and ds.data_vars:
        for v in ds.data_vars.values():  # already canonical (written by write_dataset)
            if "grid_mapping" in v.encoding:
                v.attrs.setdefault("grid_mapping", v.encoding["grid_mapping"])
        return select_canonical(ds, src, wanted_names(variables), prefix)
    mapping = _grid_mapping(ds)
    found: dict[str, xr.DataArray] = {}
    for name, da in ds.data_vars.items():
        if mapping is not None and name == mapping[0]:
            continue
        if "GRIB_missingValue" in da.attrs:  # kerchunk GRIB refs decode gaps to this value
            da = da.where(da != da.attrs["GRIB_missingValue"])
        canon = identify(str(name), da)
        if canon is not None and canon not in found:
            found[canon] = _convert(da, canon, src, str(name))
        elif canon is None and keep_unknown and da.ndim >= 2:
            found[str(name).lower()] = da.copy(data=da.values.astype("float64"))
    out = xr.Dataset({f"{prefix}{k}": v for k, v in found.items()}, attrs=_global_attrs(ds, src))
    if mapping is not None:
        out = out.assign_coords({mapping[0]: mapping[1].variable})
        for v in out.data_vars.values():
            v.attrs["grid_mapping"] = mapping[0]
    return select_canonical(out, src, wanted_names(variables), prefix, available=list(ds.data_vars))


def _global_attrs(ds: xr.Dataset, src: Path) -> dict:
    keep = ("institution", "GRIB_centre", "GRIB_edition", "GRIB2_grid_template", "History")
    attrs = {k: ds.attrs[k] for k in keep if k in ds.attrs}
    attrs.update({"Conventions": "CF-1.8", "source": str(src)})
    return attrs


def select_canonical(
    ds: xr.Dataset,
    src: Path,
    wanted: list[str] | None,
    prefix: str,
    available: list | None = None,
) -> xr.Dataset:
    """Keep the ``wanted`` canonical fields; error naming the file when none or one is missing."""
    have = {str(v).split("_", 1)[1]: str(v) for v in ds.data_vars}
    if not have:
        raise GriddedReadError(
            f"{src}: no recognisable variables (found {sorted(map(str, available or []))}); "
            f"expected one of {sorted(VARIABLES)} on surface/height-above-ground levels"
        )
    if wanted is None:
        return ds
    missing = [w for w in wanted if w not in have]
    if missing:
        raise GriddedReadError(
            f"{src}: requested variable(s) {missing} not found; available: {sorted(have)}"
        )
    return ds[[have[w] for w in wanted]]
