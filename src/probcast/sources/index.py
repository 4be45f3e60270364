"""GRIB index files: wgrib2 ``.idx`` (NOAA) and ECMWF JSON-lines ``.index``.

Both list one line per GRIB message with its byte offset; reading only the byte ranges of
the wanted messages is how Herbie and ecmwf-opendata subset multi-GB files. The rules here
follow theirs:

* wgrib2 ``.idx``: ``n:offset:d=YYYYMMDDHH:VAR:level:forecast:[extra]``. A message ends
  where the next message with a *different* offset starts (the last one runs to the end of
  the file). RAP/NAM write ``n.m`` lines for the fields of one multi-field message (u and v
  wind packed together): they share an offset, so all ``n.m`` of a message map to the same
  byte range, and ``submessage`` says which field of the decoded message is meant.
* ECMWF ``.index``: one JSON object per line with ``param``, ``levtype``, ``levelist``,
  ``step`` (``"6"`` or ``"0-6"``), ``_offset`` and ``_length``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass

from probcast.sources.errors import SourceError


@dataclass(frozen=True)
class IndexRecord:
    """One field listed in an index.

    Attributes:
        number: Message number as written (``"12"`` or ``"12.2"``).
        offset: First byte of the GRIB message.
        length: Byte length, or None when the message runs to the end of the file.
        variable: ``VAR`` (wgrib2) or ``param`` (ECMWF).
        level: Level text (``"2 m above ground"``) or ``levtype[/levelist]`` (ECMWF).
        start_step: Start of the forecast period, hours (== ``end_step`` when instantaneous).
        end_step: Forecast step (end of the period), hours.
        kind: ``instant``, ``accum``, ``avg``, ``max`` or ``min``.
        submessage: Field number inside a multi-field message (1-based; 1 for plain ones).
        init: Initialisation as written (``YYYYMMDDHH``; ``""`` when the index has none).
    """

    number: str
    offset: int
    length: int | None
    variable: str
    level: str
    start_step: float
    end_step: float
    kind: str
    submessage: int = 1
    init: str = ""

    @property
    def byte_range(self) -> tuple[int, int | None]:
        """``(start, end)`` with ``end`` exclusive (None: to the end of the file)."""
        end = None if self.length is None else self.offset + self.length
        return self.offset, end


_KINDS = {"acc": "accum", "ave": "avg", "max": "max", "min": "min"}
_UNIT_HOURS = {"min": 1.0 / 60.0, "hour": 1.0, "day": 24.0}
_RANGE = re.compile(r"^(\d+)-(\d+) (min|hour|day) (acc|ave|max|min)(?: fcst)?$")
_POINT = re.compile(r"^(\d+) (min|hour|day) fcst$")


def parse_forecast(text: str) -> tuple[float, float, str]:
    """Parse a wgrib2 forecast-time field into ``(start_h, end_h, kind)``.

    Examples: ``anl`` -> (0, 0, instant); ``21 hour fcst`` -> (21, 21, instant);
    ``18-21 hour acc fcst`` -> (18, 21, accum); ``0-0 day acc fcst`` -> (0, 0, accum);
    ``495 min fcst`` -> (8.25, 8.25, instant).

    Raises:
        ValueError: If the text is not one of these forms.
    """
    text = text.strip()
    if text in ("anl", "analysis"):
        return 0.0, 0.0, "instant"
    m = _POINT.match(text)
    if m:
        hours = int(m.group(1)) * _UNIT_HOURS[m.group(2)]
        return hours, hours, "instant"
    m = _RANGE.match(text)
    if m:
        scale = _UNIT_HOURS[m.group(3)]
        return int(m.group(1)) * scale, int(m.group(2)) * scale, _KINDS[m.group(4)]
    raise ValueError(f"unknown forecast time {text!r}")


def parse_idx(text: str, *, source: str = "<idx>") -> list[IndexRecord]:
    """Parse a wgrib2 ``.idx`` inventory.

    Raises:
        SourceError: On a malformed line (the line number and text are named).
    """
    rows: list[tuple[str, int, str, str, str, str]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split(":")
        if len(parts) < 6 or not parts[1].isdigit() or not parts[2].startswith("d="):
            raise SourceError(
                f"{source}: line {lineno} is not a wgrib2 index line "
                f"('n:offset:d=YYYYMMDDHH:VAR:level:forecast:'): {line[:80]!r}"
            )
        rows.append((parts[0], int(parts[1]), parts[2][2:], parts[3], parts[4], parts[5]))
    # The end of a message is the next *different* offset: n.m lines share one.
    offsets = sorted({r[1] for r in rows})
    next_offset = dict(zip(offsets, [*offsets[1:], None], strict=True))
    records = []
    for number, offset, init, var, level, fcst in rows:
        try:
            start, end, kind = parse_forecast(fcst)
        except ValueError:
            start, end, kind = float("nan"), float("nan"), "unknown"
        stop = next_offset[offset]
        sub = int(number.split(".", 1)[1]) if "." in number else 1
        records.append(
            IndexRecord(
                number=number,
                offset=offset,
                length=None if stop is None else stop - offset,
                variable=var,
                level=level,
                start_step=start,
                end_step=end,
                kind=kind,
                submessage=sub,
                init=init,
            )
        )
    return records


def _ecmwf_steps(step: str) -> tuple[float, float, str]:
    if "-" in step:
        a, b = step.split("-", 1)
        return float(a), float(b), "range"
    return float(step), float(step), "instant"


def _ecmwf_init(obj: dict) -> str:
    """``YYYYMMDDHH`` of an ECMWF index line (``time`` is ``HHMM``: ``"600"`` is 06 UTC)."""
    date, time = str(obj.get("date", "")), str(obj.get("time", ""))
    if not date or not time.isdigit():
        return ""
    return f"{date}{time.zfill(4)[:2]}"


def run_time(init: str) -> str:
    """``YYYYMMDDHH`` as ``YYYY-MM-DD HH UTC`` (as written when it is not that form)."""
    if len(init) == 10 and init.isdigit():
        return f"{init[:4]}-{init[4:6]}-{init[6:8]} {init[8:]} UTC"
    return init


def parse_ecmwf_index(text: str, *, source: str = "<index>") -> list[IndexRecord]:
    """Parse an ECMWF open-data JSON-lines ``.index``.

    ``kind`` is ``range`` for ``a-b`` steps (max/min over a period); accumulations such as
    ``tp`` are listed with a single step and are since initialisation (see
    :mod:`probcast.sources.deaccum`): the NWP source sets their kind.

    Raises:
        SourceError: On a line that is not JSON or lacks ``param``/``_offset``/``_length``.
    """
    records = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            start, end, kind = _ecmwf_steps(str(obj.get("step", "0")))
            level = str(obj.get("levtype", ""))
            if obj.get("levelist"):
                level += f"/{obj['levelist']}"
            records.append(
                IndexRecord(
                    number=str(lineno),
                    offset=int(obj["_offset"]),
                    length=int(obj["_length"]),
                    variable=str(obj["param"]),
                    level=level,
                    start_step=start,
                    end_step=end,
                    kind=kind,
                    init=_ecmwf_init(obj),
                )
            )
        except (ValueError, KeyError, TypeError) as err:
            raise SourceError(
                f"{source}: line {lineno} is not an ECMWF index line (JSON with param, "
                f"_offset, _length): {err}"
            ) from None
    return records


def parse_index(text: str, *, source: str = "<index>") -> list[IndexRecord]:
    """Parse either index flavour, sniffed from the first non-empty character."""
    first = text.lstrip()[:1]
    if first == "{":
        return parse_ecmwf_index(text, source=source)
    return parse_idx(text, source=source)


def merge_ranges(records: Iterable[IndexRecord]) -> list[tuple[int, int | None]]:
    """Distinct byte ranges of ``records`` in file order (n.m lines give one range)."""
    return sorted({r.byte_range for r in records}, key=lambda r: r[0])
