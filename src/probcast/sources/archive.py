"""A user's own NWP archive: GRIB files (any layout) or NetCDF/Zarr, local or remote.

``paths`` is a glob or a list of globs/URLs (``/data/ifs/*.grib``, ``s3://bucket/run/*``,
``https://host/file.grib2``). GRIB files are inventoried once: from a sibling ``.idx`` or
``.index`` when there is one (nothing else is read), otherwise by scanning the message
headers (the file is read once). The inventory maps (cycle, variable, step) to byte
ranges, so each cycle then fetches only its own messages. The inventory is cached as
Parquet (keyed by URL and size) so reruns do not rescan the archive.

A GRIB file that cannot be read (cut short, corrupt, gone, an HTTP error) does not stop a
build: the fields of a cycle that it should give are counted as missing for that cycle,
with a note naming the file and the error, as files that cannot be read are
(:meth:`~probcast.sources.cycle.CycleFields.unavailable_file`: the cycle is rebuilt by a
rerun). A message that cannot be fetched or decoded is missing for its cycle; a file whose
inventory scan fails keeps the messages read before the failure, is noted in their cycles
(in every cycle when none was read: its cycle is unknown) and is scanned again next time.

NetCDF and Zarr files are opened lazily with xarray and normalised by
:func:`probcast.ingest.normalise.normalise` (canonical ``fc_<var>`` on
``forecast_reference_time`` x ``forecast_period``); only station points are loaded.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import eccodes
import numpy as np
import pandas as pd
from fsspec.implementations.local import LocalFileSystem

from probcast import io
from probcast.sources import fs
from probcast.sources.area import Area, crop
from probcast.sources.cycle import CycleFields
from probcast.sources.errors import SourceError
from probcast.sources.grib import Field, init_time, iter_fields, message_headers, on_disk, steps
from probcast.sources.index import IndexRecord, parse_index
from probcast.sources.nwp import NwpSource
from probcast.sources.remote import ECMWF_PARAMS, NOAA_FIELDS, noaa_wanted
from probcast.sources.variables import grib_variable
from probcast.sources.xarray_points import XarrayFiles

GRIB_SUFFIXES = (".grib", ".grib1", ".grib2", ".grb", ".grb2", "")
XARRAY_SUFFIXES = (".nc", ".nc4", ".netcdf", ".zarr", ".h5", ".json")
COLUMNS = ["url", "offset", "length", "variable", "init_time", "start_step", "end_step"]


def _index_variable(rec: IndexRecord) -> str | None:
    if rec.level == "sfc" or rec.level.startswith("sfc/"):
        return next((v for v, params in ECMWF_PARAMS.items() if rec.variable in params), None)
    return next((v for v in NOAA_FIELDS if noaa_wanted(rec, v)), None)


def _index_rows(url: str, records: list[IndexRecord]) -> list[dict[str, Any]]:
    rows = []
    for rec in records:
        var = _index_variable(rec)
        if var is None or len(rec.init) < 10:
            continue
        start = 0.0 if var == "tp" and rec.start_step == rec.end_step else rec.start_step
        rows.append(
            {
                "url": url,
                "offset": rec.offset,
                "length": -1 if rec.length is None else rec.length,
                "variable": var,
                "init_time": pd.Timestamp(f"{rec.init[:8]}T{rec.init[8:10]}", tz="UTC"),
                "start_step": start,
                "end_step": rec.end_step,
            }
        )
    return rows


def scan_grib(
    path: str, url: str, rows: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Inventory a local GRIB file by its message headers.

    Args:
        path: The local file.
        url: Its name in the rows and messages.
        rows: A list to add the rows to (it keeps those read before an error).

    Raises:
        SourceError: If a message cannot be read, or the file is not GRIB (names ``url``).
    """
    rows = [] if rows is None else rows
    with open(path, "rb") as f:
        for h in message_headers(f, url):
            var = grib_variable(
                eccodes.codes_get(h, "shortName"), eccodes.codes_get(h, "typeOfLevel")
            )
            if var is None:
                continue
            start, end = steps(h)
            rows.append(
                {
                    "url": url,
                    "offset": int(eccodes.codes_get(h, "offset")),
                    "length": int(eccodes.codes_get(h, "totalLength")),
                    "variable": var,
                    "init_time": init_time(h),
                    "start_step": 0.0 if var == "tp" and start == end else start,
                    "end_step": end,
                }
            )
    if not rows and os.path.getsize(path) > 0 and b"GRIB" not in Path(path).read_bytes()[:4096]:
        raise SourceError(f"{url}: not a GRIB file (no 'GRIB' marker in its first bytes)")
    return rows


