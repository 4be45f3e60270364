"""Kerchunk references over a GRIB archive: read it lazily as one dataset, no conversion.

``build_refs(paths, out)`` finds every GRIB message of the archive, writes one kerchunk
reference (JSON) per message with :func:`kerchunk.grib2.scan_grib` and combines them with
:class:`kerchunk.combine.MultiZarrToZarr` along ``time`` (initialisation) and ``step``.
The result, ``refs.json``, opens with :func:`open_refs` (``xr.open_dataset("reference://",
engine="zarr")``) as one dataset whose chunks are the GRIB messages themselves: reading a
field fetches that message's byte range and decodes it with ecCodes.

Messages are split with ecCodes (headers only), not with kerchunk's splitter, which reads
GRIB2 lengths only; so GRIB1 archives work too. Each message is handed to ``scan_grib`` as
an in-memory file and its references are pointed back at ``(url, offset, length)``.

Refused with a :class:`~probcast.sources.errors.SourceError` (never combined silently):
messages on different grids, and two messages of one variable at the same time and step
(other levels or ensemble members; choose with ``variables``). Messages kerchunk cannot
describe (reduced Gaussian grids) are skipped and listed in :attr:`Refs.skipped`.
"""

from __future__ import annotations

import json
import os
import uuid
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import eccodes
import fsspec
import xarray as xr

from probcast import io
from probcast.sources import fs
from probcast.sources.errors import SourceError
from probcast.sources.grib import init_time, message_headers, on_disk, steps
from probcast.sources.variables import grib_variable

KEEP = {"time", "step", "valid_time", "latitude", "longitude"}
"""Arrays kept besides the data variables (level and member scalars are dropped)."""


@dataclass
class Refs:
    """A combined reference set.

    Attributes:
        refs: kerchunk references (version 1), ready for ``reference://``.
        messages: Number of messages referenced.
        skipped: ``url@offset: why`` of messages left out.
    """

    refs: dict[str, Any]
    messages: int = 0
    skipped: list[str] = field(default_factory=list)


def is_refs(url: str) -> bool:
    """Whether ``url`` names a reference file (``.json``)."""
    return url.rstrip("/").lower().endswith(".json")


def _spans(url: str, storage_options: dict[str, Any]) -> Iterator[tuple[int, bytes]]:
    """``(offset, bytes)`` of every GRIB message of ``url`` (split by ecCodes)."""
    data = fs.read_bytes(url, storage_options)
    with on_disk(data) as tmp, open(tmp, "rb") as f:
        for h in message_headers(f, url):
            offset = int(eccodes.codes_get(h, "offset"))
            length = int(eccodes.codes_get(h, "totalLength"))
            yield offset, data[offset : offset + length]


def _header(blob: bytes) -> dict[str, Any]:
    h = eccodes.codes_new_from_message(blob)
    try:
        start, end = steps(h)
        return {
            "short_name": str(eccodes.codes_get(h, "shortName")),
            "level_type": str(eccodes.codes_get(h, "typeOfLevel")),
            "level": eccodes.codes_get(h, "level", ktype=float),
            "grid_type": str(eccodes.codes_get(h, "gridType")),
            "grid": str(eccodes.codes_get(h, "md5GridSection")),
            "init": init_time(h),
            "step": end,
            "start": start,
        }
    finally:
        eccodes.codes_release(h)


def _scan_message(blob: bytes, url: str, offset: int) -> dict[str, Any]:
    """The kerchunk references of one message, pointing at ``url`` from ``offset``."""
    mem = fsspec.filesystem("memory")
    path = f"/probcast-refs/{uuid.uuid4().hex}.grib"
    mem.pipe_file(path, blob)
    try:
        from kerchunk.grib2 import scan_grib

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            (one,) = scan_grib(f"memory://{path}")
    finally:
        mem.rm_file(path)
    refs = one["refs"]
    data_vars = [
        k.split("/")[0]
        for k, v in refs.items()
        if k.endswith("/.zarray") and '"grib"' in (v if isinstance(v, str) else json.dumps(v))
    ]
    drop = {k.split("/")[0] for k in refs if "/" in k} - KEEP - set(data_vars)
    out: dict[str, Any] = {}
    for key, value in refs.items():
        if key.split("/")[0] in drop:
            continue
        if isinstance(value, list):  # a chunk in the message: [template, 0, size]
            value = [url, offset, len(blob)]
        elif key.endswith("/.zattrs") and key.split("/")[0] in data_vars:
            attrs = json.loads(value)
            coords = attrs.get("coordinates", "").split()
            attrs["coordinates"] = " ".join(c for c in coords if c not in drop)
            value = json.dumps(attrs)
        out[key] = value
    return {"version": 1, "refs": out, "data_vars": data_vars}


