"""Repeated keys of a streamed table: within one file and across the files of a dataset.

Training in memory refuses a table whose ``(station, init_time, lead_time)`` key is on two
rows (:func:`probcast.validate.validate_station_table`). Streaming reads a dataset directory
record batch by record batch and never holds its keys all at once, so
:class:`KeyLedger` checks them in bounded memory during the narrow pass of
:meth:`probcast.train.stream_source.ParquetSource.open`:

* within a file: the key hashes of its record batches (one batch is compared row by row by
  :func:`probcast.validate.validate_keys` already), dropped when the file is done;
* across files: each file's init times (and rows per init time) are kept, a few numbers a
  file. Two files can share a key only at an init time both hold; after the pass, only those
  files are read again (the key columns and what selects the usable rows), only their rows
  at shared init times are hashed, at most :data:`CHECK_ROWS` hashes at a time (more: in
  passes over disjoint ranges of hash values). A ``probcast data build`` folder holds one
  file per cycle: no init time is shared and nothing is read again.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from probcast import station_ids
from probcast.validate import ValidationError

KEYS = ("station", "init_time", "lead_time")
CHECK_ROWS = 1 << 23
"""Most key hashes held at once by the check across files (16 bytes each with the sorted
copy: 128 MiB)."""

_MIX = np.uint64(0x9E3779B97F4A7C15)
"""Odd multiplier mixing one column's hash into the next (2**64 / golden ratio)."""

Frames = Callable[[str], Iterator[pd.DataFrame]]
"""The usable rows of one file, canonical (:func:`~probcast.train.stream_source.canonical`),
record batch by record batch."""


def init_ns(frame: pd.DataFrame) -> np.ndarray:
    """``init_time`` of a canonical frame as integer UTC nanoseconds (any resolution)."""
    return np.asarray(frame["init_time"].array.as_unit("ns").asi8)


def key_hashes(frame: pd.DataFrame) -> np.ndarray:
    """64-bit hashes of the keys of a canonical frame, equal for equal keys in any file.

    The station is hashed as text (a categorical, integer, integral-float or text column
    of the same stations hashes alike, :mod:`probcast.station_ids`), the init time as UTC
    nanoseconds (any resolution) and the lead time as float hours; the three are mixed
    into one hash.
    """
    station = frame["station"]
    if isinstance(station.dtype, pd.CategoricalDtype):  # (each category hashed once)
        names = station_ids.as_text(pd.Series(station.cat.categories)).to_numpy(dtype=object)
        out: np.ndarray = pd.util.hash_array(names)[station.cat.codes.to_numpy()]
    else:
        if station.dtype == object or not pd.api.types.is_string_dtype(station.dtype):
            station = station_ids.as_text(station)  # (7, 7.0 and "7" alike; "str" fastest)
        out = pd.util.hash_pandas_object(station, index=False).to_numpy()
    out = np.asarray(out, dtype=np.uint64)
    for column in (init_ns(frame), frame["lead_time"].to_numpy(dtype="float64")):
        out = np.asarray(out * _MIX ^ pd.util.hash_array(column), dtype=np.uint64)
    return out


