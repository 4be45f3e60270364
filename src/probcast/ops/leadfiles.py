"""Inputs with one file per lead time: which lead files are complete, and their union.

A pipeline whose ``input`` holds ``{lead}`` (e.g. ``inputs/{cycle:%Y%m%d%H}/f{lead:03d}.parquet``)
and lists its ``leads`` gets one station table (CSV or Parquet) per lead time. A lead file is
complete by the pipeline's ``complete`` rule, per file: ``stable`` (its size and mtime did not
change over ``settle_seconds``, or between two polls of a watcher), ``marker`` (``<file>.done``
exists); a Parquet file must also end with its footer. The ``acquire`` step writes the union of
the complete lead files (rows concatenated, the first file's Parquet metadata kept) to the
cycle's work folder: that one table is what the cycle predicts from.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from probcast import io
from probcast.ops.pipeline import Pipeline, PipelineError
from probcast.schema import TABLE_SUFFIXES  # an input with one file per lead: tables only

_LEAD = re.compile(r"\{lead(?::[^}]*)?\}")


def _lead_list(value: Any, where: str) -> tuple[int, ...]:
    if isinstance(value, Mapping):
        if set(value) - {"start", "stop", "step"} or "stop" not in value:
            raise PipelineError(f"{where}: a range is {{start: 0, stop: 48, step: 6}}")
        try:
            start, stop, step = (
                int(value.get(k, d)) for k, d in (("start", 0), ("stop", 0), ("step", 1))
            )
            value = list(range(start, stop + 1, step))
        except (TypeError, ValueError):
            raise PipelineError(
                f"{where}: start, stop and step are whole hours, step > 0"
            ) from None
    if not isinstance(value, list) or not value:
        raise PipelineError(f"{where}: a list of lead times in hours, or a range, got {value!r}")
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in value):
        raise PipelineError(f"{where}: lead times are whole hours >= 0, got {value!r}")
    if len(set(value)) != len(value):
        raise PipelineError(f"{where}: lead times repeat: {value!r}")
    return tuple(sorted(value))


def check_leads(value: Any, policy: bool, input_: str, name: str) -> tuple[int, ...]:
    """A pipeline's ``leads`` (``()``: a one-file input; ``policy``: it has ``partial:``)."""
    found = len(_LEAD.findall(input_))
    if not found:
        if value is not None or policy:
            raise PipelineError(f"{name}: leads/partial need {{lead}} in input, got {input_!r}")
        return ()
    if found > 1 or value is None:
        raise PipelineError(f"{name}: input with {{lead}} (once) needs leads: [0, 6, ...]")
    if Path(input_).suffix.lower() not in TABLE_SUFFIXES:
        raise PipelineError(
            f"{name}: one file per lead is for station tables ({', '.join(TABLE_SUFFIXES)}); "
            f"a grid input is one file per cycle, got {input_!r}"
        )
    leads = _lead_list(value, f"{name}: leads")
    try:
        input_.format(cycle=datetime(2000, 1, 1, tzinfo=UTC), lead=leads[0])
    except (KeyError, IndexError, ValueError) as err:
        raise PipelineError(f"{name}: input {input_!r} cannot be filled in: {err}") from None
    return leads


class LeadFileError(ValueError):
    """A lead file that cannot be used (unreadable, or rows of another lead time)."""


