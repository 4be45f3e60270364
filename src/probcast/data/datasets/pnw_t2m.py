"""``pnw-t2m``: 48-h 2 m temperature at 969 Pacific-Northwest stations (ensembleBMA ``srft``).

``srft.rda`` holds one R data frame: eight deterministic runs of the University of
Washington mesoscale ensemble (CMCG, ETA, GASP, GFS, JMA, NGPS, TCWB, UKMO; K), the
observation (K), ``date`` (YYYYMMDDHH), station, latitude, longitude, elevation (m) and the
station network ``type``.

Conversion choices:
- ``date`` is the *valid* date: ensembleBMA's ``ensembleData(dates=...)`` documents "the
  valid dates for the forecasts" and the package example passes ``srft$date`` there with
  ``forecastHour = 48`` and ``initializationTime = "00"``. So ``lead_time = 48`` h and
  ``init_time = date - 48 h``.
- ``fc_t2m`` (the raw deterministic forecast) is the GFS-initialised member, the best-known
  driving model; the other seven runs become extra predictors ``fc_t2m_<model>``.

Known problems and repairs:
- ``elevation = -9999`` is a missing-value code: set to NaN (88 stations).
- Station ids are padded with blanks to five characters (``"KCQV "``): stripped.
- 40 station ids appear at several positions (latitude spread up to 7.7°): kept, with the
  per-row coordinates of the file.
- A few observations are gross errors (e.g. 319.8 K in January): observations further than
  ``GROSS_ERROR_K`` from the median of the eight runs are set to NaN.
- ``type`` (network code, categorical) is not a float predictor: dropped.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from probcast.data.prepare import Canonical, register
from probcast.schema import to_canonical_units
from probcast.validate import validate_station_table, validation_report

MODELS = ("GFS", "CMCG", "ETA", "GASP", "JMA", "NGPS", "TCWB", "UKMO")
"""Ensemble members; the first is the raw forecast ``fc_t2m``."""
LEAD_HOURS = 48.0
MISSING_ELEVATION = -9999.0
GROSS_ERROR_K = 25.0
"""Observations further than this from the members' median are treated as gross errors."""


def read_srft(path: str | Path) -> pd.DataFrame:
    """Read the ``srft`` data frame from ``srft.rda`` (R data, via ``rdata``)."""
    import rdata

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rdata warns about the file's unknown encoding
        frames = rdata.read_rda(str(path))
    if "srft" not in frames:
        raise ValueError(f"{path}: no 'srft' data frame; found {sorted(frames)}")
    return frames["srft"]


def _table(srft: pd.DataFrame, source: str) -> pd.DataFrame:
    valid = pd.to_datetime(srft["date"].astype(str), format="%Y%m%d%H", utc=True)
    lead = pd.Timedelta(hours=LEAD_HOURS)
    df = pd.DataFrame(
        {
            "station": srft["station"].astype(str).str.strip().to_numpy(),
            "init_time": (valid - lead).array,
            "lead_time": LEAD_HOURS,
            "valid_time": valid.array,
            "latitude": srft["latitude"].to_numpy(dtype="float64"),
            "longitude": srft["longitude"].to_numpy(dtype="float64"),
            "altitude": srft["elevation"].to_numpy(dtype="float64"),
        }
    )
    for i, model in enumerate(MODELS):
        name = "fc_t2m" if i == 0 else f"fc_t2m_{model.lower()}"
        df[name] = to_canonical_units(srft[model].to_numpy(), "K", "t2m", source=source)
    df["obs_t2m"] = to_canonical_units(srft["observation"].to_numpy(), "K", "t2m", source=source)
    return df


def _repair(df: pd.DataFrame) -> list[str]:
    """Apply the documented repairs in place; return report lines."""
    bad_alt = df["altitude"] == MISSING_ELEVATION
    df.loc[bad_alt, "altitude"] = np.nan
    members = df[[c for c in df.columns if c.startswith("fc_t2m")]].median(axis=1)
    gross = (df["obs_t2m"] - members).abs() > GROSS_ERROR_K
    examples = df.loc[gross, ["station", "valid_time", "obs_t2m"]].head(3)
    df.loc[gross, "obs_t2m"] = np.nan
    moved = df.groupby("station")[["latitude", "longitude"]].nunique().max(axis=1) > 1
    return [
        f"elevation -9999 (missing code) set to NaN in {int(bad_alt.sum())} rows "
        f"({df.loc[bad_alt, 'station'].nunique()} stations)",
        f"{int(gross.sum())} gross-error observations (|obs - member median| > "
        f"{GROSS_ERROR_K:g} K) set to NaN: "
        + "; ".join(
            f"{r.station} {r.valid_time:%Y-%m-%d} {r.obs_t2m:.1f} K" for r in examples.itertuples()
        ),
        f"{int(moved.sum())} station ids appear at more than one position; per-row "
        f"coordinates kept",
        "column 'type' (station network code) dropped: not a float predictor",
        f"date read as valid time; init_time = date - {LEAD_HOURS:g} h; fc_t2m = GFS run",
    ]


@register("pnw-t2m")
def convert(files: dict[str, Path]) -> Canonical:
    """Convert ``srft.rda`` to the canonical station table (target ``t2m`` in K).

    Args:
        files: Fetched files keyed by ``srft.rda``.

    Returns:
        Station table with ``fc_t2m`` (GFS run), seven ``fc_t2m_<model>`` predictors and
        ``obs_t2m``.
    """
    source = str(files["srft.rda"])
    df = _table(read_srft(files["srft.rda"]), source)
    report = _repair(df)
    table = validate_station_table(df, source=source)
    report = validation_report(table) + report
    return Canonical(data=table, targets=["t2m"], report=report)