def _absolute(url: str) -> str:
    return url if "://" in url else os.path.abspath(url)


def scan_archive(
    paths: str | Sequence[str],
    *,
    variables: Sequence[str] | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Refs:
    """References of every (wanted) message of the archive, combined into one dataset.

    Args:
        paths: Glob(s) or URL(s) of GRIB files.
        variables: Canonical variables to keep (``t2m``, ``u10``...; ``orog`` too);
            None keeps every message.
        storage_options: fsspec options.

    Raises:
        SourceError: No file or message, different grids, or duplicate messages.
    """
    so = dict(storage_options or {})
    urls = [
        _absolute(u) for u in fs.expand(paths, so) if not u.endswith((".idx", ".index", ".json"))
    ]
    wanted = None if variables is None else {*variables, "orog"}
    messages: list[dict[str, Any]] = []
    skipped: list[str] = []
    grids: dict[str, str] = {}
    seen: dict[tuple[str, Any, float], str] = {}
    for url in urls:
        for offset, blob in _spans(url, so):
            where = f"{url}@{offset}"
            head = _header(blob)
            var = grib_variable(head["short_name"], head["level_type"])
            if wanted is not None and var not in wanted:
                continue
            if head["grid_type"].startswith("reduced"):
                skipped.append(f"{where}: {head['grid_type']} grid (kerchunk needs a 2-D grid)")
                continue
            grids.setdefault(head["grid"], where)
            if len(grids) > 1:
                raise SourceError(
                    f"{where}: on a different grid from {next(iter(grids.values()))}; build "
                    "one reference file per grid"
                )
            one = _scan_message(blob, url, offset)
            for name in one["data_vars"]:
                key = (name, head["init"], head["step"])
                if key in seen:
                    raise SourceError(
                        f"{where}: {name} at {head['init']:%Y-%m-%d %H} UTC "
                        f"+{head['step']:g} h is also at {seen[key]} (a duplicate, another "
                        "level or member); keep one with 'variables' or split the archive"
                    )
                seen[key] = where
            messages.append({"version": 1, "refs": one["refs"]})
    if not messages:
        raise SourceError(f"{paths}: no GRIB message to reference ({'; '.join(skipped[:3])})")
    return Refs(refs=_combine(messages), messages=len(messages), skipped=skipped)


def _combine(messages: list[dict[str, Any]]) -> dict[str, Any]:
    if len(messages) == 1:
        return messages[0]
    from kerchunk.combine import MultiZarrToZarr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mzz = MultiZarrToZarr(
            messages,
            concat_dims=["time", "step"],
            identical_dims=["latitude", "longitude"],
            remote_protocol="file",
        )
        return dict(mzz.translate())


def build_refs(
    paths: str | Sequence[str],
    out: str | os.PathLike[str],
    *,
    variables: Sequence[str] | None = None,
    storage_options: dict[str, Any] | None = None,
) -> Refs:
    """Scan the archive (:func:`scan_archive`) and write ``out`` (JSON, atomically)."""
    refs = scan_archive(paths, variables=variables, storage_options=storage_options)
    io.write_text(Path(out), json.dumps(refs.refs))
    return refs


def open_refs(
    refs: str | os.PathLike[str] | dict[str, Any],
    storage_options: dict[str, Any] | None = None,
) -> xr.Dataset:
    """Open a reference file (or mapping) lazily as one dataset.

    Args:
        refs: Path/URL of ``refs.json`` or the references themselves.
        storage_options: fsspec options of the referenced GRIB files (and of the JSON).
    """
    so = dict(storage_options or {})
    target = refs if isinstance(refs, dict) else str(refs)
    if isinstance(target, dict):
        urls = [v[0] for v in target.get("refs", {}).values() if isinstance(v, list) and v]
    else:
        try:
            text = fs.read_bytes(target, so).decode("utf-8")
            target = json.loads(text)
        except (ValueError, UnicodeDecodeError) as err:
            raise SourceError(f"{refs}: not a kerchunk reference file ({err})") from None
        assert isinstance(target, dict)
        urls = [v[0] for v in target.get("refs", {}).values() if isinstance(v, list) and v]
    protocol = str(urls[0]).split("://")[0] if urls and "://" in str(urls[0]) else "file"
    try:
        return xr.open_dataset(
            "reference://",
            engine="zarr",
            decode_timedelta=True,
            backend_kwargs={
                "consolidated": False,
                "storage_options": {
                    "fo": target,
                    "remote_protocol": protocol,
                    "remote_options": so,
                },
            },
        )
    except (OSError, ValueError, KeyError) as err:
        raise SourceError(f"{refs}: cannot open the references ({err})") from None
