"""``sydney-rain``: 1-h rainfall at 160 Sydney-region gauges (WQM ``NWP.rain``).

``NWP.rain.rda`` holds one R data frame (a data.table) with ``Lead`` (hours, always 1),
``Date`` (POSIXct, unix seconds), ``Station`` (gauge id), ``mod`` (the NWP forecast, mm)
and ``obs`` (the gauge observation, mm). WQM documents it as "NWP rainfall forecasts at lead
1h", one row per gauge and time.

Conversion choices and repairs:
- ``Date`` is the *valid* time (end of the 1-h accumulation) and ``Lead`` the lead time in
  hours: ``init_time = valid_time - Lead``.
- The stored instants are UTC clock times that were parsed as Sydney local time: read in
  UTC they fall at 02/08/14/20 h in southern summer and 03/09/15/21 h in winter, jumping
  with daylight saving; read in ``Australia/Sydney`` they are always 01/07/13/19 h, i.e.
  runs at 00/06/12/18 UTC plus one hour. The repair takes the Sydney clock reading as UTC;
  afterwards every gap between times is a multiple of 6 h.
- About 5 % of forecasts are missing (whole gauges without any forecast among them). The
  validation report lists them; rows without a forecast are then dropped (counts in the
  report). Rows with a missing observation are kept (NaN truth).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from probcast.data.prepare import Canonical, register
from probcast.schema import to_canonical_units
from probcast.validate import validate_station_table, validation_report

LOCAL_TZ = "Australia/Sydney"


def read_nwp_rain(path: str | Path) -> pd.DataFrame:
    """Read the ``NWP.rain`` data frame from ``NWP.rain.rda`` (R data, via ``rdata``)."""
    import rdata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unknown encoding, POSIXct and data.table classes
        frames = rdata.read_rda(str(path))
    if "NWP.rain" not in frames:
        raise ValueError(f"{path}: no 'NWP.rain' data frame; found {sorted(frames)}")
    return frames["NWP.rain"]


def repair_times(seconds: pd.Series) -> pd.Series:
    """Reinterpret POSIXct seconds written as Sydney local time as the true UTC times."""
    stored = pd.to_datetime(seconds, unit="s", utc=True)
    local = stored.dt.tz_convert(LOCAL_TZ)
    return local.dt.tz_localize(None).dt.tz_localize("UTC")


def _table(raw: pd.DataFrame, source: str) -> pd.DataFrame:
    valid = repair_times(raw["Date"])
    lead = raw["Lead"].astype("float64")
    with np.errstate(invalid="ignore"):  # R's NA is a NaN with a payload numpy warns about
        return pd.DataFrame(
            {
                "station": raw["Station"].astype(str).to_numpy(),
                "init_time": (valid - pd.to_timedelta(lead, unit="h")).array,
                "lead_time": lead.to_numpy(),
                "valid_time": valid.array,
                "fc_tp": to_canonical_units(raw["mod"].to_numpy(), "mm", "tp", source=source),
                "obs_tp": to_canonical_units(raw["obs"].to_numpy(), "mm", "tp", source=source),
            }
        )


def _exclude_missing_forecasts(table: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    missing = table["fc_tp"].isna()
    per_station = missing.groupby(table["station"]).mean()
    never = sorted(per_station[per_station == 1.0].index)
    kept = table[~missing].reset_index(drop=True)
    return kept, [
        f"excluded {int(missing.sum())} of {len(table)} rows ({missing.mean():.2%}) without a "
        f"forecast; {len(never)} gauges have no forecast at all ({', '.join(never)}) and "
        f"leave the dataset; {kept['station'].nunique()} gauges remain",
        f"kept {int(kept['obs_tp'].isna().sum())} rows with a missing observation (NaN truth)",
    ]


@register("sydney-rain")
def convert(files: dict[str, Path]) -> Canonical:
    """Convert ``NWP.rain.rda`` to the canonical station table (target ``tp``, 1-h sums).

    Args:
        files: Fetched files keyed by ``NWP.rain.rda``.

    Returns:
        Station table with ``fc_tp``/``obs_tp`` in kg m-2 per hour, rows without a forecast
        excluded.
    """
    source = str(files["NWP.rain.rda"])
    table = validate_station_table(_table(read_nwp_rain(source), source), source=source)
    report = [f"before exclusion: {line}" for line in validation_report(table)]
    report.append(
        "Date read as valid time with Lead in hours; times repaired from Sydney local "
        "clock to UTC (runs at 00/06/12/18 UTC, valid one hour later)"
    )
    kept, lines = _exclude_missing_forecasts(table)
    table = validate_station_table(kept, source=source)
    return Canonical(data=table, targets=["tp"], report=report + lines)
