"""The monitor's memory: one SQLite file (``--state``, default ``monitor.sqlite``).

Tables: ``cases`` (one scored forecast case per variable, station, issue and lead: the
model's CRPS and PIT, the raw and EMOS CRPS, the raw error ``fc - obs``), ``files`` (the
forecast files done, every case scored or given up, by size and modification time, so a
rerun reads only new or changed files) and ``meta`` (JSON values: the fitted EMOS
references, the reference error statistics). Every update is one SQLite transaction, so a
killed run leaves the previous state; a case scored again (a re-issued forecast) replaces
the old one.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pandas as pd

CASE_COLUMNS = (
    "variable",
    "station",
    "init_time",
    "lead_time",
    "valid_time",
    "station_group",
    "obs",
    "crps",
    "crps_raw",
    "crps_emos",
    "pit",
    "err_raw",
)
_SCHEMA = """
CREATE TABLE IF NOT EXISTS cases (
    variable TEXT NOT NULL, station TEXT NOT NULL, init_time TEXT NOT NULL,
    lead_time REAL NOT NULL, valid_time TEXT, station_group TEXT, obs REAL, crps REAL,
    crps_raw REAL, crps_emos REAL, pit REAL, err_raw REAL,
    PRIMARY KEY (variable, station, init_time, lead_time));
CREATE INDEX IF NOT EXISTS cases_init ON cases (init_time);
CREATE TABLE IF NOT EXISTS files (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
"""Times are stored as UTC text in this format (sorts as time)."""


class MonitorState:
    """The SQLite state file of :mod:`probcast.monitor.skill`.

    Args:
        path: The SQLite file (created with its tables when absent).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=30)
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as err:
            raise ValueError(f"{self.path}: not a usable monitor state file ({err})") from None

    def close(self) -> None:
        """Close the connection."""
        self.db.close()

    def __enter__(self) -> MonitorState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- cases ------------------------------------------------------------------------
    def add_cases(self, cases: pd.DataFrame) -> int:
        """Insert (or replace) scored cases; returns how many."""
        if cases.empty:
            return 0
        rows = cases.loc[:, list(CASE_COLUMNS)].copy()
        for col in ("init_time", "valid_time"):
            rows[col] = pd.to_datetime(rows[col], utc=True).dt.strftime(TIME_FORMAT)
        values = rows.astype(object).where(rows.notna(), None).itertuples(index=False)
        marks = ", ".join("?" * len(CASE_COLUMNS))
        with self.db:
            self.db.executemany(
                f"INSERT OR REPLACE INTO cases ({', '.join(CASE_COLUMNS)}) VALUES ({marks})",
                list(values),
            )
        return len(rows)

    def cases(self, since: pd.Timestamp | None = None) -> pd.DataFrame:
        """Scored cases (issued after ``since`` when given), times as UTC datetimes."""
        query = f"SELECT {', '.join(CASE_COLUMNS)} FROM cases"
        params: tuple[Any, ...] = ()
        if since is not None:
            query += " WHERE init_time > ?"
            params = (pd.Timestamp(since).strftime(TIME_FORMAT),)
        frame = pd.read_sql_query(query, self.db, params=params)
        for col in ("init_time", "valid_time"):
            frame[col] = pd.to_datetime(frame[col], utc=True, format=TIME_FORMAT)
        for col in CASE_COLUMNS[6:]:
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype("float64")
        return frame

    # -- files ------------------------------------------------------------------------
    def file_done(self, path: Path) -> bool:
        """Whether ``path`` (same size and modification time) was fully scored."""
        st = path.stat()
        cur = self.db.execute("SELECT size, mtime_ns FROM files WHERE path=?", (str(path),))
        row = cur.fetchone()
        return row is not None and tuple(row) == (st.st_size, st.st_mtime_ns)

    def mark_done(self, path: Path) -> None:
        """Record ``path`` as done (every case scored, or given up after the grace period)."""
        st = path.stat()
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO files (path, size, mtime_ns) VALUES (?, ?, ?)",
                (str(path), st.st_size, st.st_mtime_ns),
            )

    # -- meta -------------------------------------------------------------------------
    def get(self, key: str) -> Any:
        """A stored JSON value, or None."""
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, value: Any) -> None:
        """Store a JSON value."""
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value))
            )
