"""NOAA ISD: the fixed-width format (``USAF-WBAN-YEAR[.gz]``) and the global-hourly CSV.

Both carry the same elements: the mandatory section (wind, temperature, dew point, sea-level
pressure) and additional sections (``AA1`` precipitation, ``OC1`` gust, ``MA1`` station
pressure, ``GF1`` total cloud cover). Every value is an integer scaled by 10 (wind m s-1,
temperature degC, pressure hPa, precipitation mm) followed by a quality code; all-nines
(``9999``, ``99999``, ``+9999``) means missing.

Rules (docs/sources.md):

* quality codes 2, 3, 6, 7 (suspect/erroneous) remove the value; counted as ``source_qc``;
* ``SOD``/``SOM`` (daily/monthly summary) records are dropped (counted as
  ``daily_summary``), as are other non-observation report types;
* wind (``WND``: direction, quality, type, speed, quality): the ISD format document codes
  a calm as type ``C`` with speed ``0000`` and direction ``999``, and a missing speed as
  ``9999`` whatever the type. So type ``C`` with speed ``0000`` -> speed 0, direction NaN;
  type ``C`` with speed ``9999`` -> speed NaN (missing: Norway 014160's SYNOPs carry a
  ``/////`` wind group there, not a calm); type ``C`` with any other speed contradicts itself
  and the speed is removed (``source_qc``); direction 999 -> NaN;
* ``GF1`` total coverage code 0..8 (oktas) -> fraction code/8; 9 (obscured) -> 1;
  10 and 99 -> NaN; ``AA1`` trace (condition 2) -> 0 mm.
"""

from __future__ import annotations

import io as _io
from typing import Any

import numpy as np
import pandas as pd

from probcast.sources import fs
from probcast.sources.errors import SourceError
from probcast.sources.obs import ObsData, clean_metadata, gunzip, removed_rows

BAD_QUALITY = frozenset("2367")
SUMMARY_TYPES = ("SOD", "SOM")
# Data length (after the 3-character id) of every ISD additional-data section.
_LENGTHS: dict[str, int] = {
    **{f"AA{i}": 8 for i in range(1, 5)}, "AB1": 7, "AC1": 3, "AD1": 19, "AE1": 12,
    "AG1": 4, **{f"AH{i}": 15 for i in range(1, 7)}, **{f"AI{i}": 15 for i in range(1, 7)},
    "AJ1": 14, "AK1": 12, **{f"AL{i}": 7 for i in range(1, 5)}, "AM1": 18, "AN1": 9,
    **{f"AO{i}": 8 for i in range(1, 5)}, **{f"AP{i}": 6 for i in range(1, 5)},
    **{f"AT{i}": 9 for i in range(1, 9)}, **{f"AU{i}": 8 for i in range(1, 10)},
    **{f"AW{i}": 3 for i in range(1, 5)}, **{f"AX{i}": 6 for i in range(1, 7)},
    "AY1": 5, "AY2": 5, "AZ1": 5, "AZ2": 5, "CB1": 10, "CB2": 10,
    **{f"CF{i}": 6 for i in range(1, 4)}, **{f"CG{i}": 8 for i in range(1, 4)},
    "CH1": 15, "CH2": 15, "CI1": 28, "CN1": 18, "CN2": 18, "CN3": 12, "CN4": 19, "CO1": 5,
    **{f"CO{i}": 8 for i in range(2, 10)}, "CR1": 7, **{f"CT{i}": 7 for i in range(1, 4)},
    **{f"CU{i}": 13 for i in range(1, 4)}, **{f"CV{i}": 26 for i in range(1, 4)}, "CW1": 14,
    **{f"CX{i}": 26 for i in range(1, 4)}, "ED1": 8, **{f"GA{i}": 13 for i in range(1, 7)},
    **{f"GD{i}": 12 for i in range(1, 7)}, "GE1": 19, "GF1": 23,
    **{f"GG{i}": 15 for i in range(1, 7)}, "GH1": 28, "GJ1": 5, "GK1": 4, "GL1": 6,
    "GM1": 30, "GN1": 28, "GO1": 19, "GP1": 31, "GQ1": 14, "GR1": 14, "HL1": 4, "IA1": 3,
    "IA2": 9, "IB1": 27, "IB2": 13, "IC1": 25, **{f"KA{i}": 10 for i in range(1, 5)},
    **{f"KB{i}": 10 for i in range(1, 4)}, "KC1": 14, "KC2": 14, "KD1": 9, "KD2": 9,
    "KE1": 12, "KF1": 9, "KG1": 11, "KG2": 11, "MA1": 12, "MD1": 11, "ME1": 6, "MF1": 12,
    "MG1": 12, "MH1": 24, "MK1": 24, **{f"MV{i}": 3 for i in range(1, 8)},
    **{f"MW{i}": 3 for i in range(1, 8)}, **{f"OA{i}": 8 for i in range(1, 4)},
    "OB1": 28, "OB2": 28, "OC1": 5, **{f"OD{i}": 11 for i in range(1, 4)},
    **{f"OE{i}": 16 for i in range(1, 4)}, **{f"RH{i}": 9 for i in range(1, 4)}, "SA1": 5,
    "ST1": 17, "UA1": 10, "UG1": 9, "UG2": 9, "WA1": 6, "WD1": 20, "WG1": 11, "WJ1": 19,
}  # fmt: skip
# Sub-field widths of the sections we decode, to give them the CSV's comma form.
_WIDTHS = {
    "AA1": (2, 4, 1, 1),
    "OC1": (4, 1),
    "MA1": (5, 1, 5, 1),
    "GF1": (2, 2, 1, 2, 1, 2, 1, 5, 1, 2, 1, 2, 1),
}
ELEMENTS = ("WND", "TMP", "DEW", "SLP", *_WIDTHS)


