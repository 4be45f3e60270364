"""Observations as every truth reader returns them, and station metadata checks.

A reader returns :class:`ObsData`: ``obs`` (one row per report: ``station``, ``time`` UTC,
``obs_<var>`` in canonical units, ``tp_hours`` the period of ``obs_tp``), ``stations``
(``station``, ``name``, ``latitude``, ``longitude``, ``altitude``) and ``removed`` (what
the source's own quality codes or format rules removed, per station, check and variable).
"""

from __future__ import annotations

import gzip
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from probcast.schema import VARIABLES, canonical_name, range_error
from probcast.sources.errors import SourceError

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


def gunzip(data: bytes, url: str) -> bytes:
    """``data`` decompressed when it is gzip (``1f 8b``), else as it is.

    Raises:
        SourceError: Naming ``url`` when the gzip stream is truncated or corrupted.
    """
    if data[:2] != b"\x1f\x8b":
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError) as err:
        raise SourceError(f"{url}: truncated or corrupted gzip ({err})") from None


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


def check_some_in_range(
    obs: pd.DataFrame,
    sources: str | Sequence[str],
    ranges: Mapping[str, tuple[float, float]],
    *,
    units: Mapping[str, str] | None = None,
    variables: Iterable[str] | None = None,
) -> None:
    """Refuse observations of which the range check would remove every value.

    A variable whose values are all outside its physical range is almost always given in
    other units than stated (degC in a column read as K): building on would write a table
    without ``obs_<var>`` and exit 0.

    Args:
        obs: ``obs_<var>`` columns in canonical units (before quality control).
        sources: The truth file(s) or glob(s), for the message.
        ranges: Variable -> ``(min, max)`` of the range check (``qc.RANGES``).
        units: The units the values were given in, by column or variable (the table
            source's ``options.units``); canonical when absent.
        variables: The variables to check (default: every ``obs_<var>`` column).

    Raises:
        SourceError: Naming the variable, the file(s), the values found and the units the
            values would fit (:func:`probcast.schema.units_hint`).
    """
    given = {canonical_name(str(k).removeprefix("obs_")): v for k, v in (units or {}).items()}
    wanted = None if variables is None else set(variables)
    files = sources if isinstance(sources, str) else ", ".join(map(str, sources))
    for col in (c for c in obs.columns if c.startswith("obs_")):
        var = col[4:]
        if var not in ranges or (wanted is not None and var not in wanted):
            continue
        x = pd.to_numeric(obs[col], errors="coerce").to_numpy(dtype="float64")
        x = x[np.isfinite(x)]
        lo, hi = ranges[var]
        if x.size == 0 or ((x >= lo) & (x <= hi)).any():
            continue
        found = (
            f"{x.size} value(s) outside [{lo:g}, {hi:g}] (found min {x.min():g}, max {x.max():g})"
        )
        why = (
            range_error(float(x.min()), float(x.max()), var, units=given.get(var), n_bad=x.size)
            if var in VARIABLES
            else f"{found}; wrong units or corrupted values?"
        )
        raise SourceError(
            f"{files}: {col}: the range check would remove every observation of {var}: {why}"
        )
