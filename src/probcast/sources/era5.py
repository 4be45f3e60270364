"""ERA5 as truth: CDS NetCDF (new and legacy layouts) sampled at stations, and a CDS fetch.

Layouts:

* new CDS (2024+): ``valid_time`` (seconds since 1970), ``expver`` a string coordinate
  along ``valid_time`` (``0001`` ERA5, ``0005`` ERA5T), scalar ``number``; one file per
  ``stepType`` (instant, accum, max). Accumulations (``tp``) are 1-h amounts ending at
  ``valid_time``.
* legacy ``grib_to_netcdf``: ``time`` (hours since 1900), int16 packed with
  ``scale_factor``/``add_offset`` (xarray unpacks), sometimes an ``expver`` *dimension*
  when ERA5 and ERA5T are mixed.

``expver`` merging: with an ``expver`` dimension, each time takes the first version that
has a value (ERA5 ``1`` before ERA5T ``5``); as a coordinate it is dropped after
recording which times are ERA5T (they are listed in the notes).

Each file is read whole through :func:`probcast.sources.fs.read_bytes`, so the
``storage_options`` keys ``timeout``, ``retries`` and ``retry_wait`` apply as for NWP files
(transient HTTP errors retried with back-off; a :class:`SourceError` naming the URL after
the last attempt), then opened from memory.
"""

from __future__ import annotations

import io as _io
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from probcast import io
from probcast.sources import fs
from probcast.sources.errors import SourceError
from probcast.sources.obs import ObsData
from probcast.sources.variables import derive, to_canonical, wind_direction
from probcast.sources.xarray_points import nearest_indexers, on_grid

ERA5_NAMES = {
    "t2m": "t2m", "2t": "t2m", "d2m": "td2m", "2d": "td2m", "u10": "u10", "10u": "u10",
    "v10": "v10", "10v": "v10", "msl": "msl", "sp": "sp", "tcc": "tcc", "tp": "tp",
    "i10fg": "gust", "fg10": "gust", "10fg": "gust",
}  # fmt: skip


def merge_expver(ds: xr.Dataset) -> tuple[xr.Dataset, list[str]]:
    """Collapse ``expver`` (dimension or coordinate) and say which times are ERA5T."""
    notes = []
    if "expver" in ds.dims:
        versions = [str(v) for v in ds["expver"].values]
        order = sorted(range(len(versions)), key=lambda i: int(versions[i]))
        merged = ds.isel(expver=order[0])
        for i in order[1:]:
            merged = merged.fillna(ds.isel(expver=i))
        ds = merged.drop_vars("expver", errors="ignore")
        notes.append(f"expver {versions} merged (ERA5 first, ERA5T where ERA5 is missing)")
    elif "expver" in ds.coords:
        ev = np.asarray(ds["expver"].values).astype(str)
        later = int((np.char.lstrip(ev, "0") != "1").sum()) if ev.ndim else 0
        if later:
            notes.append(f"{later} time(s) are ERA5T (preliminary, expver != 0001)")
        ds = ds.drop_vars("expver")
    return ds, notes


def open_era5(
    urls: Sequence[str], storage_options: dict[str, Any] | None = None
) -> tuple[xr.Dataset, list[str]]:
    """Open and merge ERA5 NetCDF files into one dataset on ``time``.

    Raises:
        SourceError: Naming the file: it cannot be read (after the retries of
            ``storage_options``, see the module docstring) or is not ERA5 NetCDF.
    """
    parts, notes = [], []
    for url in urls:
        data = fs.read_bytes(url, storage_options)  # timeout, retries, retry_wait
        try:
            with xr.open_dataset(_io.BytesIO(data), engine="h5netcdf") as raw:
                ds = raw.load()
        except (OSError, ValueError) as err:
            raise SourceError(f"{url}: cannot open as ERA5 NetCDF ({err})") from None
        if "valid_time" in ds.dims:
            ds = ds.rename({"valid_time": "time"})
        if "time" not in ds.dims:
            raise SourceError(f"{url}: no 'valid_time' or 'time' dimension; not an ERA5 file")
        ds, n = merge_expver(ds)
        notes += [f"{url}: {x}" for x in n]
        parts.append(ds.drop_vars([v for v in ("number",) if v in ds.variables]))
    return xr.merge(parts, compat="override", join="outer"), notes


def truth_window(spec: Any) -> dict[str, Any]:
    """Period and variables of gridded truth a build needs (valid times of every cycle).

    From the spec's start less the accumulation period (``tp`` sums the hours before the
    valid time) to its end plus the longest lead time.
    """
    return {
        "start": spec.start - pd.Timedelta(hours=spec.accumulation_hours),
        "end": spec.end + pd.Timedelta(hours=max(spec.lead_times)),
        "variables": list(spec.variables),
    }


def points_to_obs(
    raw: dict[str, np.ndarray],
    times: np.ndarray,
    stations: pd.DataFrame,
    st: pd.DataFrame,
    notes: list[str],
) -> ObsData:
    """Observations from canonical values ``(time, station)`` of a gridded truth source."""
    values = derive(raw, ["ws10", "rh"])
    if "u10" in values and "v10" in values:
        values["wdir10"] = wind_direction(values["u10"], values["v10"])
    stamps = pd.to_datetime(times).tz_localize("UTC")
    n_t, n_s = len(stamps), len(st)
    obs = pd.DataFrame(
        {
            "station": np.tile(st["station"].astype(str).to_numpy(), n_t),
            "time": np.repeat(stamps, n_s),
        }
    )
    for var, arr in values.items():
        if var not in ("u10", "v10"):
            obs[f"obs_{var}"] = np.asarray(arr).reshape(-1)
    if "obs_tp" in obs:
        obs["tp_hours"] = 1.0
    return ObsData(obs=obs, stations=stations.copy(), notes=notes)


