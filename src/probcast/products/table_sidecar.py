"""A CSV prediction table and its JSON sidecar ``<file>.json``: written and read as a pair.

A CSV cannot hold metadata, so the families and units of its columns are in the sidecar.
The two are two files, renamed into place one after the other: a process killed between
the two renames, or two processes writing one table at once, could leave the sidecar of
one run beside the CSV of another (a sidecar saying degF beside a table in degC, scored
as if it were degF). So the sidecar records the size and sha256 of the CSV it was written
with (``table_checksum``: ``{"bytes": ..., "sha256": ...}``, hashed while the CSV is
written), and :func:`read_sidecar` refuses a sidecar whose CSV is another: a
:class:`SidecarMismatch` naming both files and saying to rerun the prediction.

A sidecar without ``table_checksum`` (written by hand, or by an earlier version of
probcast) is read as it is, unchecked, as before. A CSV changed on purpose after it was
written (rows filtered) no longer matches its sidecar: delete the sidecar's
``table_checksum`` entry to vouch for the pair.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import IO, Any

import pandas as pd

from probcast import io

CHECKSUM_KEY = "table_checksum"
"""Sidecar entry with the size (``bytes``) and ``sha256`` of its CSV."""


class SidecarMismatch(ValueError):
    """A CSV and a sidecar that belong to different writes (the message names both)."""


class _HashingText:
    """A text sink for :meth:`pandas.DataFrame.to_csv`: UTF-8 bytes to a file, hashed."""

    def __init__(self, fh: IO[bytes]) -> None:
        self.fh = fh
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, text: str) -> int:
        data = text.encode("utf-8")
        self.digest.update(data)
        self.size += len(data)
        self.fh.write(data)
        return len(text)

    def flush(self) -> None:
        self.fh.flush()


def write_csv_pair(frame: pd.DataFrame, path: Path, meta: dict[str, Any], text: Any) -> None:
    """Write ``frame`` as CSV to ``path`` and ``meta`` (with the CSV's checksum) beside it.

    Both are written to temporaries first; then the sidecar is renamed into place, the CSV
    last. A failed write leaves the old pair; an interrupted or concurrent one may leave a
    new sidecar beside another CSV, which :func:`read_sidecar` refuses.

    Args:
        frame: The table (times in UTC; written with a ``Z``).
        path: The CSV.
        meta: The sidecar's entries.
        text: ``text(meta) -> str``: the sidecar's JSON text.
    """
    with io.atomic_path(path) as tmp:  # renamed onto ``path`` last, when the block ends
        with tmp.open("wb") as fh:
            sink = _HashingText(fh)
            frame.to_csv(sink, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")  # type: ignore[call-overload]
        check = {"bytes": sink.size, "sha256": sink.digest.hexdigest()}
        io.write_text(sidecar_path(path), text({**meta, CHECKSUM_KEY: check}))


def sidecar_path(path: str | Path) -> Path:
    """Where :func:`write_csv_pair` writes the sidecar of ``path``: ``<file>.json``."""
    p = Path(path)
    return p.with_name(p.name + ".json")


def read_sidecar(path: str | Path) -> dict[str, Any]:
    """The JSON sidecar of a prediction table (``{}`` when there is none).

    ``<file>.json``, else ``<stem>.json``. A sidecar that records a ``table_checksum`` is
    checked against ``path`` (its size, then its sha256).

    Raises:
        ValueError: The sidecar is not a JSON object.
        SidecarMismatch: It records another table than ``path`` (an interrupted or
            concurrent write).
    """
    p = Path(path)
    for cand in (sidecar_path(p), p.with_suffix(".json")):
        if cand != p and cand.exists():
            with cand.open() as fh:
                try:
                    meta = json.load(fh)
                except json.JSONDecodeError as err:
                    raise ValueError(f"{cand}: sidecar is not valid JSON ({err})") from None
            if not isinstance(meta, dict):
                raise ValueError(f"{cand}: sidecar must hold a JSON object, got {type(meta)}")
            if CHECKSUM_KEY in meta:
                _check_pair(p, cand, meta[CHECKSUM_KEY])
            return meta
    return {}


def _version(stat: Any) -> tuple[int, int, int]:
    return (stat.st_ino, stat.st_size, stat.st_mtime_ns) if stat else (0, 0, 0)


@functools.lru_cache(maxsize=32)
def _sha256(path: str, inode: int, size: int, mtime_ns: int) -> str:
    """sha256 of a file, once per version of it (verify reads units, then the table)."""
    return io.sha256_file(path)


def _check_pair(table: Path, sidecar: Path, recorded: Any) -> None:
    """Raise :class:`SidecarMismatch` unless ``table`` is the CSV ``recorded`` describes."""
    if not isinstance(recorded, dict) or not {"bytes", "sha256"} <= set(recorded):
        raise ValueError(
            f"{sidecar}: {CHECKSUM_KEY} must be {{'bytes': N, 'sha256': HEX}}, got {recorded!r}"
        )
    stat = table.stat() if table.is_file() else None
    size = stat.st_size if stat else None
    same = size == recorded["bytes"] and _sha256(str(table), *_version(stat)) == recorded["sha256"]
    if not same:
        raise SidecarMismatch(
            f"{sidecar}: this sidecar belongs to another version of {table} (it records a "
            f"CSV of {recorded['bytes']} bytes, sha256 {str(recorded['sha256'])[:12]}...; the "
            f"file has {size} bytes{'' if size != recorded['bytes'] else ', another sha256'}): "
            "the two were written by different runs (an interrupted or concurrent write); "
            f"rerun the prediction that writes {table} (or, if you changed the CSV yourself, "
            f"delete the sidecar's {CHECKSUM_KEY!r} entry)"
        )
