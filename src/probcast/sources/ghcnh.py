"""NOAA GHCNh hourly ``.psv`` files and a user's own observation CSV/Parquet.

GHCNh: pipe-separated, one row per report, each element followed by its
``_Measurement_Code``, ``_Quality_Code``, ``_Report_Type``, ``_Source_Code`` and
``_Source_Station_ID`` columns; degC, m s-1, hPa, mm. Rules (docs/sources.md):

* a value whose quality code is a GHCNh QC flag (any letter) or a legacy ISD suspect or
  erroneous code (2, 3, 6, 7) is removed (``source_qc``);
* a row with fewer fields than the header (the truncated ``TOOSHORT`` line) is dropped and
  counted (``truncated_row``); rows are sorted by time (files are not always ordered);
* a value whose ``_Measurement_Code`` starts with ``9`` (``9-Missing``: the GHCNh code for
  a missing wind or precipitation report, inherited from ISD) is missing (NaN), whatever
  number stands in the value column (``0.0`` precipitation, for one);
* ``relative_humidity`` with measurement code ``Derived`` (computed by GHCNh from the
  temperature and dew point) is not read: the build derives rh itself from the temperature
  and dew point that pass its quality control (``build.derive_rh``);
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
from probcast.sources.obs import OBS_VARIABLES, ObsData, clean_metadata, gunzip, removed_rows
from probcast.validate import ValidationError, to_utc

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


def _not_a_value(df: pd.DataFrame, col: str) -> pd.Series:
    """Rows whose measurement code says ``col`` holds no observation (see the module doc)."""
    code = df.get(f"{col}_Measurement_Code", pd.Series("", index=df.index))
    c = code.fillna("").astype(str).str.strip()
    missing = c.str.startswith("9")
    if col == "relative_humidity":
        missing |= c.str.lower().str.startswith("derived")
    return missing


def read_ghcnh(url: str, storage_options: dict[str, Any] | None = None) -> ObsData:
    """Read a GHCNh ``.psv`` file."""
    text = gunzip(fs.read_bytes(url, storage_options), url).decode("utf-8", "replace")
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
        values = values.where(~_not_a_value(df, col))
        if var == "rh" and values.isna().all():
            continue  # only GHCNh-derived humidity: the build derives it after QC
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


_EXTRA_UNITS = {
    "rh": {"1": 1.0, "fraction": 1.0, "%": 0.01, "percent": 0.01},
    "wdir10": {"degree": 1.0, "degrees": 1.0, "deg": 1.0},
}
"""Units accepted for the table variables outside :data:`probcast.schema.VARIABLES`
(``gust`` takes any wind-speed unit)."""


def _variable(column: object) -> str | None:
    """The observation variable a table column (or a ``units`` key) names, if any."""
    name = str(column)
    var = canonical_name(name.removeprefix("obs_"))
    return var if var in OBS_VARIABLES and name not in ("station", "time") else None


def _units_by_column(columns: list[str], units: dict[str, Any], url: str) -> dict[str, str]:
    """Map each ``options.units`` key to the value column it names.

    A key names a column by its exact name or by its variable (``tp`` names a ``precip``
    column, ``temperature`` a ``t2m`` column). A key naming no column, or two keys giving
    one column different units, is an error.
    """
    by_var = {v: c for c in columns if (v := _variable(c)) is not None}
    out: dict[str, str] = {}
    unmatched = []
    for key, unit in units.items():
        k = str(key)
        col = k if k in by_var.values() else by_var.get(_variable(k) or "")
        if col is None:
            unmatched.append(k)
        elif out.setdefault(col, unit) != unit:
            raise SourceError(
                f"{url}: options.units: column {col!r} is given two units "
                f"({out[col]!r} and {unit!r}, key {k!r}); give it one"
            )
    if unmatched:
        raise SourceError(
            f"{url}: options.units: key(s) {unmatched} name no value column of this file "
            f"(by column or variable name); its value columns: {list(by_var.values())}"
        )
    return out


def _convert(values: np.ndarray, unit: str, var: str, source: str) -> np.ndarray:
    """``values`` in ``unit`` -> the canonical units of ``var``."""
    if var in VARIABLES:
        return to_canonical_units(values, unit, var, source=source)
    if var == "gust":  # a wind speed: the units of ws10
        return to_canonical_units(values, unit, "ws10", source=source)
    accepted = _EXTRA_UNITS[var]
    scale = accepted.get(unit.strip().lower())
    if scale is None:
        raise SourceError(
            f"{source}: unit {unit!r} not accepted for {var}; expected one of {sorted(accepted)}"
        )
    return np.asarray(values, dtype="float64") * scale


def read_table(url: str, storage_options: dict[str, Any] | None = None, **options: Any) -> ObsData:
    """Read a user's observation table (CSV or Parquet, plain or gzip).

    Needs ``station`` and ``time`` (datetimes or ISO 8601 strings, naive = UTC; numbers such
    as epoch seconds are refused, :func:`probcast.validate.to_utc`) and value columns named by a
    canonical name or alias (``t2m``, ``temperature``, ``obs_t2m``) in canonical units, or
    with a unit given as ``units: {key: unit}`` in the options (``degC``, ``hPa``...), the
    key naming the column or its variable (:func:`_units_by_column`). Station metadata
    columns ``latitude``/``longitude``/``altitude``/``name`` are used when present.

    Raises:
        SourceError: Naming the file: unreadable, without ``station``/``time``, times that
            are numbers, unparseable or missing, two columns of one variable, or a ``units``
            key that names no column.
    """
    raw = gunzip(fs.read_bytes(url, storage_options), url)
    try:
        df = (
            pd.read_parquet(_io.BytesIO(raw))
            if url.endswith((".parquet", ".pq")) or raw[:4] == b"PAR1"
            else pd.read_csv(_io.BytesIO(raw), dtype={"station": str})
        )
    except (ValueError, OSError, UnicodeDecodeError) as err:  # ParserError is a ValueError
        line = " ".join(str(err).split())
        raise SourceError(f"{url}: not a readable CSV or Parquet table ({line})") from None
    missing = [c for c in ("station", "time") if c not in df]
    if missing:
        raise SourceError(f"{url}: observation table lacks column(s) {missing}")
    seen: dict[str, str] = {}  # variable -> its column
    for col in map(str, df.columns):
        var = _variable(col)
        if var is not None and seen.setdefault(var, col) != col:
            raise SourceError(f"{url}: columns {seen[var]!r} and {col!r} both hold {var}; keep one")
    units = _units_by_column(list(seen.values()), dict(options.get("units", {})), url)
    obs = pd.DataFrame({"station": df["station"].astype(str)})
    try:  # epoch numbers are refused, never read as ns since 1970
        obs["time"] = to_utc(df["time"], "time", url)
    except ValidationError as err:
        raise SourceError(str(err)) from None
    for var, col in seen.items():
        values = pd.to_numeric(df[col], errors="coerce").to_numpy()
        if col in units:
            values = _convert(values, units[col], var, f"{url}: {col}")
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
