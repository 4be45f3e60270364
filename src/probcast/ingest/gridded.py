"""Read gridded NWP output (NetCDF, Zarr, GRIB1/2, kerchunk references) into the canonical model.

:func:`open_gridded` detects the format from the file's first bytes, opens it with the
matching xarray backend and normalises once: canonical variable names and units
(:mod:`probcast.schema`), CF attributes, the time axes ``forecast_reference_time`` x
``forecast_period`` (or ``time`` for truth), ``realization`` for ensemble members and a
``grid_mapping`` variable when the grid is projected. See docs/gridded.md.
"""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

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
_SPATIAL = ("y", "x", "latitude", "longitude", "point")


class GriddedReadError(ValueError):
    """A gridded file cannot be read or normalised; the message names file and problem."""


def sniff_format(path: Path) -> str:
    """Return ``grib``, ``netcdf4``, ``netcdf3``, ``zarr`` or ``reference`` for ``path``.

    Raises:
        GriddedReadError: Missing file or unknown format.
    """
    if not path.exists():
        raise GriddedReadError(f"{path}: file not found")
    if path.is_dir():
        if (path / "zarr.json").exists() or (path / ".zgroup").exists():
            return "zarr"
        raise GriddedReadError(f"{path}: a folder but not a Zarr store (no zarr.json/.zgroup)")
    with open(path, "rb") as f:
        head = f.read(1024)
    if head.startswith(b"\x89HDF"):
        return "netcdf4"
    if head.startswith(b"CDF\x01") or head.startswith(b"CDF\x02") or head.startswith(b"CDF\x05"):
        return "netcdf3"
    if head.lstrip().startswith(b"{"):
        return "reference"
    if b"GRIB" in head:  # a WMO bulletin header may precede the first message
        return "grib"
    raise GriddedReadError(
        f"{path}: unknown format (first bytes {head[:8]!r}); expected NetCDF (HDF5 or classic),"
        " Zarr, GRIB1/2 or a kerchunk reference JSON"
    )


def check_grib(path: Path) -> int:
    """Scan every GRIB message header; return the count or raise on a corrupted message.

    cfgrib skips corrupted messages with a warning, which would silently return partial
    data; this scan makes corruption and truncation an error instead.
    """
    import eccodes

    count = 0
    with open(path, "rb") as f:
        while True:
            offset = f.tell()
            try:
                handle = eccodes.codes_grib_new_from_file(f)
            except Exception as err:
                raise GriddedReadError(
                    f"{path}: corrupted or truncated GRIB: message {count + 1} at byte {offset} "
                    f"cannot be decoded ({type(err).__name__}: {err}); expected complete GRIB "
                    "messages"
                ) from None
            if handle is None:
                break
            eccodes.codes_release(handle)
            count += 1
    if count == 0:
        raise GriddedReadError(f"{path}: no GRIB message found; expected GRIB1/2 messages")
    return count


