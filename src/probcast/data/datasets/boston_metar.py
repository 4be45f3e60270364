"""Converter of the ``boston-metar`` benchmark: KBOS and KHLC, June 2021.

Files ``<station>_<model>.csv`` (model ECMWF, HRRR or GFS) hold point forecasts of the 00
and 12 UTC runs in degC, m s-1, hPa and %; ``<station>_obs.csv`` holds hourly METAR
observations in K, m s-1, Pa and %. Findings, all re-checked on every conversion (see
docs/data-model.md, section "boston-metar and seoul-ldaps"):

* The forecast files swap the pressure labels: ``sfc_pressure`` is the mean sea-level
  pressure and ``sea_level_pressure`` the surface pressure (at KHLC, 675 m, the latter
  matches the observed station pressure of ~935 hPa). The swap is decided per model by
  comparing both columns with the observed pressure, never hard-coded.
* Temperature and dew point are labelled right (checked the same way).
* The observations hold wind speed only, and no sea-level pressure: the targets are
  ``t2m, td2m, ws10, sp, tcc``; ``fc_ws10`` is derived from the forecast u/v, and
  ``fc_u10``, ``fc_v10``, ``fc_msl`` are extra predictors.
* GFS is corrupted (sea-level pressure ~918 hPa at Boston, no skill against the
  observations): :func:`consistency_problems` catches it and the model is excluded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from probcast.data.prepare import Canonical, register
from probcast.schema import VARIABLES, to_canonical_units
from probcast.validate import validate_station_table, validation_report

STATIONS: dict[str, tuple[float, float, float]] = {
    # (latitude, longitude, altitude in m): public airport data, absent from the files; the
    # altitude is cross-checked against the observed station pressure at conversion time.
    "KBOS": (42.3656, -71.0096, 6.0),
    "KHLC": (39.3788, -99.8290, 675.0),
}
MODELS = ("ECMWF", "HRRR", "GFS")
PRIMARY = "ECMWF"
FC_COLUMNS: dict[str, tuple[str, str]] = {
    # column as labelled in the file -> (canonical variable it claims to be, units)
    "sfc_air_temperature": ("t2m", "degC"),
    "sfc_dewpoint": ("td2m", "degC"),
    "u_wind_10m": ("u10", "m s-1"),
    "v_wind_10m": ("v10", "m s-1"),
    "sfc_pressure": ("sp", "hPa"),
    "sea_level_pressure": ("msl", "hPa"),
    "cloud_cover": ("tcc", "%"),
}
OBS_COLUMNS: dict[str, tuple[str, str]] = {
    "temperature_k": ("t2m", "K"),
    "dewpoint_k": ("td2m", "K"),
    "wind_speed_mps": ("ws10", "m s-1"),
    "sfc_press_pa": ("sp", "Pa"),
    "cloud_cover": ("tcc", "%"),
}
TARGETS = ["t2m", "td2m", "ws10", "sp", "tcc"]
OBS_TOLERANCE = pd.Timedelta("30min")
CHECK_MAX_LEAD = 48.0
MIN_CORRELATION = 0.5
MAX_ABS_BIAS = {"t2m": 8.0, "td2m": 8.0, "ws10": 4.0, "sp": 1500.0}  # canonical units
_RD_OVER_G = 287.05 / 9.80665  # dry-air gas constant over gravity, m K-1


def _prefixed(df: pd.DataFrame, prefix: str) -> list[str]:
    return [str(c) for c in df.columns if str(c).startswith(prefix)]


def _times(col: pd.Series) -> pd.Series:
    text = col.astype("string").str.removesuffix(" UTC")
    return pd.to_datetime(text, utc=True).dt.as_unit("ns")


def read_forecast(path: Path, station: str, model: str) -> pd.DataFrame:
    """Read one ``<station>_<model>.csv`` into canonical keys and units, labels as given.

    Args:
        path: The CSV file.
        station: Station id the file must hold (column ``pt``).
        model: Model name, used in messages.

    Returns:
        Table with ``station, init_time, lead_time, valid_time`` and one ``fc_<var>`` column
        per labelled variable (not yet checked against the observations).

    Raises:
        ValueError: Missing columns, another station, inconsistent lead times or duplicates.
    """
    raw = pd.read_csv(path)
    missing = sorted({"pt", "model_run", "fcst_time", "fcst_dt", *FC_COLUMNS} - set(raw))
    if missing:
        raise ValueError(f"{path}: {model} file lacks columns {missing}")
    if set(raw["pt"].astype(str)) != {station}:
        raise ValueError(f"{path}: expected station {station}, got {sorted(set(raw['pt']))}")
    out = pd.DataFrame({"station": station, "init_time": _times(raw["model_run"])})
    out["lead_time"] = raw["fcst_dt"].astype("float64")
    out["valid_time"] = out["init_time"] + pd.to_timedelta(out["lead_time"], unit="h")
    bad = int((out["valid_time"] != _times(raw["fcst_time"])).sum())
    if bad:
        raise ValueError(f"{path}: {bad} rows with fcst_time != model_run + fcst_dt hours")
    for col, (var, units) in FC_COLUMNS.items():
        out[f"fc_{var}"] = to_canonical_units(raw[col].to_numpy(), units, var, source=str(path))
    dups = int(out.duplicated(["init_time", "lead_time"]).sum())
    if dups:
        raise ValueError(f"{path}: {dups} duplicate (model_run, fcst_dt) rows")
    return out


def read_obs(path: Path, station: str) -> tuple[pd.DataFrame, list[str]]:
    """Read ``<station>_obs.csv``; values outside the physical range become NaN (reported).

    Returns:
        ``(table with station, valid_time, obs_<var>; report lines)``.
    """
    raw = pd.read_csv(path)
    missing = sorted({"observation_time", *OBS_COLUMNS} - set(raw))
    if missing:
        raise ValueError(f"{path}: observation file lacks columns {missing}")
    out = pd.DataFrame({"station": station, "valid_time": _times(raw["observation_time"])})
    report = []
    for col, (var, units) in OBS_COLUMNS.items():
        vals = to_canonical_units(raw[col].to_numpy(), units, var, source=str(path))
        info = VARIABLES[var]
        bad = np.isfinite(vals) & ((vals < info.valid_min) | (vals > info.valid_max))
        if bad.any():
            report.append(
                f"{path.name}: {int(bad.sum())} {col} values outside the physical "
                f"range set to missing"
            )
            vals = np.where(bad, np.nan, vals)
        out[f"obs_{var}"] = vals
    dups = out.duplicated("valid_time")
    if dups.any():
        report.append(f"{path.name}: {int(dups.sum())} duplicate observation times dropped")
        out = out[~dups]
    return out.sort_values("valid_time").reset_index(drop=True), report


def align_obs(fc: pd.DataFrame, obs: pd.DataFrame) -> pd.DataFrame:
    """Attach to each forecast row the observation nearest its valid time (within 30 min)."""
    left = fc.sort_values("valid_time").reset_index(drop=True)
    obs = obs.rename(columns={"valid_time": "obs_time"}).sort_values("obs_time")
    out = pd.merge_asof(
        left,
        obs,
        left_on="valid_time",
        right_on="obs_time",
        by="station",
        direction="nearest",
        tolerance=OBS_TOLERANCE,
    )
    return out.drop(columns="obs_time")


def _mae(a: pd.Series, b: pd.Series) -> float:
    return float(np.nanmean(np.abs(a.to_numpy() - b.to_numpy())))


def swap_needed(df: pd.DataFrame, a: str, b: str, obs_a: str, obs_b: str | None) -> bool:
    """Whether forecast columns ``a`` and ``b`` are better explained with labels swapped.

    Scores each labelling by the mean absolute difference to the observations (``obs_a``
    for ``a``; ``obs_b`` for ``b`` when observed) over the rows of ``df``.
    """
    keep = _mae(df[a], df[obs_a]) + (_mae(df[b], df[obs_b]) if obs_b else 0.0)
    swap = _mae(df[b], df[obs_a]) + (_mae(df[a], df[obs_b]) if obs_b else 0.0)
    return swap < keep


def resolve_labels(df: pd.DataFrame, model: str) -> tuple[pd.DataFrame, list[str]]:
    """Fix swapped temperature/dew point and surface/sea-level pressure labels of a model.

    Decided on both stations together at leads up to 48 h, against the observations.
    """
    short = df[df["lead_time"] <= CHECK_MAX_LEAD]
    report = []
    for a, b, oa, ob in (
        ("fc_t2m", "fc_td2m", "obs_t2m", "obs_td2m"),
        ("fc_sp", "fc_msl", "obs_sp", None),
    ):
        if swap_needed(short, a, b, oa, ob):
            df = df.rename(columns={a: b, b: a})
            report.append(
                f"{model}: columns labelled {a[3:]!r} and {b[3:]!r} are swapped "
                f"(checked against observed {oa[4:]}); relabelled"
            )
        else:
            report.append(f"{model}: {a[3:]}/{b[3:]} labels agree with the observations")
    return df, report


def expected_msl_minus_sp(sp: float, altitude: float, temperature: float = 288.15) -> float:
    """Hypsometric difference between sea-level and surface pressure at ``altitude`` (Pa)."""
    return sp * (np.exp(altitude / (_RD_OVER_G * temperature)) - 1.0)


def consistency_problems(df: pd.DataFrame, altitude: float) -> list[str]:
    """Physical and observational consistency problems of one model at one station.

    Checks: every forecast within the physical range of its variable; ``msl - sp`` close to
    the hypsometric value for the station altitude; at leads up to 48 h, correlation with
    the observations of t2m, td2m, ws10 and sp at least ``MIN_CORRELATION`` and mean bias
    within ``MAX_ABS_BIAS``.

    Args:
        df: Forecast table of one model and station with aligned ``obs_`` columns and
            ``fc_ws10``.
        altitude: Station altitude in m.

    Returns:
        Problem descriptions; empty when the model is consistent.
    """
    problems = []
    for col in _prefixed(df, "fc_"):
        info = VARIABLES[col[3:]]
        vals = df[col].to_numpy()
        bad = int(((vals < info.valid_min) | (vals > info.valid_max)).sum())
        if bad:
            problems.append(
                f"{bad} {col[3:]} values outside [{info.valid_min}, {info.valid_max}] {info.units}"
            )
    diff = float(np.nanmedian(df["fc_msl"] - df["fc_sp"]))
    expected = expected_msl_minus_sp(float(np.nanmedian(df["fc_sp"])), altitude)
    if abs(diff - expected) > max(300.0, 0.2 * expected):
        problems.append(
            f"median msl - sp = {diff / 100:.1f} hPa, expected "
            f"{expected / 100:.1f} hPa at {altitude:.0f} m"
        )
    short = df[df["lead_time"] <= CHECK_MAX_LEAD]
    for var, limit in MAX_ABS_BIAS.items():
        ok = short[[f"fc_{var}", f"obs_{var}"]].dropna()
        r = float(np.corrcoef(ok[f"fc_{var}"], ok[f"obs_{var}"])[0, 1]) if len(ok) > 2 else 0.0
        bias = float((ok[f"fc_{var}"] - ok[f"obs_{var}"]).mean())
        if not r >= MIN_CORRELATION or not abs(bias) <= limit:
            problems.append(
                f"{var} vs observations: r = {r:.2f}, bias = {bias:.4g} "
                f"{VARIABLES[var].units} (need r >= {MIN_CORRELATION}, "
                f"|bias| <= {limit:g})"
            )
    return problems


def altitude_from_pressure(df: pd.DataFrame) -> float:
    """Station height implied by observed sp, observed t2m and forecast msl (short leads)."""
    short = df[df["lead_time"] <= 12].dropna(subset=["obs_sp", "obs_t2m", "fc_msl"])
    z = _RD_OVER_G * short["obs_t2m"] * np.log(short["fc_msl"] / short["obs_sp"])
    return float(z.median())


def _load_model(files: dict[str, Path], model: str, obs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    parts = [
        align_obs(read_forecast(files[f"{st}_{model}.csv"], st, model), obs[st]) for st in STATIONS
    ]
    df = pd.concat(parts, ignore_index=True)
    return df


def _check_model(df: pd.DataFrame, model: str) -> tuple[pd.DataFrame, list[str], bool]:
    """Resolve labels, derive fc_ws10 and run the consistency checks of one model."""
    df, report = resolve_labels(df, model)
    df["fc_ws10"] = np.hypot(df["fc_u10"], df["fc_v10"])
    ok = True
    for st, (_, _, alt) in STATIONS.items():
        problems = consistency_problems(df[df["station"] == st], alt)
        for p in problems:
            report.append(f"{model} {st}: {p}")
        ok = ok and not problems
    return df, report, ok


def _assemble(primary: pd.DataFrame, extra: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Primary-model rows with the observations; other models as ``fc_<var>_<model>``."""
    keys = ["station", "init_time", "lead_time"]
    fc_cols = _prefixed(primary, "fc_")
    table = primary[[*keys, "valid_time", *fc_cols]]
    for model, df in extra.items():
        suffix = model.lower()
        cols = {c: f"{c}_{suffix}" for c in _prefixed(df, "fc_")}
        table = table.merge(df[[*keys, *cols]].rename(columns=cols), on=keys, how="left")
    obs_cols = [f"obs_{v}" for v in TARGETS]
    table = table.merge(primary[[*keys, *obs_cols]], on=keys, how="left")
    lat = {st: v[0] for st, v in STATIONS.items()}
    lon = {st: v[1] for st, v in STATIONS.items()}
    alt = {st: v[2] for st, v in STATIONS.items()}
    table.insert(4, "latitude", table["station"].map(lat).astype("float64"))
    table.insert(5, "longitude", table["station"].map(lon).astype("float64"))
    table.insert(6, "altitude", table["station"].map(alt).astype("float64"))
    return table.sort_values(keys).reset_index(drop=True)


