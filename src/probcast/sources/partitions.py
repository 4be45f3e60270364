"""The cycle partitions of a station-table build: where they are, what they lack, compaction.

Each partition ``OUT/init_date=YYYY-MM-DD/cycle_HHMM.parquet`` carries in its Parquet
key-value metadata what was missing when it was written (:data:`MISSING_KEY`) and which of
those notes are files that could not be read (:data:`UNAVAILABLE_KEY`: not published yet,
HTTP error, timeout, a file of another run). The state travels with the file it describes
and is replaced with it atomically, so it cannot disagree with it, whichever process wrote
it (parallel workers too). ``data build`` rebuilds a partition whose unavailable list is
not empty, and lists every partition with missing notes under ``cycles_incomplete``.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from probcast import io, periods
from probcast.sources.errors import SourceError

MISSING_KEY = b"probcast.missing"
UNAVAILABLE_KEY = b"probcast.unavailable"


@dataclass
class PartitionState:
    """What a written partition lacks (empty: complete, or written before this existed)."""

    missing: list[str] = field(default_factory=list)
    unavailable: list[str] = field(default_factory=list)
    readable: bool = True


def partition(out: Path, init: pd.Timestamp) -> Path:
    """The partition file of cycle ``init``."""
    return out / f"init_date={init:%Y-%m-%d}" / f"cycle_{init:%H%M}.parquet"


def read_state(path: Path) -> PartitionState:
    """The state recorded in ``path``'s metadata (only the footer is read)."""
    try:
        meta = pq.read_schema(path).metadata or {}
        return PartitionState(
            [str(x) for x in json.loads(meta.get(MISSING_KEY, b"[]"))],
            [str(x) for x in json.loads(meta.get(UNAVAILABLE_KEY, b"[]"))],
        )
    except (OSError, ValueError, pa.ArrowException):
        return PartitionState(readable=False)


def values(table: pd.DataFrame | Path) -> int:
    """Number of forecast values (non-NaN ``fc_*`` cells) of a table or partition file."""
    if isinstance(table, Path):
        try:
            table = pd.read_parquet(table)
        except (OSError, ValueError, pa.ArrowException):
            return 0
    cols = [c for c in table.columns if str(c).startswith("fc_")]
    return int(table[cols].notna().to_numpy().sum()) if cols else 0


def write(path: Path, table: pd.DataFrame, missing: list[str], unavailable: list[str]) -> None:
    """Write ``table`` to ``path`` atomically, with its state in the Parquet metadata."""
    data = pa.Table.from_pandas(table, preserve_index=False)
    meta = dict(data.schema.metadata or {})
    meta[MISSING_KEY] = json.dumps(list(missing)).encode()
    meta[UNAVAILABLE_KEY] = json.dumps(list(unavailable)).encode()
    data = data.replace_schema_metadata(meta)
    with io.atomic_path(path) as tmp:
        pq.write_table(data, tmp)


def compact(out: Path) -> int:
    """Write ``table.parquet`` from every cycle file, one file at a time (out of core).

    Value columns that are NaN in every cycle are left out (``probcast train`` refuses an
    all-missing column); the summary notes list them per cycle as missing observations.
    """
    parts = sorted(glob.glob(str(out / "init_date=*" / "cycle_*.parquet")))
    if not parts:
        return 0
    empty: set[str] | None = None
    schema: pa.Schema | None = None
    seen: dict[str, tuple[float, str]] = {}
    for p in parts:
        t = pq.read_table(p)
        _same_periods(t.schema, p, seen)
        value_cols = [c for c in t.column_names if c.startswith(("obs_", "fc_"))]
        nan_cols = {
            c
            for c in value_cols
            if np.isnan(t[c].to_numpy(zero_copy_only=False).astype(float)).all()
        }
        empty = nan_cols if empty is None else empty & nan_cols
        schema = t.schema if schema is None else schema
    assert schema is not None
    target = pa.schema([schema.field(k) for k in schema.names if k not in (empty or set())])
    target = target.with_metadata(schema.metadata)  # pandas' attributes: the periods
    rows = 0
    with io.atomic_path(out / "table.parquet") as tmp:
        writer = pq.ParquetWriter(tmp, target)
        try:
            for p in parts:
                t = pq.read_table(p).select(target.names).cast(target)
                writer.write_table(t)
                rows += len(t)
        finally:
            writer.close()
    return rows


def with_periods(data: Any, accumulation_hours: float) -> Any:
    """``data`` (a table or Dataset) recording ``tp``'s period, ``accumulation_hours``."""
    names = data.columns if isinstance(data, pd.DataFrame) else data.data_vars
    has_tp = any(str(n) in ("fc_tp", "obs_tp") for n in names)
    return periods.recorded(data, {"tp": float(accumulation_hours)} if has_tp else {})


def check_periods(out: Path, expected: Mapping[str, float]) -> None:
    """Refuse a build into ``out`` whose cycle files hold other statistic periods.

    Called before any work: a changed ``accumulation_hours`` would otherwise add cycles of
    the new period next to the kept ones of the old.

    Raises:
        SourceError: Naming a cycle file, its period and the spec's.
    """
    seen: dict[str, tuple[float, str]] = {}
    for path in sorted(glob.glob(str(out / "init_date=*" / "cycle_*.parquet"))):
        _same_periods(pq.read_schema(path), path, seen)
    held = {var: hours for var, (hours, _) in seen.items()}
    if (var := periods.differ(held, expected)) is not None:
        hours, where = seen[var]
        raise SourceError(
            f"{where}: {var} is over {hours:g} h, but this spec's accumulation_hours is "
            f"{expected[var]:g}; build into a new folder (or keep accumulation_hours: "
            f"{hours:g})"
        )


def _same_periods(schema: pa.Schema, path: str, seen: dict[str, tuple[float, str]]) -> None:
    """Refuse cycle files of different statistic periods (a spec changed between runs)."""
    for var, hours in periods.of_schema(schema, path).items():
        before, where = seen.setdefault(var, (hours, path))
        if periods.differ({var: before}, {var: hours}):
            raise SourceError(
                f"{path}: {var} is over {hours:g} h, but {where} holds {before:g}-h {var} "
                "(accumulation_hours changed between builds into one folder); build into a "
                "new folder"
            )
