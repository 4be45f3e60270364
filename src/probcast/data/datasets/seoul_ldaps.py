"""Converter of the ``seoul-ldaps`` benchmark: next-day Tmax/Tmin at 25 Seoul stations.

``Bias_correction_ucl.csv`` (UCI dataset 514, summers 2013-2017) has one row per station and
day: LDAPS model output for the next day, the day's observed extremes
(``Present_Tmax/Tmin``), static station data and the observed ``Next_Tmax/Next_Tmin``.

Conversion choices:

* Targets ``tmax``/``tmin`` (K) from ``Next_Tmax``/``Next_Tmin`` (degC); raw forecasts
  ``fc_tmax``/``fc_tmin`` from ``LDAPS_Tmax_lapse``/``LDAPS_Tmin_lapse`` (degC); the other
  ``LDAPS_*`` columns are extra predictors ``fc_ldaps_<name>`` in their file units (%,
  m s-1, W m-2, fraction, mm); ``Present_Tmax/Tmin`` become ``fc_present_tmax/tmin`` (K):
  observed on the issue day, so available at forecast time.
* Times: the file gives only the issue ``Date`` (Korean calendar day). ``init_time`` is that
  date at 00 UTC and ``lead_time`` 24 h, so ``valid_time`` (00 UTC = 09 KST) falls on the
  target day whose extremes ``Next_Tmax/Tmin`` are. Nominal, but consistent and leak-free.
* Static columns: ``lat, lon, DEM`` -> ``latitude, longitude, altitude``; ``Slope`` and
  ``Solar_radiation`` (daily insolation, Wh m-2, varies by day) -> ``stat_slope``,
  ``stat_solar_radiation``. Station ids are zero-padded (``"01"`` .. ``"25"``).

Known problems and repairs:

* Decimal-point loss: every value written with exactly three decimals was read with the
  point as a thousands separator (``126.991`` -> ``126991``; no value in the file has three
  decimals). :func:`repair_decimal_loss` finds values outside the column's plausible range
  (``PLAUSIBLE``) that are integers and land inside it when divided by 1000, and divides
  them; the damage is station-wide (a station's every row), so a per-station mode would
  repeat the error. Unrepairable out-of-range values become NaN.
* The file ends with two rows without station or date (the UCI column minima and maxima):
  dropped.
* Rows with a missing target or predictor: reported and dropped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from probcast.data.prepare import Canonical, register
from probcast.schema import to_canonical_units
from probcast.validate import validate_station_table, validation_report

FILE = "Bias_correction_ucl.csv"
LEAD_HOURS = 24.0
DECIMAL_LOSS_FACTOR = 1000.0
PLAUSIBLE: dict[str, tuple[float, float]] = {
    # Physically or regionally plausible ranges, deliberately wider than the data.
    "lat": (37.0, 38.0),  # Seoul
    "lon": (126.5, 127.5),
    "DEM": (0.0, 1000.0),  # m; Seoul's highest summit is 836 m
    "Slope": (0.0, 90.0),  # degrees
    "Solar_radiation": (0.0, 12000.0),  # daily insolation, Wh m-2
    "Present_Tmax": (-40.0, 50.0),
    "Present_Tmin": (-40.0, 50.0),
    "Next_Tmax": (-40.0, 50.0),
    "Next_Tmin": (-40.0, 50.0),
    "LDAPS_Tmax_lapse": (-40.0, 50.0),
    "LDAPS_Tmin_lapse": (-40.0, 50.0),
    "LDAPS_RHmin": (0.0, 105.0),
    "LDAPS_RHmax": (0.0, 105.0),
    "LDAPS_WS": (0.0, 75.0),
    "LDAPS_LH": (-500.0, 1000.0),
    **{f"LDAPS_CC{i}": (0.0, 1.0) for i in range(1, 5)},
    **{f"LDAPS_PPT{i}": (0.0, 500.0) for i in range(1, 5)},
}
STATIC = ("lat", "lon", "DEM", "Slope")
"""Columns that must be constant per station."""
TEMPERATURES = {  # file column -> (canonical column, variable for the unit conversion)
    "Next_Tmax": ("obs_tmax", "tmax"),
    "Next_Tmin": ("obs_tmin", "tmin"),
    "LDAPS_Tmax_lapse": ("fc_tmax", "tmax"),
    "LDAPS_Tmin_lapse": ("fc_tmin", "tmin"),
    "Present_Tmax": ("fc_present_tmax", "tmax"),
    "Present_Tmin": ("fc_present_tmin", "tmin"),
}
RENAMED = {
    "lat": "latitude",
    "lon": "longitude",
    "DEM": "altitude",
    "Slope": "stat_slope",
    "Solar_radiation": "stat_solar_radiation",
}
TARGETS = ["tmax", "tmin"]


def repair_decimal_loss(
    df: pd.DataFrame,
    ranges: dict[str, tuple[float, float]],
    factor: float = DECIMAL_LOSS_FACTOR,
    station: str = "station",
) -> tuple[pd.DataFrame, list[str]]:
    """Detect and repair values that lost their decimal point.

    A value outside its plausible range that is an integer and falls inside the range when
    divided by ``factor`` is taken to have lost its point and is divided by ``factor``;
    other out-of-range values become NaN. Every finding is counted in the report.

    Args:
        df: Table with the columns named in ``ranges`` (others are left alone).
        ranges: Column -> ``(low, high)`` plausible range, inclusive.
        factor: The power of ten the lost point multiplied the value by.
        station: Column naming the station, used to list the affected stations.

    Returns:
        ``(repaired copy of df, report lines)``.
    """
    out = df.copy()
    report = []
    for col, (lo, hi) in ranges.items():
        if col not in out:
            continue
        vals = out[col].to_numpy(dtype="float64")
        outside = np.isfinite(vals) & ((vals < lo) | (vals > hi))
        if not outside.any():
            continue
        scaled = vals / factor
        fixable = outside & (vals == np.round(vals)) & (scaled >= lo) & (scaled <= hi)
        unfixable = outside & ~fixable
        out[col] = np.where(fixable, scaled, np.where(unfixable, np.nan, vals))
        if fixable.any():
            where = sorted(set(out.loc[fixable, station].astype(str))) if station in out else []
            report.append(
                f"{col}: {int(fixable.sum())} value(s) outside [{lo:g}, {hi:g}] lost their "
                f"decimal point (e.g. {vals[fixable][0]:.10g} -> {scaled[fixable][0]:.10g}); "
                f"divided by {factor:g}; stations {', '.join(where)}"
            )
        if unfixable.any():
            report.append(
                f"{col}: {int(unfixable.sum())} value(s) outside [{lo:g}, {hi:g}] not "
                f"explained by a lost decimal point (e.g. {vals[unfixable][0]:.10g}); set to NaN"
            )
    return out, report


def check_static(df: pd.DataFrame, columns: tuple[str, ...] = STATIC) -> list[str]:
    """Return one line per static column that is not constant within a station."""
    lines = []
    for col in columns:
        n = df.groupby("station")[col].nunique(dropna=False)
        bad = n[n > 1]
        if len(bad):
            lines.append(f"{col}: not constant within stations {list(bad.index)}")
    return lines


def read_raw(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """Read the CSV and drop the rows without station or date (the UCI summary rows)."""
    raw = pd.read_csv(path)
    missing = sorted({"station", "Date", *PLAUSIBLE} - set(raw))
    if missing:
        raise ValueError(f"{path}: lacks columns {missing}")
    keyless = raw["station"].isna() | raw["Date"].isna()
    report = []
    if keyless.any():
        report.append(
            f"{FILE}: {int(keyless.sum())} row(s) without station or Date dropped (the UCI "
            f"file's trailing column minima/maxima)"
        )
    out = raw[~keyless].reset_index(drop=True)
    out["station"] = [f"{int(s):02d}" for s in out["station"]]
    return out, report


def _ldaps_columns(df: pd.DataFrame) -> list[str]:
    return [str(c) for c in df.columns if str(c).startswith("LDAPS_")]


def _drop_incomplete(df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    groups = {
        "target (Next_Tmax/Next_Tmin)": ["Next_Tmax", "Next_Tmin"],
        "LDAPS forecast": _ldaps_columns(df),
        "Present_Tmax/Present_Tmin": ["Present_Tmax", "Present_Tmin"],
        "static": [*STATIC, "Solar_radiation"],
    }
    drop = np.zeros(len(df), dtype=bool)
    report = []
    for name, cols in groups.items():
        miss = df[cols].isna().to_numpy().any(axis=1)
        if miss.any():
            report.append(f"{int(miss.sum())} row(s) with a missing {name}")
        drop = drop | miss
    report.append(f"{int(drop.sum())} incomplete row(s) of {len(df)} dropped")
    return df[~drop].reset_index(drop=True), report


def _canonical(df: pd.DataFrame) -> pd.DataFrame:
    init = pd.to_datetime(df["Date"].astype(str), format="%Y-%m-%d", utc=True)
    out = pd.DataFrame(
        {
            "station": df["station"].astype(str).to_numpy(),
            "init_time": init.dt.as_unit("ns"),
            "lead_time": LEAD_HOURS,
            "valid_time": (init + pd.Timedelta(hours=LEAD_HOURS)).dt.as_unit("ns"),
        }
    )
    for col, name in RENAMED.items():
        if not name.startswith("stat_"):
            out[name] = df[col].to_numpy(dtype="float64")
    for col, (name, var) in TEMPERATURES.items():
        if name.startswith("fc_"):
            out[name] = to_canonical_units(df[col].to_numpy(), "degC", var, source=FILE)
    for col in _ldaps_columns(df):
        if col not in TEMPERATURES:
            out[f"fc_{col.lower()}"] = df[col].to_numpy(dtype="float64")
    for col, name in RENAMED.items():
        if name.startswith("stat_"):
            out[name] = df[col].to_numpy(dtype="float64")
    for col, (name, var) in TEMPERATURES.items():
        if name.startswith("obs_"):
            out[name] = to_canonical_units(df[col].to_numpy(), "degC", var, source=FILE)
    return out.sort_values(["station", "init_time"]).reset_index(drop=True)


@register("seoul-ldaps")
def convert(files: dict[str, Path]) -> Canonical:
    """Convert ``Bias_correction_ucl.csv`` into a canonical station table.

    Args:
        files: Fetched files; needs ``Bias_correction_ucl.csv``.

    Returns:
        One row per (station, issue date), lead 24 h, targets ``tmax`` and ``tmin``.

    Raises:
        ValueError: If a static column still varies within a station after the repair.
    """
    raw, report = read_raw(files[FILE])
    repaired, lines = repair_decimal_loss(raw, PLAUSIBLE)
    report += lines or ["no decimal-point loss found"]
    problems = check_static(repaired)
    if problems:
        raise ValueError(f"{FILE}: after repair, " + "; ".join(problems))
    report.append(f"static columns {', '.join(STATIC)} are constant within each station")
    complete, lines = _drop_incomplete(repaired)
    report += lines
    table = validate_station_table(_canonical(complete), source=FILE)
    report += validation_report(table)
    return Canonical(data=table, targets=list(TARGETS), report=report)