@dataclass(frozen=True)
class TruthQuery:
    """What a gridded truth reader is asked for (see :func:`gridded_reader`).

    Attributes:
        urls: The truth files or stores.
        storage_options: fsspec options.
        latitude: Latitudes of the stations that have a position.
        longitude: Their longitudes.
        start: First hour wanted (UTC), or None.
        end: Last hour wanted (UTC), or None.
        variables: Canonical variables wanted, or None.
    """

    urls: Sequence[str]
    storage_options: dict[str, Any] | None
    latitude: np.ndarray
    longitude: np.ndarray
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    variables: Sequence[str] | None


PointValues = tuple[dict[str, np.ndarray], np.ndarray, list[str]]
"""Canonical values ``var -> (time, station)``, their times and notes."""


def gridded_reader(sample: Callable[[TruthQuery], PointValues]) -> Callable[..., ObsData]:
    """A truth reader (``urls, stations, storage_options, *, start, end, variables``).

    ``sample`` gives the values at the stations' positions; the reader keeps the stations
    that have one and turns the values into observations (:func:`points_to_obs`). Its
    docstring is ``sample``'s.
    """

    def read(
        urls: Sequence[str],
        stations: pd.DataFrame,
        storage_options: dict[str, Any] | None = None,
        *,
        start: pd.Timestamp | None = None,
        end: pd.Timestamp | None = None,
        variables: Sequence[str] | None = None,
    ) -> ObsData:
        st = stations.dropna(subset=["latitude", "longitude"])
        lat = st["latitude"].to_numpy(dtype="float64")
        lon = st["longitude"].to_numpy(dtype="float64")
        query = TruthQuery(urls, storage_options, lat, lon, start, end, variables)
        values, times, notes = sample(query)
        return points_to_obs(values, times, stations, st, notes)

    read.__doc__ = sample.__doc__
    return read


def _era5_points(q: TruthQuery) -> PointValues:
    """ERA5 at the stations' nearest grid points as observations (1-h ``tp``).

    ``start``/``end`` (UTC) keep only the hours of that period; ``variables`` is accepted
    for the interface of gridded truth readers (every known field is read).
    """
    ds, notes = open_era5(q.urls, q.storage_options)
    if q.start is not None and q.end is not None:
        lo, hi = (pd.Timestamp(t).tz_convert("UTC").tz_localize(None) for t in (q.start, q.end))
        ds = ds.sel(time=slice(lo, hi))
    idx = nearest_indexers(ds, q.latitude, q.longitude)
    inside = on_grid(ds, q.latitude, q.longitude, idx)
    if not inside.all():
        notes = [*notes, f"{q.urls[0]}: {int((~inside).sum())} station(s) outside the grid (NaN)"]
    pts = ds.isel(idx)
    values: dict[str, np.ndarray] = {}
    for name, da in pts.data_vars.items():
        var = ERA5_NAMES.get(str(name))
        if var is None or "time" not in da.dims:
            continue
        arr = np.array(da.transpose("time", "station").values, dtype="float64")
        arr[:, ~inside] = np.nan
        values[var] = to_canonical(arr, str(da.attrs.get("units", "")), var, source=str(name))
    return values, ds["time"].values, notes


read_era5 = gridded_reader(_era5_points)


def cds_credentials() -> tuple[str, str]:
    """(url, key) of the CDS API from ``CDSAPI_URL``/``CDSAPI_KEY`` or ``~/.cdsapirc``.

    Raises:
        SourceError: When no key is configured (a one-line message saying how to set one).
    """
    url = os.environ.get("CDSAPI_URL", "https://cds.climate.copernicus.eu/api")
    key = os.environ.get("CDSAPI_KEY", "")
    rc = Path(os.environ.get("CDSAPI_RC", Path.home() / ".cdsapirc"))
    if not key and rc.is_file():
        for line in rc.read_text(encoding="utf-8", errors="replace").splitlines():
            name, _, value = line.partition(":")
            if name.strip() == "key":
                key = value.strip()
            elif name.strip() == "url":
                url = value.strip()
    if not key:
        raise SourceError(
            f"CDS API: no key configured; put 'url: {url}' and 'key: <your key>' in {rc} "
            "or set CDSAPI_KEY (get a key at https://cds.climate.copernicus.eu/how-to-api)"
        )
    return url, key


def fetch_era5(request: dict[str, Any], target: str | os.PathLike[str]) -> Path:
    """Download an ERA5 single-levels request from the CDS to ``target`` (NetCDF).

    Raises:
        SourceError: No key configured, ``cdsapi`` not installed, or the request failed.
    """
    url, key = cds_credentials()
    try:
        import cdsapi
    except ImportError:
        raise SourceError(
            "CDS API: the 'cdsapi' package is not installed (pip install cdsapi)"
        ) from None
    try:
        client = cdsapi.Client(url=url, key=key, quiet=True)
        with io.atomic_path(target) as tmp:
            client.retrieve("reanalysis-era5-single-levels", dict(request), str(tmp))
    except Exception as err:  # cdsapi raises bare Exception/HTTPError subclasses
        raise SourceError(f"CDS API: request failed: {type(err).__name__}: {err}") from None
    return Path(target)