class CroppedFiles(XarrayFiles):
    """:class:`XarrayFiles` whose datasets are cropped to ``area`` (lazily, when opened)."""

    def __init__(
        self,
        urls: Sequence[str],
        storage_options: dict[str, Any],
        method: str = "nearest",
        area: Area | None = None,
    ) -> None:
        super().__init__(urls, storage_options, method)
        self.area = area
        self._cropped: set[str] = set()

    def dataset(self, url: str) -> Any:
        """The file with normalised time axes, cropped to the area (opened once)."""
        ds = super().dataset(url)
        if url not in self._cropped:
            ds = self._open[url] = crop(ds, self.area)
            self._cropped.add(url)
        return ds


class Archive(NwpSource):
    """A GRIB/NetCDF/Zarr archive.

    Args:
        paths: Glob(s) or URL(s).
        storage_options: fsspec options.
        cache_dir: Folder for the cached inventory (None: no cache).
        method: ``nearest`` or ``bilinear`` for NetCDF/Zarr/reference files (GRIB files
            read by byte range take the nearest grid point).
        area: Build area: NetCDF/Zarr/reference datasets are cropped to it before loading
            (GRIB messages are fetched and decoded whole).
    """

    name = "archive"
    gives_orography = True

    def __init__(
        self,
        paths: str | Sequence[str],
        storage_options: dict[str, Any] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        method: str = "nearest",
        area: Area | None = None,
    ) -> None:
        super().__init__(storage_options)
        self.urls = [
            u for u in fs.expand(paths, self.storage_options) if not u.endswith((".idx", ".index"))
        ]
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.xarray = CroppedFiles(
            [u for u in self.urls if u.rstrip("/").lower().endswith(XARRAY_SUFFIXES)],
            self.storage_options,
            method,
            area,
        )
        self._inventory: pd.DataFrame | None = None
        self.unreadable: dict[str, tuple[str, frozenset[pd.Timestamp]]] = {}
        """GRIB files whose inventory failed: ``url -> (note, cycles of the rows read)``."""
        grib = [u for u in self.urls if u not in self.xarray.urls]
        if method == "bilinear" and grib:
            raise SourceError(
                f"{grib[0]}: nwp.method bilinear reads NetCDF/Zarr or kerchunk references; "
                "build references of the GRIB files first (probcast data refs --archive "
                "'GLOB' --out refs.json) and give refs.json as nwp.paths"
            )

    def _sibling_index(self, url: str) -> str | None:
        for cand in (url + ".idx", url + ".index", url.removesuffix(".grib2") + ".index"):
            if cand != url and fs.exists(cand, self.storage_options):
                return cand
        return None

    def _file_rows(self, url: str, rows: list[dict[str, Any]]) -> None:
        index = self._sibling_index(url)
        if index is not None:
            text = fs.read_bytes(index, self.storage_options).decode("utf-8", "replace")
            rows += _index_rows(url, parse_index(text, source=index))
            return
        fsys, path = fs.filesystem(url, self.storage_options)
        if isinstance(fsys, LocalFileSystem):
            scan_grib(path, url, rows)
            return
        # ecCodes scans headers from a FILE*: a remote file is read once into a temporary.
        with on_disk(fs.read_bytes(url, self.storage_options)) as tmp:
            scan_grib(tmp, url, rows)

    def _cached_rows(self, url: str, rows: list[dict[str, Any]]) -> None:
        """Add the file's rows to ``rows`` (cached only when the whole file was read)."""
        if self.cache_dir is None:
            self._file_rows(url, rows)
            return
        fsys, path = fs.filesystem(url, self.storage_options)
        size = fsys.size(path)
        key = hashlib.sha256(f"{url}|{size}".encode()).hexdigest()[:24]
        cached = self.cache_dir / f"{key}.parquet"
        if cached.exists():
            rows += pd.read_parquet(cached).to_dict("records")  # type: ignore[arg-type]
            return
        self._file_rows(url, rows)
        frame = pd.DataFrame(rows, columns=COLUMNS)
        io.write_with(cached, lambda tmp: frame.to_parquet(tmp, index=False))

    def inventory(self) -> pd.DataFrame:
        """One row per usable GRIB message: url, byte range, variable, cycle, steps.

        A file that cannot be read adds the rows read before the error, and goes to
        :attr:`unreadable` (see the module docstring).
        """
        if self._inventory is None:
            rows: list[dict[str, Any]] = []
            for url in self.urls:
                if url.rstrip("/").lower().endswith(XARRAY_SUFFIXES):
                    continue
                found: list[dict[str, Any]] = []
                try:
                    self._cached_rows(url, found)
                except (SourceError, OSError) as err:  # cut short, corrupt, gone
                    why = " ".join(str(err).split())
                    why = why if why.startswith(url) else f"{url}: {why}"
                    cycles = frozenset(pd.Timestamp(r["init_time"]) for r in found)
                    self.unreadable[url] = (why, cycles)
                rows += found
            inv = pd.DataFrame(rows, columns=COLUMNS)
            inv["init_time"] = pd.to_datetime(inv["init_time"], utc=True)
            self._inventory = inv
        return self._inventory

    def cycles(self, start: pd.Timestamp, end: pd.Timestamp, hours: Sequence[int]) -> list[Any]:
        """Cycles to build: every ``hours`` cycle of the period, else every one found.

        With ``hours`` given, a cycle the archive lacks is built (and reported missing).
        """
        if hours:
            return super().cycles(start, end, hours)
        found = set(self.inventory()["init_time"]) | set(self.xarray.init_times())
        if not found and self.unreadable:
            why = next(iter(self.unreadable.values()))[0]
            raise SourceError(f"no readable GRIB message in the archive; {why}")
        return sorted(t for t in found if start <= t <= end)

    def cycle(
        self,
        init: pd.Timestamp,
        leads: Sequence[float],
        variables: Sequence[str],
        lat: np.ndarray,
        lon: np.ndarray,
        *,
        accumulation_hours: float,
    ) -> CycleFields:
        """Read the cycle's messages (byte ranges) and the NetCDF/Zarr points."""
        out = CycleFields(init_time=init)
        inv = self.inventory()
        steps = {float(s) for s in leads} | {float(s) - accumulation_hours for s in leads}
        wanted = {*variables, "orog"}
        sel = inv[
            (inv["init_time"] == init)
            & inv["variable"].isin(wanted)
            & (inv["end_step"].isin(steps) | (inv["variable"] == "orog"))
        ]
        for why, cycles in self.unreadable.values():
            if init in cycles:
                out.unavailable_file(f"{why}; its messages from there on: missing NWP")
            elif not cycles:
                out.unavailable_file(f"{why}; its cycle is unknown: missing NWP of every cycle")
        for url, rows in sel.groupby("url", sort=True):
            out.extend(self._fields(str(url), rows, lat, lon, out), source=str(url))
        self.xarray.add_cycle(out, init, leads, variables, lat, lon)
        if sel.empty and not self.xarray.urls:
            out.missing.append(f"no message of {sorted(wanted)} for cycle {init:%Y-%m-%d %H} UTC")
        return out

    def _fields(
        self, url: str, rows: pd.DataFrame, lat: np.ndarray, lon: np.ndarray, out: CycleFields
    ) -> list[Field]:
        """The decoded messages ``rows`` of ``url``; one that cannot be read is noted in ``out``."""
        ranges: dict[tuple[int, int | None], set[str]] = {}
        for o, n, var in zip(rows["offset"], rows["length"], rows["variable"], strict=True):
            ranges.setdefault((int(o), None if n < 0 else int(o + n)), set()).add(str(var))
        fields: list[Field] = []
        for span, names in sorted(ranges.items(), key=lambda item: item[0][0]):
            try:
                blobs = fs.read_ranges(url, [span], self.storage_options)
                fields += iter_fields(blobs, lat, lon, source=url)
            except SourceError as err:  # cut short, corrupt, gone: missing for this cycle
                out.unavailable_file(f"{err}; {', '.join(sorted(names))}: missing NWP")
        return fields
