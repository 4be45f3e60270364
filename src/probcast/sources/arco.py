"""ARCO-ERA5 (Google's analysis-ready, cloud-optimised ERA5 Zarr) as truth.

Stores (public, anonymous read)::

    gs://gcp-public-data-arco-era5/ar/full_37-1h-0p25deg-chunk-1.zarr-v3
    gs://gcp-public-data-arco-era5/ar/1959-2022-full_37-1h-0p25deg-chunk-1.zarr-v2

Layout: ``time`` (hourly), ``latitude`` (721 values, 90 to -90: descending), ``longitude``
(1440 values, 0 to 359.75), ``level`` (37 pressure levels, not used here); variables have
long names (``2m_temperature``) with ``units`` attributes in ECMWF spelling (``m s**-1``,
``(0 - 1)``). ``total_precipitation`` is the 1-h accumulation (m) ending at ``time``. Each
chunk holds one hour of one variable over the globe.

The store is opened lazily (consolidated metadata only); the period and the grid cells
around the wanted points are selected before anything is read, so a build reads
``hours x variables`` chunks and never the rest of the petabyte. ``gs://`` needs the
``gcsfs`` package (``pip install gcsfs`` or ``probcast[cloud]``) and is read anonymously
unless ``storage_options`` say otherwise; any other fsspec location (a local copy,
``s3://`` with an endpoint) works the same way.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from probcast.schema import VARIABLES
from probcast.sources import fs, regular
from probcast.sources.era5 import PointValues, TruthQuery, gridded_reader
from probcast.sources.errors import SourceError
from probcast.sources.variables import DERIVED, EXTRA_UNITS, to_canonical

ARCO_ERA5 = "gs://gcp-public-data-arco-era5/ar/full_37-1h-0p25deg-chunk-1.zarr-v3"
ARCO_NAMES = {
    "2m_temperature": "t2m",
    "2m_dewpoint_temperature": "td2m",
    "10m_u_component_of_wind": "u10",
    "10m_v_component_of_wind": "v10",
    "10m_wind_speed": "ws10",
    "instantaneous_10m_wind_gust": "gust",
    "mean_sea_level_pressure": "msl",
    "surface_pressure": "sp",
    "total_cloud_cover": "tcc",
    "total_precipitation": "tp",
}
"""ARCO-ERA5 variable -> canonical variable."""


def storage_options_for(url: str, storage_options: dict[str, Any] | None) -> dict[str, Any]:
    """``storage_options`` for ``url``: anonymous ``gs://`` by default; gcsfs must be there.

    Raises:
        SourceError: ``gs://`` without the ``gcsfs`` package (says how to install it).
    """
    so = dict(storage_options or {})
    if url.startswith(("gs://", "gcs://")):
        if importlib.util.find_spec("gcsfs") is None:
            raise SourceError(
                f"{url}: reading gs:// needs the 'gcsfs' package, which is not installed "
                "(pip install gcsfs, or pip install 'probcast[cloud]')"
            )
        so.setdefault("token", "anon")
    return so


def wanted_sources(variables: Sequence[str] | None) -> set[str] | None:
    """Canonical variables to read for ``variables`` (derived ones add their inputs)."""
    if variables is None:
        return None
    out = set(variables)
    for var in variables:
        out |= set(DERIVED.get(var, ()))
    return out


def open_arco(
    url: str,
    storage_options: dict[str, Any] | None = None,
    variables: Sequence[str] | None = None,
) -> xr.Dataset:
    """Open an ARCO-ERA5 store lazily: canonical names, only the fields of ``variables``.

    Returns:
        A lazy dataset on ``time x latitude x longitude`` with the ARCO ``units``
        attributes (convert with :func:`canonical`).

    Raises:
        SourceError: Unreadable store, not the ARCO layout, or none of the variables.
    """
    fsys, path = fs.filesystem(url, storage_options_for(url, storage_options))
    try:
        ds = xr.open_zarr(fsys.get_mapper(path), consolidated=None, chunks=None)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise SourceError(
            f"{url}: cannot open as an ARCO-ERA5 Zarr store ({type(err).__name__}: {err})"
        ) from None
    lacking = [d for d in ("time", "latitude", "longitude") if d not in ds.dims]
    if lacking:
        raise SourceError(
            f"{url}: not the ARCO-ERA5 layout: no {lacking} dimension (has {sorted(ds.dims)})"
        )
    wanted = wanted_sources(variables)
    names = {
        src: canon
        for src, canon in ARCO_NAMES.items()
        if src in ds.data_vars and (wanted is None or canon in wanted)
    }
    if not names:
        raise SourceError(
            f"{url}: none of the ARCO-ERA5 fields {sorted(ARCO_NAMES)} for variables "
            f"{list(variables or [])}; the store has {sorted(map(str, ds.data_vars))[:20]}"
        )
    return ds[list(names)].rename(names)


def canonical(ds: xr.Dataset, source: str) -> xr.Dataset:
    """Convert every field to canonical units (``units`` attribute), in memory.

    The result's ``units`` are the canonical ones, so converting it again changes nothing
    (the grid build converted ERA5 precipitation twice: metres -> mm -> x 1000 again).
    """
    out = {}
    for name, da in ds.data_vars.items():
        units = str(da.attrs.get("units", ""))
        values = to_canonical(da.values, units, str(name), source=f"{source}: {name}")
        out[name] = da.copy(data=np.asarray(values, dtype="float64"))
        canon = VARIABLES[name].units if name in VARIABLES else EXTRA_UNITS.get(str(name), units)
        out[name].attrs.update(units=canon, source_units=da.attrs.get("source_units", units))
    return xr.Dataset(out, coords=ds.coords)


def select_period(ds: xr.Dataset, start: pd.Timestamp, end: pd.Timestamp, url: str) -> xr.Dataset:
    """The hours of ``ds`` in ``[start, end]`` (UTC); an error when there is none."""
    lo = pd.Timestamp(start).tz_convert("UTC").tz_localize(None)
    hi = pd.Timestamp(end).tz_convert("UTC").tz_localize(None)
    sub = ds.sel(time=slice(lo, hi))
    if sub.sizes["time"] == 0:
        times = ds["time"].values
        raise SourceError(
            f"{url}: no time in {lo} .. {hi} UTC; the store covers "
            f"{pd.Timestamp(times[0])} .. {pd.Timestamp(times[-1])}"
        )
    return sub


def _arco_points(q: TruthQuery) -> PointValues:
    """ARCO-ERA5 at the stations' nearest grid points as observations (1-h ``tp``).

    Only the hours of ``[start, end]`` and the grid cells nearest the stations are read.

    Raises:
        SourceError: No period given, or a store problem (see :func:`open_arco`).
    """
    if q.start is None or q.end is None:
        raise SourceError("ARCO-ERA5 truth: a period (start, end) is needed; the store is 1 PB")
    parts = []
    for url in q.urls:
        ds = select_period(open_arco(url, q.storage_options, q.variables), q.start, q.end, url)
        parts.append(
            canonical(regular.sample(ds, q.latitude, q.longitude, "nearest", source=url), url)
        )
    pts = xr.merge(parts, compat="override", join="outer")
    values = {str(n): da.transpose("time", "point").values for n, da in pts.data_vars.items()}
    return values, pts["time"].values, []


read_arco = gridded_reader(_arco_points)