def _split(text: str, widths: tuple[int, ...]) -> str:
    out, pos = [], 0
    for w in widths:
        out.append(text[pos : pos + w])
        pos += w
    return ",".join(out)


def parse_additional(text: str) -> tuple[dict[str, str], bool]:
    """Decode the ``ADD`` part of a record into {section: comma form}; False if cut short.

    Parsing stops at ``REM``/``EQD``/``QNN`` (remarks and quality sections end a record).
    An unknown section id stops it too (its length is unknown) and returns False.
    """
    out: dict[str, str] = {}
    pos = text.find("ADD")
    if pos < 0:
        return out, True
    pos += 3
    while pos < len(text):
        code = text[pos : pos + 3]
        if code in ("REM", "EQD", "QNN") or not code.strip():
            return out, True
        n = _LENGTHS.get(code)
        if n is None:
            return out, False
        if code in _WIDTHS:
            out[code] = _split(text[pos + 3 : pos + 3 + n], _WIDTHS[code])
        pos += 3 + n
    return out, True


def parse_fixed_line(line: str) -> dict[str, Any]:
    """Split one fixed-width record into header fields and comma-form elements."""
    rec: dict[str, Any] = {
        "station": f"{line[4:10]}-{line[10:15]}",
        "time": f"{line[15:23]}{line[23:27]}",
        "latitude": int(line[28:34]) / 1000.0,
        "longitude": int(line[34:41]) / 1000.0,
        "report_type": line[41:46].strip(),
        "altitude": float(int(line[46:51])),
        "name": line[51:56].strip(),
        "WND": f"{line[60:63]},{line[63]},{line[64]},{line[65:69]},{line[69]}",
        "TMP": f"{line[87:92]},{line[92]}",
        "DEW": f"{line[93:98]},{line[98]}",
        "SLP": f"{line[99:104]},{line[104]}",
    }
    sections, complete = parse_additional(line[105:])
    rec.update(sections)
    rec["_complete"] = complete
    return rec


