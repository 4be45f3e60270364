"""Read gridded NWP output (NetCDF, Zarr, GRIB1/2, kerchunk references) into the canonical model.

:func:`open_gridded` detects the format from the file's first bytes, opens it with the
matching xarray backend and normalises once: canonical variable names and units
(:mod:`probcast.schema`; from the ``units`` attribute whatever the names, ``fc_*``/``obs_*``
included: :func:`probcast.ingest.grid_values.canonical_units`), CF attributes, the time
axes ``forecast_reference_time`` x ``forecast_period`` (or ``time`` for truth),
``realization`` for ensemble members and a ``grid_mapping`` variable when the grid is
projected. See docs/gridded.md.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Iterable
from pathlib import Path

import xarray as xr

from probcast import io, periods
from probcast.ingest import grib_windows
from probcast.ingest.encoding import mask_invalid, open_cf
from probcast.ingest.errors import GriddedReadError
from probcast.ingest.grid_values import canonical_units
from probcast.ingest.normalise import (
    FP,
    FRT,
    GRID_ALIASES,
    SPATIAL_DIMS,
    identify,
    normalise,
    select_canonical,
    tidy_dims,
    to_time_axes,
    wanted_names,
)
from probcast.schema import FC_PREFIX, OBS_PREFIX, VARIABLES

__all__ = [
    "GRID_ALIASES",
    "GriddedReadError",
    "check_grib",
    "identify",
    "normalise",
    "open_gridded",
    "sniff_format",
    "to_time_axes",
    "write_dataset",
]


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
    data; this scan makes corruption and truncation an error instead
    (:func:`probcast.ingest.grib_windows.scan`).
    """
    return len(grib_windows.scan(path))


def _open_raw(
    path: Path, fmt: str, engine: str | None, messages: list[grib_windows.Message]
) -> list[xr.Dataset]:
    """Open ``path`` with the backend of ``fmt``; a list (GRIB may hold several hypercubes).

    A GRIB file's message headers are put in ``messages`` (:func:`grib_windows.scan`).
    """
    kw: dict = {"decode_timedelta": True}
    if fmt == "grib":
        import cfgrib

        messages.extend(grib_windows.scan(path))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return list(cfgrib.open_datasets(str(path), backend_kwargs={"indexpath": ""}, **kw))
    if fmt == "reference":
        so = {"fo": str(path), "remote_protocol": "file"}
        bk = {"consolidated": False, "storage_options": so}
        ref = xr.open_dataset("reference://", engine="zarr", backend_kwargs=bk, **kw)
        return [mask_invalid(ref)]
    # missing values as declared: Zarr fill_value 0 is no marker, CF valid range applied
    eng = None if fmt == "zarr" else engine or ("netcdf4" if fmt == "netcdf4" else "scipy")
    return [open_cf(path, fmt, engine=eng, decode_coords="all", **kw)]


def _finish(ds: xr.Dataset, src: Path, role: str) -> xr.Dataset:
    ds = to_time_axes(tidy_dims(ds), src)
    if role == "obs":
        ds = _to_obs_time(ds, src)
        lead: tuple[str, ...] = ("time",)
    else:
        lead = (FRT, FP)
    spatial = [d for d in SPATIAL_DIMS if d in ds.dims]
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

    A Zarr store that ``probcast data build`` appends to (``grid-state.json`` next to it)
    is read up to its committed reference times only; a partial append is not read, and a
    warning says so (:mod:`probcast.ingest.grid_commit`).

    Returns:
        The normalised dataset, loaded into memory.

    Raises:
        GriddedReadError: Missing file, unknown/corrupted format, no recognisable variable,
            missing or unconvertible units, a requested variable missing or a
            ``grid-state.json`` that cannot be read or disagrees with its store. (The value
            checks, :func:`probcast.ingest.grid_values.check_grid`, are applied where a
            model reads a grid: :func:`probcast.align.points.open_grid`.)
    """
    if role not in ("forecast", "obs"):
        raise ValueError(f"role must be 'forecast' or 'obs', got {role!r}")
    text = os.fspath(path_or_url)
    src = Path(text.removeprefix("reference://"))
    fmt = sniff_format(src)
    fmt = {"cfgrib": "grib", "zarr": "zarr", "reference": "reference"}.get(engine or "", fmt)
    messages: list[grib_windows.Message] = []
    try:
        raw = _open_raw(src, fmt, engine if fmt.startswith("netcdf") else None, messages)
        used = [r.load() for r in raw if _has_fields(r, keep_unknown)]
        parts = [normalise(r, src, role=role, keep_unknown=keep_unknown) for r in used]
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
    ds = canonical_units(select_canonical(ds, src, wanted_names(variables), prefix), str(src))
    if fmt == "grib":  # the windows of accumulated and extreme fields (cfgrib drops them)
        ds.attrs.pop(periods.FROM_START, None)
        stated = grib_windows.stated(src, used, messages, ds, prefix)
        ds.attrs.pop(periods.ATTR, None)
        if stated:
            ds.attrs[periods.ATTR] = json.dumps(dict(sorted(stated.items())))
    elif raw and periods.ATTR in raw[0].attrs and periods.ATTR not in ds.attrs:
        ds.attrs[periods.ATTR] = raw[0].attrs[periods.ATTR]  # (dropped by normalise)
    return ds


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
    out = ds.copy()
    for var in out.variables.values():
        var.encoding = {}
    with io.atomic_path(path) as tmp:
        if suffix == ".nc":
            enc = {str(v): {"zlib": True, "complevel": 4} for v in out.data_vars}
            out.to_netcdf(tmp, engine="netcdf4", encoding=enc)
        else:
            out.to_zarr(tmp, mode="w", consolidated=False)
    return path
