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

Every mapping of the spec accepts only its own keys (:data:`TOP_KEYS`, :data:`NWP_KEYS`,
:data:`TRUTH_KEYS`, ...): an unknown key is an error naming the spec file, the key path, the
keys allowed there and the closest one, never silently ignored.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml  # type: ignore[import-untyped]

from probcast.sources import NWP_SOURCES, TRUTH_SOURCES, fs
from probcast.sources.area import Area, parse_area
from probcast.sources.errors import SourceError
from probcast.sources.obs import MAX_ALTITUDE
from probcast.sources.output import parse_output
from probcast.sources.variables import needed

TOP_KEYS = (
    "nwp",
    "truth",
    "stations",
    "variables",
    "period",
    "cycles",
    "lead_times",
    "accumulation_hours",
    "match_minutes",
    "area",
    "output",
)
"""Keys of the top level of a spec."""
_NOAA_KEYS = ("source", "base_url", "storage_options", "method")
NWP_KEYS: dict[str, tuple[str, ...]] = {
    "archive": ("source", "paths", "storage_options", "method"),
    "ecmwf-opendata": (*_NOAA_KEYS, "model", "stream"),
    **{name: _NOAA_KEYS for name in ("gfs", "hrrr", "rap", "nam")},
}
"""NWP source -> the keys its ``nwp`` section takes (see ``build.open_source``)."""
TRUTH_OPTIONS: dict[str, tuple[str, ...]] = {"table": ("units",)}
"""Truth source -> the keys of ``truth.options`` (keyword arguments of its reader)."""
TRUTH_KEYS: dict[str, tuple[str, ...]] = {
    name: ("source", "paths", "storage_options", *(("options",) if name in TRUTH_OPTIONS else ()))
    for name in TRUTH_SOURCES
}
"""Truth source -> the keys its ``truth`` section takes."""
ECMWF_STREAMS = ("auto", "oper", "scda")
"""``nwp.stream`` of ``ecmwf-opendata`` (see ``remote.EcmwfOpenData.stream``)."""
PERIOD_KEYS = ("start", "end")
STATION_KEYS = ("station", "name", "latitude", "longitude", "altitude")
OUTPUT_KEYS = ("kind", "method")


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


def _unknown(
    key: str, prefix: str, allowed: Sequence[str], nested: Mapping[str, Sequence[str]]
) -> str:
    """``key``'s path and the allowed key it most likely meant (or belongs under)."""
    inner = [f"{sub}.{key}" for sub, keys in nested.items() if key in keys]
    close = inner or difflib.get_close_matches(key, allowed, n=1)
    return f"{prefix}{key} (did you mean {prefix + close[0]!r}?)" if close else prefix + key


def _other_sources(key: str, keys: Mapping[str, Sequence[str]]) -> str:
    """`` (only for source a, b)`` when ``key`` belongs to other sources of the section."""
    owners = [name for name, allowed in keys.items() if key in allowed]
    return f" (only for source {', '.join(owners)})" if owners else ""


