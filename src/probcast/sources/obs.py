"""Observations as every truth reader returns them, and station metadata checks.

A reader returns :class:`ObsData`: ``obs`` (one row per report: ``station``, ``time`` UTC,
``obs_<var>`` in canonical units, ``tp_hours`` the period of ``obs_tp``), ``stations``
(``station``, ``name``, ``latitude``, ``longitude``, ``altitude``) and ``removed`` (what
the source's own quality codes or format rules removed, per station, check and variable).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

OBS_VARIABLES = ("t2m", "td2m", "rh", "ws10", "wdir10", "gust", "msl", "sp", "tcc", "tp")
STATION_COLUMNS = ["station", "name", "latitude", "longitude", "altitude"]
REMOVED_COLUMNS = ["station", "check", "variable", "removed"]
GRIDDED_TRUTH = ("era5", "arco-era5")
"""Truth sources that are grids: sampled at the spec's stations, or regridded (zarr-grid)."""
MAX_ALTITUDE = 6000.0
"""m: no surface weather station is higher; a larger elevation is a bogus value."""


@dataclass
class ObsData:
    """Observations, station metadata and the removal counts of a truth source."""

    obs: pd.DataFrame
    stations: pd.DataFrame
    removed: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=REMOVED_COLUMNS))
    notes: list[str] = field(default_factory=list)

    @classmethod
    def concat(cls, parts: Iterable[ObsData]) -> ObsData:
        """Join the data of several files."""
        parts = list(parts)
        if not parts:
            return cls(
                pd.DataFrame(columns=["station", "time"]), pd.DataFrame(columns=STATION_COLUMNS)
            )
        stations = pd.concat([p.stations for p in parts], ignore_index=True)
        return cls(
            obs=pd.concat([p.obs for p in parts], ignore_index=True),
            stations=stations.drop_duplicates("station", keep="last").reset_index(drop=True),
            removed=pd.concat([p.removed for p in parts], ignore_index=True),
            notes=[n for p in parts for n in p.notes],
        )


def removed_rows(station: str, check: str, counts: dict[str, int]) -> list[dict[str, object]]:
    """Rows of a ``removed`` table for one station and check (zero counts skipped)."""
    return [
        {"station": station, "check": check, "variable": var, "removed": int(n)}
        for var, n in counts.items()
        if n
    ]


def clean_metadata(stations: pd.DataFrame, *, source: str) -> tuple[pd.DataFrame, list[str]]:
    """Blank impossible station positions and heights; return notes of what was blanked.

    Repairs: latitude = longitude = 0 exactly ("null island", a mobile or unknown station)
    -> position unknown; an altitude outside [-450, 6000] m -> unknown. A station without a
    position cannot be paired with a model grid: the build names it.
    """
    out = stations.copy()
    notes = []
    null_island = (out["latitude"] == 0) & (out["longitude"] == 0)
    for sid in out.loc[null_island, "station"]:
        notes.append(f"{source}: station {sid}: latitude/longitude 0/0 is not a real position")
    out.loc[null_island, ["latitude", "longitude"]] = np.nan
    bad_alt = (out["altitude"] < -450) | (out["altitude"] > MAX_ALTITUDE)
    for sid, alt in zip(out.loc[bad_alt, "station"], out.loc[bad_alt, "altitude"], strict=True):
        notes.append(f"{source}: station {sid}: elevation {alt:g} m is not plausible")
    out.loc[bad_alt, "altitude"] = np.nan
    return out, notes