@register("boston-metar")
def convert(files: dict[str, Path]) -> Canonical:
    """Convert the boston-metar files into a canonical station table.

    Args:
        files: Fetched files keyed ``<station>_<model>.csv`` / ``<station>_obs.csv``.

    Returns:
        One row per (station, init_time, lead_time) of the primary model (ECMWF, leads
        1-240 h) with at least one observation; HRRR as ``fc_<var>_hrrr`` (NaN beyond its
        48 h range); models failing the consistency checks excluded and reported.

    Raises:
        ValueError: If the primary model fails the consistency checks.
    """
    report: list[str] = []
    obs: dict[str, pd.DataFrame] = {}
    for st in STATIONS:
        obs[st], lines = read_obs(files[f"{st}_obs.csv"], st)
        report += lines
        report.append(_obs_summary(obs[st], st))
    kept: dict[str, pd.DataFrame] = {}
    for model in MODELS:
        df, lines, ok = _check_model(_load_model(files, model, obs), model)
        report += lines
        if ok:
            kept[model] = df
        else:
            report.append(
                f"{model}: EXCLUDED - fails the consistency checks above; its "
                f"columns cannot be trusted"
            )
    if PRIMARY not in kept:
        raise ValueError(
            f"boston-metar: the primary model {PRIMARY} fails the consistency "
            f"checks: {'; '.join(report)}"
        )
    for st, (_, _, alt) in STATIONS.items():
        est = altitude_from_pressure(kept[PRIMARY][kept[PRIMARY]["station"] == st])
        report.append(
            f"{st}: altitude {alt:.0f} m; implied by observed pressure and "
            f"{PRIMARY} msl: {est:.0f} m"
        )
    table = _assemble(kept[PRIMARY], {m: d for m, d in kept.items() if m != PRIMARY})
    has_obs = table[[f"obs_{v}" for v in TARGETS]].notna().any(axis=1)
    report.append(
        f"{int((~has_obs).sum())} of {len(table)} {PRIMARY} rows have no observation "
        f"within 30 min of their valid time (observations end "
        f"{max(o['valid_time'].max() for o in obs.values())}): dropped"
    )
    table = table[has_obs].reset_index(drop=True)
    for model in kept:
        if model != PRIMARY:
            col = f"fc_t2m_{model.lower()}"
            report.append(
                f"{model}: predictors fc_<var>_{model.lower()} present on "
                f"{int(table[col].notna().sum())} of {len(table)} rows, NaN "
                f"elsewhere (beyond its lead range or missing runs); its lead 0 h has "
                f"no {PRIMARY} row and is not used"
            )
    table = validate_station_table(table, source="boston-metar")
    report += validation_report(table)
    return Canonical(data=table, targets=list(TARGETS), report=report)


def _obs_summary(obs: pd.DataFrame, station: str) -> str:
    cloud = obs["obs_tcc"].dropna()
    levels = sorted(float(v) for v in cloud.unique())
    line = (
        f"{station} observations: {len(obs)} hourly reports; missing: "
        + ", ".join(f"{c[4:]} {int(obs[c].isna().sum())}" for c in _prefixed(obs, "obs_"))
        + f"; cloud cover has {len(levels)} distinct value(s)"
    )
    if levels and len(levels) <= 6:
        line += f" ({', '.join(f'{v:g}' for v in levels)})"
    if levels and levels[0] > 0.2:
        line += (
            f", none below {levels[0]:g}: clear and few-cloud hours are apparently not "
            f"reported (missing), so obs_tcc over-represents cloudy hours"
        )
    return line