def _value(text: Any, missing: str, scale: float) -> tuple[float, str]:
    """(value, quality code) of a ``value,q`` element; NaN when missing or absent."""
    if not isinstance(text, str) or not text:
        return np.nan, ""
    parts = text.split(",")
    raw, q = parts[0], parts[1] if len(parts) > 1 else ""
    if raw.lstrip("+-") == missing or not raw.lstrip("+-").isdigit():
        return np.nan, q
    return int(raw) / scale, q


def decode(rec: dict[str, Any], bad: dict[str, int]) -> dict[str, float]:
    """Canonical values of one record; values with a bad quality code counted in ``bad``."""
    out: dict[str, float] = {}

    def keep(var: str, value: float, q: str) -> None:
        if q in BAD_QUALITY and np.isfinite(value):
            bad[var] = bad.get(var, 0) + 1
            value = np.nan
        out[var] = value

    wnd = (str(rec.get("WND") or "") + ",,,,").split(",")  # padded: short fields -> NaN
    direction = float(wnd[0]) if wnd[0].isdigit() and wnd[0] != "999" else np.nan
    speed = int(wnd[3]) / 10.0 if wnd[3].isdigit() and wnd[3] != "9999" else np.nan
    if wnd[2] == "C":  # calm: no direction; speed 0000 a calm, 9999 missing (module doc)
        direction = np.nan
        if np.isfinite(speed) and speed != 0.0:  # "calm" at a speed: contradictory
            bad["ws10"] = bad.get("ws10", 0) + 1
            speed = np.nan
    keep("ws10", speed, wnd[4])
    keep("wdir10", direction, wnd[1])
    t, q = _value(rec.get("TMP"), "9999", 10.0)
    keep("t2m", t + 273.15, q)
    td, q = _value(rec.get("DEW"), "9999", 10.0)
    keep("td2m", td + 273.15, q)
    p, q = _value(rec.get("SLP"), "99999", 10.0)
    keep("msl", p * 100.0, q)
    if "MA1" in rec and isinstance(rec["MA1"], str):
        sp, q = _value(",".join(rec["MA1"].split(",")[2:4]), "99999", 10.0)
        keep("sp", sp * 100.0, q)
    if "OC1" in rec:
        g, q = _value(rec.get("OC1"), "9999", 10.0)
        keep("gust", g, q)
    if isinstance(rec.get("GF1"), str):
        parts = rec["GF1"].split(",")
        code = int(parts[0]) if parts[0].isdigit() else 99
        cover = code / 8.0 if code <= 8 else (1.0 if code == 9 else np.nan)
        keep("tcc", cover, parts[2] if len(parts) > 2 else "")
    if isinstance(rec.get("AA1"), str):
        parts = rec["AA1"].split(",")
        hours = int(parts[0]) if parts[0].isdigit() and parts[0] != "99" else 0
        amount, q = _value(f"{parts[1]},{parts[3] if len(parts) > 3 else ''}", "9999", 10.0)
        if len(parts) > 2 and parts[2] == "2":  # trace
            amount = 0.0
        if hours > 0:
            keep("tp", amount, q)
            out["tp_hours"] = float(hours)
    return out