def _stat(path: Path) -> tuple[int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_size, stat.st_mtime_ns


def marker(pipe: Pipeline, path: Path) -> Path:
    """The completeness marker of one lead file (rule ``marker``)."""
    return path.with_name(path.name + pipe.marker_suffix)


def _whole(pipe: Pipeline, path: Path) -> bool:
    """The marker exists (rule ``marker``) and a Parquet file ends with its footer."""
    if pipe.complete_rule == "marker" and not marker(pipe, path).exists():
        return False
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            with path.open("rb") as fh:
                fh.seek(max(0, path.stat().st_size - 4))
                return fh.read(4) == b"PAR1"
        except FileNotFoundError:
            return False
    return path.is_file()


def complete_leads(pipe: Pipeline, cycle: datetime, *, settle: bool) -> list[int]:
    """The leads of ``cycle`` whose files are complete now (one settle wait for them all).

    Args:
        pipe: The pipeline (``leads`` set).
        cycle: The cycle.
        settle: Rule ``stable``: keep only files whose size and mtime do not change over
            ``settle_seconds`` (``False``: a watcher saw them stable between polls).
    """
    present = {lead: pipe.lead_path(cycle, lead) for lead in pipe.leads}
    before = {lead: _stat(p) for lead, p in present.items()}
    present = {lead: p for lead, p in present.items() if before[lead] is not None}
    if pipe.complete_rule == "stable" and settle and pipe.settle_seconds > 0 and present:
        time.sleep(pipe.settle_seconds)
        present = {lead: p for lead, p in present.items() if _stat(p) == before[lead]}
    return [lead for lead, path in present.items() if _whole(pipe, path)]


def ready_leads(pipe: Pipeline, cycle: datetime, seen: dict[str, tuple[int, int]]) -> list[int]:
    """The leads whose files a watcher sees complete.

    Rule ``stable``: unchanged since the watcher's previous poll (``seen``: path -> size and
    mtime, updated here); rule ``marker``: the marker exists.
    """
    out = []
    for lead in pipe.leads:
        path = pipe.lead_path(cycle, lead)
        now = _stat(path)
        if now is None:
            continue
        if pipe.complete_rule == "stable":
            before, seen[str(path)] = seen.get(str(path)), now
            if before != now:
                continue
        if _whole(pipe, path):
            out.append(lead)
    return out


def _hours(value: Any) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, timedelta):
        return value.total_seconds() / 3600.0
    return float(value)


def _check_lead(path: Path, lead: int, values: list[Any]) -> None:
    try:
        hours = {h for h in (_hours(v) for v in values) if h is not None}
    except (TypeError, ValueError):
        raise LeadFileError(f"{path}: lead_time must be hours, got {values[:5]}") from None
    wrong = sorted(h for h in hours if h != lead)
    if wrong:
        raise LeadFileError(
            f"{path}: lead_time values {wrong} in the file of lead {lead} "
            "(each lead file holds the rows of its own lead time)"
        )


def _read_csv(path: Path, lead: int) -> Any:
    import pandas as pd

    try:  # as text: the union is written back unchanged
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as err:
        raise LeadFileError(f"{path}: not a readable CSV station table: {err}") from None
    if "lead_time" in frame:
        _check_lead(path, lead, list(frame["lead_time"].unique()))
    return frame


def _read_parquet(path: Path, lead: int) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as err:
        raise LeadFileError(f"{path}: not a readable Parquet station table: {err}") from None
    if "lead_time" in table.column_names:
        _check_lead(path, lead, table.column("lead_time").unique().to_pylist())
    return table


def combine(files: Mapping[int, Path], target: Path) -> Path:
    """Write the union of the lead files ``files`` (lead -> path) to ``target`` atomically.

    Raises:
        LeadFileError: A file cannot be read, holds rows of another lead time, or the files
            do not share their columns' types.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    target.parent.mkdir(parents=True, exist_ok=True)
    if target.suffix.lower() == ".csv":
        import pandas as pd

        frame = pd.concat([_read_csv(p, lead) for lead, p in files.items()], ignore_index=True)
        return io.write_with(target, lambda tmp: frame.to_csv(tmp, index=False))
    tables = [_read_parquet(p, lead) for lead, p in files.items()]
    try:
        table = pa.concat_tables(tables, promote_options="permissive")
    except pa.ArrowException as err:
        names = ", ".join(str(p) for p in files.values())
        raise LeadFileError(f"lead files {names} do not share their columns: {err}") from None
    return io.write_with(target, lambda tmp: pq.write_table(table, tmp))
