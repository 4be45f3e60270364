"""NOAA GHCNh hourly ``.psv`` files and a user's own observation CSV/Parquet.

GHCNh: pipe-separated, one row per report, each element followed by its
``_Measurement_Code``, ``_Quality_Code``, ``_Report_Type``, ``_Source_Code`` and
``_Source_Station_ID`` columns; degC, m s-1, hPa, mm. Rules (docs/sources.md):

* a value whose quality code is a GHCNh QC flag (any letter) or a legacy ISD suspect or
  erroneous code (2, 3, 6, 7) is removed (``source_qc``);
* a row with fewer fields than the header (the truncated ``TOOSHORT`` line) is dropped and
  counted (``truncated_row``); rows are sorted by time (files are not always ordered);
* wind direction ``VRB`` (variable) -> NaN; precipitation ``precipitation`` is 1-h, the
  ``precipitation_N_hour`` columns are not used.
"""

from __future__ import annotations

import io as _io
from typing import Any

import numpy as np
import pandas as pd

from probcast.schema import VARIABLES, canonical_name, to_canonical_units
from probcast.sources import fs
from probcast.sources.errors import SourceError
from probcast.sources.obs import OBS_VARIABLES, ObsData, clean_metadata, removed_rows

GHCNH_ELEMENTS = {
    "temperature": ("t2m", 1.0, 273.15),
    "dew_point_temperature": ("td2m", 1.0, 273.15),
    "sea_level_pressure": ("msl", 100.0, 0.0),
    "station_level_pressure": ("sp", 100.0, 0.0),
    "wind_speed": ("ws10", 1.0, 0.0),
    "wind_direction": ("wdir10", 1.0, 0.0),
    "wind_gust": ("gust", 1.0, 0.0),
    "relative_humidity": ("rh", 0.01, 0.0),
    "precipitation": ("tp", 1.0, 0.0),
}


def _bad_quality(code: pd.Series) -> pd.Series:
    c = code.fillna("").astype(str).str.strip()
    return c.str.isalpha() | c.isin(["2", "3", "6", "7"])


def read_ghcnh(url: str, storage_options: dict[str, Any] | None = None) -> ObsData:
    """Read a GHCNh ``.psv`` file."""
    text = fs.read_bytes(url, storage_options).decode("utf-8", "replace")
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines or not lines[0].startswith("Station_ID|"):
        raise SourceError(f"{url}: not a GHCNh .psv file (expected a 'Station_ID|...' header)")
    header = lines[0].split("|")
    good = [ln for ln in lines[1:] if len(ln.split("|")) == len(header)]
    short = len(lines) - 1 - len(good)
    df = pd.read_csv(
        _io.StringIO("\n".join([lines[0], *good])), sep="|", dtype=str, keep_default_na=False
    )
    df = df.replace("", np.nan)
    time = pd.to_datetime(
        df[["Year", "Month", "Day", "Hour", "Minute"]].astype(int).rename(columns=str.lower),
        utc=True,
    )
    obs = pd.DataFrame({"station": df["Station_ID"], "time": time})
    removed: list[dict[str, object]] = []
    for col, (var, scale, offset) in GHCNH_ELEMENTS.items():
        if col not in df:
            continue
        values = pd.to_numeric(df[col], errors="coerce") * scale + offset  # VRB -> NaN
        bad = _bad_quality(df.get(f"{col}_Quality_Code", pd.Series("", index=df.index)))
        bad &= values.notna()
        for sid, n in bad.groupby(df["Station_ID"]).sum().items():
            removed += removed_rows(str(sid), "source_qc", {var: int(n)})
        obs[f"obs_{var}"] = values.where(~bad)
    obs["tp_hours"] = np.where(obs.get("obs_tp", pd.Series(np.nan)).notna(), 1.0, np.nan)
    obs = obs.sort_values(["station", "time"], kind="stable").reset_index(drop=True)
    if short:
        sid = str(df["Station_ID"].iloc[0]) if len(df) else "?"
        removed += removed_rows(sid, "truncated_row", {"*": short})
    meta = df.groupby("Station_ID").last().reset_index()
    stations = pd.DataFrame(
        {
            "station": meta["Station_ID"],
            "name": meta["Station_name"],
            "latitude": pd.to_numeric(meta["Latitude"], errors="coerce"),
            "longitude": pd.to_numeric(meta["Longitude"], errors="coerce"),
            "altitude": pd.to_numeric(meta["Elevation"], errors="coerce"),
        }
    )
    stations, notes = clean_metadata(stations, source=url)
    if short:
        notes.append(f"{url}: {short} truncated row(s) dropped")
    return ObsData(obs=obs, stations=stations, removed=pd.DataFrame(removed), notes=notes)


def read_table(url: str, storage_options: dict[str, Any] | None = None, **options: Any) -> ObsData:
    """Read a user's observation table (CSV or Parquet).

    Needs ``station`` and ``time`` (ISO 8601, naive = UTC) and value columns named by a
    canonical name or alias (``t2m``, ``temperature``, ``obs_t2m``) in canonical units, or
    with a unit given as ``units: {column: unit}`` in the options (``degC``, ``hPa``...).
    Station metadata columns ``latitude``/``longitude``/``altitude``/``name`` are used
    when present.
    """
    raw = fs.read_bytes(url, storage_options)
    df = (
        pd.read_parquet(_io.BytesIO(raw))
        if url.endswith((".parquet", ".pq"))
        else (pd.read_csv(_io.BytesIO(raw), dtype={"station": str}))
    )
    missing = [c for c in ("station", "time") if c not in df]
    if missing:
        raise SourceError(f"{url}: observation table lacks column(s) {missing}")
    units = dict(options.get("units", {}))
    obs = pd.DataFrame({"station": df["station"].astype(str)})
    try:
        obs["time"] = pd.to_datetime(df["time"], utc=True)
    except (ValueError, TypeError) as err:
        raise SourceError(f"{url}: column 'time' is not ISO 8601 times ({err})") from None
    for col in df.columns:
        var = canonical_name(str(col).removeprefix("obs_"))
        if var not in OBS_VARIABLES or col in ("station", "time"):
            continue
        values = pd.to_numeric(df[col], errors="coerce").to_numpy()
        if col in units and var in VARIABLES:  # rh, wdir10, gust: canonical units only
            values = to_canonical_units(values, units[col], var, source=f"{url}: {col}")
        obs[f"obs_{var}"] = values
    if "tp_hours" in df:
        obs["tp_hours"] = pd.to_numeric(df["tp_hours"], errors="coerce")
    cols = [c for c in ("station", "name", "latitude", "longitude", "altitude") if c in df]
    stations = df[cols].drop_duplicates("station", keep="last").copy()
    for c in ("name", "latitude", "longitude", "altitude"):
        if c not in stations:
            stations[c] = np.nan
    stations["station"] = stations["station"].astype(str)
    stations, notes = clean_metadata(stations, source=url)
    return ObsData(obs=obs, stations=stations, notes=notes)
