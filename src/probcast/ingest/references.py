"""Kerchunk reference JSON for local NetCDF4/HDF5, NetCDF3 and GRIB files.

A reference file maps Zarr keys to byte ranges of the original files, so a collection of
files opens as one lazily read dataset without conversion (``open_gridded("refs.json")``).

GRIB: kerchunk's ``scan_grib`` splits a file by reading the GRIB2 length field, which loops
forever on GRIB1 messages and on trailing bytes after the last message. Messages are
therefore located here with ecCodes (which reads both editions) and handed to kerchunk's
per-message scanner.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from probcast import io
from probcast.ingest.gridded import GriddedReadError, check_grib, sniff_format

_GRIB_LOCK = threading.Lock()
_GRIB_CONCAT = ("time", "step", "number")
_IDENTICAL = (
    "latitude",
    "longitude",
    "x",
    "y",
    "heightAboveGround",
    "surface",
    "meanSea",
    "isobaricInhPa",
    "entireAtmosphere",
)


def _grib_messages(f: Any, skip: int = 0) -> Iterator[tuple[int, int, bytes]]:
    """Yield ``(offset, length, bytes)`` of every GRIB1/GRIB2 message of an open file."""
    import eccodes

    f.seek(0)
    buf = f.read()
    pos = part = 0
    while (start := buf.find(b"GRIB", pos)) >= 0:
        handle = eccodes.codes_new_from_message(buf[start:])
        try:
            size = int(eccodes.codes_get(handle, "totalLength"))
        finally:
            eccodes.codes_release(handle)
        yield start, size, buf[start : start + size]
        pos, part = start + size, part + 1
        if skip and part >= skip:
            return


def _grib_refs(path: Path) -> dict:
    import kerchunk.grib2
    from kerchunk.combine import MultiZarrToZarr

    check_grib(path)
    with _GRIB_LOCK:  # swap kerchunk's GRIB2-only splitter for the ecCodes one above
        original = kerchunk.grib2._split_file
        kerchunk.grib2._split_file = _grib_messages
        try:
            messages = [_fix_inline_keys(m) for m in kerchunk.grib2.scan_grib(str(path))]
        finally:
            kerchunk.grib2._split_file = original
    if len(messages) == 1:
        return messages[0]
    # every time-like scalar is a concat dim (constant ones get length 1; the reader squeezes
    # a length-1 'number'); kerchunk fails on scalars that are neither concat nor identical
    concat = [d for d in _GRIB_CONCAT if any(f"{d}/.zarray" in m["refs"] for m in messages)]
    identical = [d for d in _IDENTICAL if any(f"{d}/.zarray" in m["refs"] for m in messages)]
    with warnings.catch_warnings():  # constant time/step of a file triggers a length warning
        warnings.simplefilter("ignore", UserWarning)
        return MultiZarrToZarr(messages, concat_dims=concat, identical_dims=identical).translate()


def _fix_inline_keys(message: dict) -> dict:
    """Rename inlined n-D chunks ``var/0`` to ``var/0.0``: kerchunk labels tiny fields wrong."""
    refs = message["refs"]
    for key in [k for k in refs if k.endswith("/.zarray")]:
        name = key[: -len("/.zarray")]
        meta = refs[key] if isinstance(refs[key], dict) else json.loads(refs[key])
        ndim = len(meta["shape"])
        if ndim >= 2 and f"{name}/0" in refs:
            refs[f"{name}/" + ".".join(["0"] * ndim)] = refs.pop(f"{name}/0")
    return message


def _file_refs(path: Path) -> dict:
    fmt = sniff_format(path)
    if fmt == "netcdf4":
        from kerchunk.hdf import SingleHdf5ToZarr

        return SingleHdf5ToZarr(str(path), inline_threshold=300).translate()
    if fmt == "netcdf3":
        from kerchunk.netCDF3 import NetCDF3ToZarr

        return NetCDF3ToZarr(str(path), inline_threshold=300).translate()
    if fmt == "grib":
        return _grib_refs(path)
    raise GriddedReadError(
        f"{path}: cannot build references for format {fmt!r}; expected NetCDF4/HDF5, "
        "NetCDF3 or GRIB"
    )


def build_references(
    paths: Sequence[str | os.PathLike[str]],
    out_json: str | os.PathLike[str],
    *,
    concat_dim: str = "time",
) -> Path:
    """Write kerchunk references for ``paths`` (combined along ``concat_dim``) to ``out_json``.

    Args:
        paths: Local NetCDF4/HDF5, NetCDF3 or GRIB files. Several files must share their
            grid and variables; they are concatenated along ``concat_dim``.
        out_json: Output JSON path (written atomically).
        concat_dim: Dimension to concatenate several files along (NetCDF: usually the
            valid ``time``; GRIB: the reference ``time``).

    Returns:
        The written path; open it with :func:`probcast.ingest.gridded.open_gridded`.

    Raises:
        GriddedReadError: A file is missing, corrupted or of an unsupported format.
    """
    if not paths:
        raise ValueError("build_references needs at least one file")
    refs = [_file_refs(Path(p).resolve()) for p in paths]
    if len(refs) > 1:
        from kerchunk.combine import MultiZarrToZarr

        dims = {k.split("/")[0] for r in refs for k in r["refs"] if k.endswith("/.zarray")}
        identical = [d for d in _IDENTICAL if d in dims and d != concat_dim]
        # "cf:" decodes each file's own time units before concatenating
        combined = MultiZarrToZarr(
            refs,
            concat_dims=[concat_dim],
            identical_dims=identical,
            coo_map={concat_dim: f"cf:{concat_dim}"},
        ).translate()
    else:
        combined = refs[0]
    return io.write_text(Path(out_json), json.dumps(combined))