def _frame(records: list[dict[str, Any]], source: str) -> ObsData:
    if not records:
        raise SourceError(f"{source}: no ISD record found; expected ISD fixed-width lines")
    rows, removed, incomplete = [], [], 0
    station_meta: dict[str, dict[str, Any]] = {}
    summaries: dict[str, int] = {}
    bad: dict[str, dict[str, int]] = {}
    for rec in records:
        sid = rec["station"]
        station_meta[sid] = {
            k: rec[k] for k in ("station", "name", "latitude", "longitude", "altitude")
        }
        if rec["report_type"] in SUMMARY_TYPES:
            summaries[sid] = summaries.get(sid, 0) + 1
            continue
        incomplete += not rec.get("_complete", True)
        values = decode(rec, bad.setdefault(sid, {}))
        named = {k if k == "tp_hours" else f"obs_{k}": v for k, v in values.items()}
        rows.append({"station": sid, "time": rec["time"], **named})
    obs = pd.DataFrame(rows)
    try:  # fixed-width YYYYMMDDHHMM or global-hourly DATE; epoch numbers do not parse
        obs["time"] = pd.to_datetime(obs["time"], format="mixed", utc=True)
    except (ValueError, TypeError, OverflowError) as err:
        raise SourceError(
            f"{source}: column 'DATE' (time): not times ({' '.join(str(err).split())}); "
            "expected ISO 8601 UTC times such as '2024-01-01T00:00:00'"
        ) from None
    for sid, counts in bad.items():
        removed += removed_rows(sid, "source_qc", counts)
    for sid, n in summaries.items():
        removed += removed_rows(sid, "daily_summary", {"*": n})
    stations, notes = clean_metadata(pd.DataFrame(list(station_meta.values())), source=source)
    if incomplete:
        notes.append(f"{source}: {incomplete} record(s) with an unknown additional section")
    return ObsData(obs=obs, stations=stations, removed=pd.DataFrame(removed), notes=notes)


def _fixed_width(line: str) -> bool:
    """Whether ``line`` starts like an ISD fixed-width record."""
    return len(line) >= 105 and line[:4].isdigit() and line[15:27].isdigit()


def read_isd(url: str, storage_options: dict[str, Any] | None = None) -> ObsData:
    """Read an ISD fixed-width year file (plain or gzip)."""
    data = gunzip(fs.read_bytes(url, storage_options), url)
    records = []
    for lineno, line in enumerate(data.decode("latin-1").splitlines(), 1):
        if not line.strip():
            continue
        if not _fixed_width(line):
            hint = (
                "; it looks like an NCEI global-hourly CSV: use truth source 'isd-csv'"
                if line.lstrip('"').startswith("STATION")
                else ""
            )
            raise SourceError(
                f"{url}: line {lineno} is not an ISD record (expected >= 105 characters "
                f"starting with the length, USAF, WBAN, date): {line[:40]!r}{hint}"
            )
        records.append(parse_fixed_line(line))
    return _frame(records, url)


def read_global_hourly(url: str, storage_options: dict[str, Any] | None = None) -> ObsData:
    """Read an NCEI Access ``global-hourly`` CSV (same elements, comma-separated)."""
    raw = gunzip(fs.read_bytes(url, storage_options), url)
    if _fixed_width(raw[:400].decode("latin-1").split("\n", 1)[0]):
        raise SourceError(
            f"{url}: an ISD fixed-width file, not a global-hourly CSV: use truth source 'isd'"
        )
    try:
        df = pd.read_csv(_io.BytesIO(raw), dtype=str, keep_default_na=False)
    except (ValueError, UnicodeDecodeError) as err:  # ParserError, EmptyDataError: ValueError
        line = " ".join(str(err).split())
        raise SourceError(f"{url}: not a readable global-hourly CSV ({line})") from None
    need = {"STATION", "DATE", "LATITUDE", "LONGITUDE", "ELEVATION", "REPORT_TYPE", "WND", "TMP"}
    if not need <= set(df.columns):
        raise SourceError(
            f"{url}: not an ISD global-hourly CSV: columns {sorted(need - set(df.columns))} missing"
        )
    records = []
    for row in df.to_dict("records"):
        rec: dict[str, Any] = {
            "station": row["STATION"],
            "time": row["DATE"],
            "latitude": float(row["LATITUDE"] or "nan"),
            "longitude": float(row["LONGITUDE"] or "nan"),
            "altitude": float(row["ELEVATION"] or "nan"),
            "name": row.get("NAME", ""),
            "report_type": row["REPORT_TYPE"].strip(),
        }
        rec.update({k: row[k] for k in ELEMENTS if row.get(k)})
        records.append(rec)
    return _frame(records, url)