def _open_raw(path: Path, fmt: str, engine: str | None) -> list[xr.Dataset]:
    """Open ``path`` with the backend of ``fmt``; a list (GRIB may hold several hypercubes)."""
    kw: dict = {"decode_timedelta": True}
    if fmt == "grib":
        import cfgrib

        check_grib(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return list(cfgrib.open_datasets(str(path), backend_kwargs={"indexpath": ""}, **kw))
    if fmt == "reference":
        so = {"fo": str(path), "remote_protocol": "file"}
        bk = {"consolidated": False, "storage_options": so}
        return [xr.open_dataset("reference://", engine="zarr", backend_kwargs=bk, **kw)]
    if fmt == "zarr":
        bk = {"consolidated": False}
        return [xr.open_dataset(path, engine="zarr", decode_coords="all", backend_kwargs=bk, **kw)]
    eng = engine or ("netcdf4" if fmt == "netcdf4" else "scipy")
    return [xr.open_dataset(path, engine=eng, decode_coords="all", **kw)]


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
    """Rename/derive the time coordinates to (forecast_reference_time, forecast_period)."""
    ref = _find(ds, _REF_NAMES, FRT)
    lead = _find(ds, _LEAD_NAMES, FP)
    valid = _find(ds, _VALID_NAMES, "time")
    valid = None if valid == ref else valid
    if lead is not None and ref is None:  # cfgrib without CF attrs: 'time' is the reference
        ref, valid = valid, None
    if ref is None and valid is None:
        raise GriddedReadError(f"{src}: no time coordinate; expected a reference/valid time")
    if lead is not None and ref is not None:
        ds = ds.drop_vars([v for v in ("valid_time", valid) if v and v in ds.variables])
        ds = ds.rename({k: v for k, v in ((ref, FRT), (lead, FP)) if k != v})
    else:
        ds = _lead_from_valid(ds, ref, str(valid or ref), src)
    for dim in (FRT, FP):
        if ds[dim].ndim == 0:
            ds = ds.expand_dims(dim)
    frt = ds[FRT].values.astype("datetime64[ns]")
    fp = ds[FP].values.astype("timedelta64[ns]")
    ds = ds.assign_coords({FRT: frt, FP: fp})
    return ds.assign_coords(valid_time=ds[FRT] + ds[FP])


def _tidy_dims(ds: xr.Dataset) -> xr.Dataset:
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


def _wanted(variables: Iterable[str] | None) -> list[str] | None:
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
        return _select_canonical(ds, src, _wanted(variables), prefix)
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
    return _select_canonical(out, src, _wanted(variables), prefix, available=list(ds.data_vars))


def _global_attrs(ds: xr.Dataset, src: Path) -> dict:
    keep = ("institution", "GRIB_centre", "GRIB_edition", "GRIB2_grid_template", "History")
    attrs = {k: ds.attrs[k] for k in keep if k in ds.attrs}
    attrs.update({"Conventions": "CF-1.8", "source": str(src)})
    return attrs


def _select_canonical(
    ds: xr.Dataset,
    src: Path,
    wanted: list[str] | None,
    prefix: str,
    available: list | None = None,
) -> xr.Dataset:
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


def _finish(ds: xr.Dataset, src: Path, role: str) -> xr.Dataset:
    ds = to_time_axes(_tidy_dims(ds), src)
    if role == "obs":
        ds = _to_obs_time(ds, src)
        lead: tuple[str, ...] = ("time",)
    else:
        lead = (FRT, FP)
    spatial = [d for d in _SPATIAL if d in ds.dims]
    order = [*lead, *[d for d in ("realization",) if d in ds.dims]]
    return ds.transpose(*order, ..., *spatial)


def _to_obs_time(ds: xr.Dataset, src: Path) -> xr.Dataset:
    """Collapse (reference time, period) to one valid ``time`` axis for truth fields."""
    if ds.sizes[FP] == 1:
        valid = ds["valid_time"].isel({FP: 0}).values
        ds = ds.isel({FP: 0}).drop_vars([FP, "valid_time"]).assign_coords({FRT: valid})
        return ds.rename({FRT: "time"})
    if ds.sizes[FRT] == 1:
        valid = ds["valid_time"].isel({FRT: 0}).values
        ds = ds.isel({FRT: 0}).drop_vars([FRT, "valid_time"]).assign_coords({FP: valid})
        return ds.rename({FP: "time"})
    raise GriddedReadError(
        f"{src}: role='obs' needs one reference time or one period; found "
        f"{ds.sizes[FRT]} reference times x {ds.sizes[FP]} periods"
    )


def _merge(parts: list[xr.Dataset], src: Path) -> xr.Dataset:
    if len(parts) == 1:
        return parts[0]
    try:
        return xr.merge(parts, join="outer", compat="override", combine_attrs="override")
    except (ValueError, KeyError) as err:
        raise GriddedReadError(f"{src}: GRIB hypercubes cannot be merged: {err}") from None


def open_gridded(
    path_or_url: str | os.PathLike[str],
    *,
    engine: str | None = None,
    variables: Iterable[str] | None = None,
    role: str = "forecast",
    keep_unknown: bool = False,
) -> xr.Dataset:
    """Open a gridded file and return it in the canonical gridded model.

    Args:
        path_or_url: NetCDF (HDF5 or classic) file, Zarr store, GRIB1/2 file or kerchunk
            reference JSON. ``reference://`` prefixes a reference JSON path.
        engine: Force an xarray engine (``netcdf4``, ``h5netcdf``, ``scipy``, ``zarr``,
            ``cfgrib``, ``reference``); detected from the first bytes by default.
        variables: Canonical names (or aliases) to keep; each must exist.
        role: ``forecast`` (``fc_<var>`` on reference time x period) or ``obs``
            (``obs_<var>`` on valid ``time``).
        keep_unknown: Keep unrecognised fields (lower-cased file name, units untouched).

    Returns:
        The normalised dataset, loaded into memory.

    Raises:
        GriddedReadError: Missing file, unknown/corrupted format, no recognisable variable,
            unconvertible units or a requested variable missing.
    """
    if role not in ("forecast", "obs"):
        raise ValueError(f"role must be 'forecast' or 'obs', got {role!r}")
    text = os.fspath(path_or_url)
    src = Path(text.removeprefix("reference://"))
    fmt = sniff_format(src)
    fmt = {"cfgrib": "grib", "zarr": "zarr", "reference": "reference"}.get(engine or "", fmt)
    try:
        raw = _open_raw(src, fmt, engine if fmt.startswith("netcdf") else None)
        parts = [
            normalise(r.load(), src, role=role, keep_unknown=keep_unknown)
            for r in raw
            if _has_fields(r, keep_unknown)
        ]
    except GriddedReadError:
        raise
    except Exception as err:
        raise GriddedReadError(
            f"{src}: cannot read as {fmt} (truncated or corrupted?): {type(err).__name__}: {err}"
        ) from None
    if not parts:
        names = sorted({str(v) for r in raw for v in r.data_vars})
        raise GriddedReadError(
            f"{src}: no recognisable variables (found {names}); expected one of "
            f"{sorted(VARIABLES)} on surface/height-above-ground levels"
        )
    ds = _merge([_finish(p, src, role) for p in parts], src)
    prefix = FC_PREFIX if role == "forecast" else OBS_PREFIX
    return _select_canonical(ds, src, _wanted(variables), prefix)


def _has_fields(ds: xr.Dataset, keep_unknown: bool) -> bool:
    return any(keep_unknown or identify(str(n), v) for n, v in ds.data_vars.items()) or (
        bool(ds.data_vars) and all(str(v).startswith((FC_PREFIX, OBS_PREFIX)) for v in ds.data_vars)
    )


def write_dataset(ds: xr.Dataset, path: str | os.PathLike[str]) -> Path:
    """Write ``ds`` to NetCDF (``.nc``) or Zarr (``.zarr``) atomically (temp name, rename).

    Args:
        ds: Dataset to write.
        path: Target; the suffix selects the format.

    Returns:
        The written path.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".nc", ".zarr"):
        raise ValueError(f"{path}: unsupported suffix {suffix!r}; expected '.nc' or '.zarr'")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    out = ds.copy()
    for var in out.variables.values():
        var.encoding = {}
    try:
        if suffix == ".nc":
            enc = {str(v): {"zlib": True, "complevel": 4} for v in out.data_vars}
            out.to_netcdf(tmp, engine="netcdf4", encoding=enc)
            os.replace(tmp, path)
        else:
            out.to_zarr(tmp, mode="w", consolidated=False)
            if path.exists():
                shutil.rmtree(path)
            os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()
    return path