def check_keys(
    value: Mapping[Any, Any],
    allowed: Sequence[str],
    where: str,
    src: str,
    nested: Mapping[str, Sequence[str]] | None = None,
    label: str = "",
    sources: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Refuse keys of the spec mapping ``value`` (at key path ``where``) not in ``allowed``.

    Args:
        value: A mapping of the spec.
        allowed: The keys it may have.
        where: Its key path (``""`` for the top level, ``"truth"``, ``"truth.options"``).
        src: The spec file, for the message.
        nested: Sub-mapping name -> its keys, to suggest ``options.units`` for ``units``.
        label: Said after ``where`` in the list of allowed keys (``" (source table)"``).
        sources: Source name -> its keys, to say which sources take a key (``paths``).

    Raises:
        SourceError: Naming the file, each unknown key's path, a suggestion and the keys
            allowed there.
    """
    unknown = [str(k) for k in value if str(k) not in allowed]
    if not unknown:
        return
    prefix = f"{where}." if where else ""
    names = ", ".join(
        _unknown(k, prefix, allowed, nested or {}) + _other_sources(k, sources or {})
        for k in unknown
    )
    place = f"in {where}{label}" if where else "at the top level"
    raise SourceError(f"{src}: unknown key(s) {names}; allowed {place}: {', '.join(allowed)}")


def _check_truth(truth: dict[str, Any], src: str) -> None:
    name = truth["source"]
    option_keys = TRUTH_OPTIONS.get(name, ())
    label = f" (source {name})"
    check_keys(truth, TRUTH_KEYS[name], "truth", src, {"options": option_keys}, label, TRUTH_KEYS)
    options = truth.get("options", {})
    if not isinstance(options, dict):
        raise SourceError(
            f"{src}: truth.options: expected a mapping, e.g. {{units: {{t2m: degC}}}}"
        )
    check_keys(options, option_keys, "truth.options", src)
    units = options.get("units", {})
    if not isinstance(units, dict) or not all(isinstance(u, str) for u in units.values()):
        raise SourceError(
            f"{src}: truth.options.units: expected {{column: unit}}, e.g. {{t2m: degC}}; "
            f"got {units!r}"
        )


def _is_number(value: Any) -> bool:
    """A finite int or float (YAML/JSON number; not a bool, not a string)."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _number(data: Mapping[str, Any], key: str, default: float, src: str, what: str) -> float:
    """``data[key]`` as a float (``default`` when absent); ``what`` says what is expected.

    ``accumulation_hours`` must be > 0; ``match_minutes`` >= 0.
    """
    value = data.get(key)
    if value is None:
        return float(default)
    if not _is_number(value) or (value <= 0 if key == "accumulation_hours" else value < 0):
        raise SourceError(f"{src}: {key}: expected {what}; got {value!r}")
    return float(value)


def _hours_list(value: Any, key: str, src: str, *, cycles: bool) -> list[float]:
    """A non-empty list of distinct numbers: lead times (>= 0) or cycle hours (whole, 0-23)."""
    what = (
        "a list of cycle hours (whole numbers 0-23), e.g. [0, 12], or no 'cycles' key"
        if cycles
        else "a list of lead times in hours (numbers >= 0), e.g. [0, 6, 12]"
    )
    if not isinstance(value, list) or not value:
        raise SourceError(f"{src}: {key}: expected {what}; got {value!r}")
    bad = [x for x in value if not _is_number(x) or x < 0 or (cycles and (x != int(x) or x > 23))]
    if bad:
        raise SourceError(f"{src}: {key}: {bad} not allowed; expected {what}")
    twice = sorted({x for x in value if value.count(x) > 1})
    if twice:
        raise SourceError(f"{src}: {key}: {twice} given more than once; expected {what}")
    return sorted(float(x) for x in value)


def _stations(items: Any, src: str) -> list[dict[str, Any]]:
    """The ``stations`` list: ids or mappings with ``station``; every id at most once."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise SourceError(
            f"{src}: stations: expected a list of station ids or mappings, e.g. "
            f'["014160-99999"] or [{{station: X, latitude: 50, longitude: 5}}]; got {items!r}'
        )
    stations = []
    for i, item in enumerate(items):
        if isinstance(item, dict):
            check_keys(item, STATION_KEYS, f"stations[{i}]", src)
            if item.get("station") in (None, ""):
                raise SourceError(f"{src}: stations[{i}]: the mapping needs 'station' (its id)")
            _check_position(item, f"stations[{i}]", src)
            stations.append({**item, "station": str(item["station"])})
        elif isinstance(item, (str, int)) and not isinstance(item, bool) and str(item).strip():
            stations.append({"station": str(item)})
        else:
            raise SourceError(
                f"{src}: stations[{i}]: expected a station id or a mapping; got {item!r}"
            )
    ids = [s["station"] for s in stations]
    twice = sorted({s for s in ids if ids.count(s) > 1})
    if twice:
        raise SourceError(
            f"{src}: stations: {', '.join(twice)} listed more than once; give each station once"
        )
    return stations


_POSITION = {
    "latitude": (-90.0, 90.0),
    "longitude": (-180.0, 360.0),
    "altitude": (-450.0, MAX_ALTITUDE),
}
"""Plausible station positions (``obs.clean_metadata`` blanks a source's outside them)."""


def _check_position(item: Mapping[str, Any], where: str, src: str) -> None:
    """Refuse a station's latitude/longitude/altitude that is not a number in range."""
    for key, (lo, hi) in _POSITION.items():
        value = item.get(key)
        if value is not None and not (_is_number(value) and lo <= value <= hi):
            raise SourceError(
                f"{src}: {where}.{key}: expected a number in [{lo:g}, {hi:g}]; got {value!r}"
            )


def _check_storage(value: Any, where: str, src: str) -> None:
    """Refuse ``storage_options`` not a mapping, or bad ``timeout``/``retries``/``retry_wait``."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise SourceError(f"{src}: {where}: expected a mapping, e.g. {{anon: true, timeout: 60}}")
    try:
        fs.split_options(value, where)
    except SourceError as err:
        raise SourceError(f"{src}: {err}") from None


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
    check_keys(data, TOP_KEYS, "", source)
    nwp = _section(data, "nwp", NWP_SOURCES, source)
    truth = _section(data, "truth", TRUTH_SOURCES, source)
    label = f" (source {nwp['source']})"
    check_keys(nwp, NWP_KEYS[nwp["source"]], "nwp", source, label=label, sources=NWP_KEYS)
    _check_truth(truth, source)
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
    if nwp.get("stream", "auto") not in ECMWF_STREAMS:
        raise SourceError(
            f"{source}: nwp.stream: {nwp['stream']!r} unknown; expected one of "
            f"{', '.join(ECMWF_STREAMS)}"
        )
    for key, sec in (("nwp", nwp), ("truth", truth)):
        _check_storage(sec.get("storage_options"), f"{key}.storage_options", source)
    if not truth.get("paths"):
        raise SourceError(f"{source}: truth.paths: give a glob or a list of observation files")
    variables = data.get("variables")
    if not isinstance(variables, list) or not variables:
        raise SourceError(f"{source}: variables: expected a non-empty list, e.g. [t2m, ws10]")
    needed([str(v) for v in variables])  # raises on unknown names
    period = data.get("period")
    if not isinstance(period, dict) or "start" not in period or "end" not in period:
        raise SourceError(f"{source}: period: expected {{start: DATE, end: DATE}}")
    check_keys(period, PERIOD_KEYS, "period", source)
    start = _time(period["start"], "period.start", source)
    end = _time(period["end"], "period.end", source)
    if len(str(period["end"])) <= 10:  # a date: the whole day
        end += pd.Timedelta(hours=23, minutes=59)
    if end < start:
        raise SourceError(f"{source}: period: end {end} is before start {start}")
    lead_times = _hours_list(data.get("lead_times"), "lead_times", source, cycles=False)
    stations = _stations(data.get("stations"), source)
    if isinstance(data.get("output"), dict):
        check_keys(data["output"], OUTPUT_KEYS, "output", source)
    cycles = (  # absent: every cycle an archive holds; 00 UTC for the other sources
        ([] if nwp["source"] == "archive" else [0])
        if data.get("cycles") is None
        else [int(h) for h in _hours_list(data["cycles"], "cycles", source, cycles=True)]
    )
    return BuildSpec(
        nwp=nwp,
        truth=truth,
        variables=[str(v) for v in variables],
        start=start,
        end=end,
        lead_times=lead_times,
        cycles=cycles,
        stations=stations,
        accumulation_hours=_number(
            data, "accumulation_hours", 6, source, "a number of hours > 0, e.g. 6"
        ),
        match_minutes=_number(
            data, "match_minutes", 30, source, "a number of minutes >= 0, e.g. 30"
        ),
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
