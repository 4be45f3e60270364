"""The build spec (YAML or JSON): which NWP, which truth, stations, variables, period, leads.

Example (YAML)::

    nwp: {source: archive, paths: "s3://bucket/ifs/*.grib", storage_options: {anon: true}}
    # or {source: archive, paths: refs.json, method: bilinear}  (kerchunk references)
    truth: {source: isd, paths: ["/data/isd/*.gz"]}
    stations: ["014160-99999"]           # or [{station: X, latitude: .., longitude: ..}]
    variables: [t2m, ws10, msl, tp]
    period: {start: 2016-09-25, end: 2016-10-01}
    cycles: [0, 12]                      # hours (archive: default = every cycle found)
    lead_times: [0, 6, 12]
    accumulation_hours: 6                # fc_tp/obs_tp period ending at the valid time
    match_minutes: 30                    # an observation within +-30 min of the valid time
    area: [72, -25, 34, 45]              # optional [north, west, south, east], degrees
    output: {kind: zarr-grid}            # optional: a canonical grid (default: table)
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml  # type: ignore[import-untyped]

from probcast.sources import NWP_SOURCES, TRUTH_SOURCES
from probcast.sources.area import Area, parse_area
from probcast.sources.errors import SourceError
from probcast.sources.output import parse_output
from probcast.sources.variables import needed


@dataclass
class BuildSpec:
    """A validated build spec (see the module docstring)."""

    nwp: dict[str, Any]
    truth: dict[str, Any]
    variables: list[str]
    start: pd.Timestamp
    end: pd.Timestamp
    lead_times: list[float]
    cycles: list[int] = field(default_factory=list)
    stations: list[dict[str, Any]] = field(default_factory=list)
    accumulation_hours: float = 6.0
    match_minutes: float = 30.0
    source: str = "<config>"
    area: Area | None = None
    output: dict[str, Any] = field(default_factory=lambda: {"kind": "table"})


def _time(value: Any, key: str, src: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(str(value))
    except ValueError:
        raise SourceError(f"{src}: {key}: {value!r} is not an ISO 8601 date/time") from None
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _section(data: dict[str, Any], key: str, names: dict[str, str], src: str) -> dict[str, Any]:
    sec = data.get(key)
    if not isinstance(sec, dict) or "source" not in sec:
        raise SourceError(
            f"{src}: '{key}' must be a mapping with 'source' (one of {sorted(names)})"
        )
    if sec["source"] not in names:
        raise SourceError(
            f"{src}: {key}.source {sec['source']!r} unknown; expected one of {sorted(names)}"
        )
    return dict(sec)


def parse_spec(data: dict[str, Any], *, source: str = "<config>") -> BuildSpec:
    """Validate a spec mapping; every error names the key and what was expected."""
    if not isinstance(data, dict):
        raise SourceError(f"{source}: expected a mapping at the top level")
    nwp = _section(data, "nwp", NWP_SOURCES, source)
    truth = _section(data, "truth", TRUTH_SOURCES, source)
    if nwp["source"] == "archive" and not nwp.get("paths"):
        raise SourceError(f"{source}: nwp.paths: an archive needs a glob or a list of files")
    if nwp.get("method", "nearest") not in ("nearest", "bilinear"):
        raise SourceError(
            f"{source}: nwp.method: {nwp['method']!r} unknown; expected nearest or bilinear"
        )
    if nwp.get("method") == "bilinear" and nwp["source"] != "archive":
        raise SourceError(
            f"{source}: nwp.method: bilinear needs source 'archive' (NetCDF, Zarr or a "
            "kerchunk refs.json); byte-range GRIB sources take the nearest grid point"
        )
    if not truth.get("paths"):
        raise SourceError(f"{source}: truth.paths: give a glob or a list of observation files")
    variables = data.get("variables")
    if not isinstance(variables, list) or not variables:
        raise SourceError(f"{source}: variables: expected a non-empty list, e.g. [t2m, ws10]")
    needed([str(v) for v in variables])  # raises on unknown names
    period = data.get("period")
    if not isinstance(period, dict) or "start" not in period or "end" not in period:
        raise SourceError(f"{source}: period: expected {{start: DATE, end: DATE}}")
    start = _time(period["start"], "period.start", source)
    end = _time(period["end"], "period.end", source)
    if len(str(period["end"])) <= 10:  # a date: the whole day
        end += pd.Timedelta(hours=23, minutes=59)
    if end < start:
        raise SourceError(f"{source}: period: end {end} is before start {start}")
    leads = data.get("lead_times")
    try:
        lead_times = sorted(float(x) for x in leads)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise SourceError(
            f"{source}: lead_times: expected a list of hours, e.g. [0, 6, 12]"
        ) from None
    if not lead_times or min(lead_times) < 0:
        raise SourceError(f"{source}: lead_times: expected a non-empty list of hours >= 0")
    stations = []
    for item in data.get("stations") or []:
        stations.append({"station": str(item)} if not isinstance(item, dict) else dict(item))
    cycles = [int(h) for h in data.get("cycles") or ([] if nwp["source"] == "archive" else [0])]
    return BuildSpec(
        nwp=nwp,
        truth=truth,
        variables=[str(v) for v in variables],
        start=start,
        end=end,
        lead_times=lead_times,
        cycles=cycles,
        stations=stations,
        accumulation_hours=float(data.get("accumulation_hours", 6)),
        match_minutes=float(data.get("match_minutes", 30)),
        source=source,
        area=parse_area(data.get("area"), source),
        output=parse_output(data.get("output"), nwp, truth, source),
    )


def load_spec(path: str | Path) -> BuildSpec:
    """Read and validate a YAML or JSON spec file."""
    p = Path(path)
    if not p.is_file():
        raise SourceError(f"{p}: no such config file")
    text = p.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if p.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as err:
        line = " ".join(str(err).split())
        raise SourceError(
            f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {line}"
        ) from None
    return parse_spec(data, source=str(p))