class KeyLedger:
    """The keys of the usable rows read by the narrow pass, checked file by file and across.

    Call :meth:`add` with every batch of usable rows of a file, :meth:`end_file` after its
    last, and :meth:`check_across` after the last file.

    Args:
        cap: Most key hashes held at once by :meth:`check_across` (default
            :data:`CHECK_ROWS`).
    """

    def __init__(self, cap: int | None = None) -> None:
        self.cap = cap or CHECK_ROWS
        self.files: list[tuple[str, np.ndarray, np.ndarray]] = []
        """Per file with usable rows: its name, its sorted init times (ns), rows of each."""
        self._hashes: list[np.ndarray] = []
        self._inits: list[np.ndarray] = []
        self._counts: list[np.ndarray] = []

    def add(self, frame: pd.DataFrame, hashed: bool) -> None:
        """Note the init times of a batch of usable rows (``hashed``: its key hashes too)."""
        if not len(frame):
            return
        if hashed:
            self._hashes.append(key_hashes(frame))
        ns = init_ns(frame)
        low, high = ns.min(), ns.max()
        if low == high:  # (one cycle: no sort)
            self._inits.append(np.array([low]))
            self._counts.append(np.array([len(ns)]))
        else:
            inits, counts = np.unique(ns, return_counts=True)
            self._inits.append(inits)
            self._counts.append(counts)

    def end_file(self, file: str) -> None:
        """Refuse a key two batches of ``file`` hold; keep the file's init times.

        Raises:
            ValidationError: Naming the file and a repeated key.
        """
        hashes, self._hashes = self._hashes, []
        if len(hashes) > 1 and _repeats(np.concatenate(hashes)):
            _refuse_within(file)  # (returns: a hash collision)
        if self._inits:
            inits, at = np.unique(np.concatenate(self._inits), return_inverse=True)
            counts = np.bincount(at, weights=np.concatenate(self._counts)).astype(np.int64)
            self.files.append((file, inits, counts))
        self._inits, self._counts = [], []

    def init_times(self) -> list[pd.Timestamp]:
        """The sorted init times of the usable rows of all files."""
        if not self.files:
            return []
        ns = np.unique(np.concatenate([inits for _, inits, _ in self.files]))
        return list(pd.to_datetime(ns, utc=True))

    def check_across(self, frames: Frames, where: str) -> None:
        """Refuse a key that two files hold among their usable rows.

        Args:
            frames: Reads one file's usable rows again (only files sharing an init time).
            where: The dataset (named in the message).

        Raises:
            ValidationError: Naming both files and an example key.
        """
        if len(self.files) < 2:
            return
        every = np.concatenate([inits for _, inits, _ in self.files])
        values, held = np.unique(every, return_counts=True)
        shared = values[held > 1]
        if not len(shared):
            return
        involved, rows = [], 0
        for i, (_, inits, counts) in enumerate(self.files):
            at = np.isin(inits, shared, assume_unique=True)
            if at.any():
                involved.append(i)
                rows += int(counts[at].sum())
        parts = max(1, math.ceil(rows / self.cap))
        for part in range(parts):
            hashes, owners = [], []  # (owners: the file of each array of hashes)
            for i in involved:
                for h in _shared_hashes(frames(self.files[i][0]), shared, part, parts):
                    hashes.append(h)
                    owners.append(i)
            if hashes:
                self._refuse_across(hashes, owners, frames, where, exact=parts == 1)

    def _refuse_across(
        self, hashes: list[np.ndarray], owners: list[int], frames: Frames, where: str, exact: bool
    ) -> None:
        """Refuse a hash of ``hashes`` two files hold (``hashes`` is emptied)."""
        sizes = [len(h) for h in hashes]
        every = np.concatenate(hashes)
        hashes.clear()
        ordered = np.sort(every)
        repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
        del ordered
        if not len(repeated):  # (the usual outcome: no file of another's owner needed)
            return
        at = np.isin(every, repeated)
        found, owner = every[at], np.repeat(np.asarray(owners, dtype=np.int32), sizes)[at]
        order = np.lexsort((owner, found))
        found, owner = found[order], owner[order]
        twice = np.flatnonzero((found[1:] == found[:-1]) & (owner[1:] != owner[:-1]))
        n = f"{'' if exact else 'at least '}{len(np.unique(found[twice]))}"  # (this pass's)
        for i in twice[:10]:  # (a key not found in both files: a hash collision)
            first, second = self.files[owner[i]][0], self.files[owner[i + 1]][0]
            key = _key_of(frames(first), found[i])
            if key is not None and key == _key_of(frames(second), found[i]):
                station, init, lead = key
                raise ValidationError(
                    f"{second}: {n} (station, init_time, lead_time) key(s) of its usable rows "
                    f"are in {first} too, e.g. station={station!r}, init_time="
                    f"{pd.Timestamp(init, tz='UTC')}, lead_time={lead:g} h; expected one row "
                    f"per key in {where} (two files of one cycle, or a file copied twice?)"
                )


def _repeats(hashes: np.ndarray) -> bool:
    every = np.sort(hashes)
    return bool((every[1:] == every[:-1]).any())


def _shared_hashes(
    frames: Iterable[pd.DataFrame], shared: np.ndarray, part: int, parts: int
) -> Iterator[np.ndarray]:
    """Key hashes of the rows at ``shared`` init times (of hash range ``part`` of ``parts``)."""
    for frame in frames:
        ns = init_ns(frame)
        keep = shared[np.searchsorted(shared, ns).clip(max=len(shared) - 1)] == ns
        if not keep.any():
            continue
        h = key_hashes(frame if keep.all() else frame[keep])
        yield h if parts == 1 else h[h % np.uint64(parts) == part]


def _key_of(frames: Iterable[pd.DataFrame], wanted: Any) -> tuple[str, int, float] | None:
    """The key whose hash is ``wanted`` (``None``: none)."""
    for frame in frames:
        at = np.flatnonzero(key_hashes(frame) == wanted)
        if len(at):
            row = frame.iloc[int(at[0])]
            return str(row["station"]), int(init_ns(frame)[at[0]]), float(row["lead_time"])
    return None


def _refuse_within(file: str) -> None:
    """Re-read the keys of ``file`` to name a repeated one (none found: a hash collision).

    Raises:
        ValidationError: Naming the file and a repeated key.
    """
    from probcast.train.stream_source import canonical

    keys = canonical(pq.read_table(file, columns=list(KEYS)).to_pandas())[list(KEYS)]
    dup = keys[keys.duplicated(keep=False)]
    if len(dup):
        row = dup.iloc[0]
        raise ValidationError(
            f"{file}: {len(dup)} rows of different record batches share keys, e.g. "
            f"station={row['station']!r}, init_time={row['init_time']}, lead_time="
            f"{row['lead_time']:g} h; expected one row per (station, init_time, lead_time)"
        )
