"""Decode GRIB messages (GRIB1 or GRIB2, bytes from any source) to values at stations.

Only station values are kept: each message is decoded, sampled at the stations' nearest
grid points and released, so memory holds one field at a time whatever the archive size.

Repairs, documented in docs/sources.md:

* missing points: ecCodes returns the key ``missingValue`` (9999) where a bitmap or
  complex-packing missing-value management marks a point missing (the GFS sample has
  409080 such points and no bitmap); when ``numberOfMissing`` > 0 those values become NaN.
* multi-field messages (RAP/NAM ``n.m`` index lines) are split with ecCodes' multi-field
  support, and their fields numbered (``submessage``) in message order.
* a station farther from its nearest grid point than the grid spacing there is outside
  the domain: its value is NaN (e.g. a European station in an HRRR file).
"""

from __future__ import annotations

import os
import tempfile
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import eccodes
import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from probcast.geo import unit_vectors
from probcast.sources.errors import SourceError

_CACHE_SIZE = 8
_grids: OrderedDict[str, tuple[cKDTree, np.ndarray]] = OrderedDict()
_points: OrderedDict[tuple[str, bytes, bytes], tuple[np.ndarray, np.ndarray]] = OrderedDict()


@dataclass
class Field:
    """One GRIB field sampled at the stations.

    Attributes:
        short_name: ecCodes ``shortName`` (``2t``, ``tp``, ``10fg6``).
        level_type: ecCodes ``typeOfLevel``.
        level: Level value.
        init_time: Initialisation (UTC, tz-aware).
        start_step: Start of the period (hours; equals ``end_step`` when instantaneous).
        end_step: Forecast step (hours).
        step_type: ecCodes ``stepType`` (``instant``, ``accum``, ``max``, ``min``, ``avg``).
        units: ecCodes ``units``.
        values: float64 values at the stations (NaN: missing or outside the grid).
        submessage: Field number inside its message (1-based).
    """

    short_name: str
    level_type: str
    level: float
    init_time: pd.Timestamp
    start_step: float
    end_step: float
    step_type: str
    units: str
    values: np.ndarray
    submessage: int = 1


def _grid(handle: int, key: str) -> tuple[cKDTree, np.ndarray]:
    if key in _grids:
        _grids.move_to_end(key)
        return _grids[key]
    lat = eccodes.codes_get_double_array(handle, "latitudes")
    lon = eccodes.codes_get_double_array(handle, "longitudes")
    xyz = unit_vectors(lat, lon)
    tree = cKDTree(xyz)
    _grids[key] = (tree, xyz)
    if len(_grids) > _CACHE_SIZE:
        _grids.popitem(last=False)
    return tree, xyz


def nearest_points(
    handle: int, key: str, lat: np.ndarray, lon: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the stations' nearest grid points and whether each is inside the grid.

    Found once per grid and station set (every message of a file shares them).
    """
    lat, lon = np.asarray(lat, dtype="float64"), np.asarray(lon, dtype="float64")
    cached = (key, lat.tobytes(), lon.tobytes())
    if cached in _points:
        _points.move_to_end(cached)
        return _points[cached]
    tree, xyz = _grid(handle, key)
    dist, idx = tree.query(unit_vectors(lat, lon))
    inside = dist <= local_reach(tree, xyz, np.atleast_1d(idx)) + 1e-12
    _points[cached] = (idx, inside)
    if len(_points) > _CACHE_SIZE:
        _points.popitem(last=False)
    return idx, inside


NEIGHBOURS = 128
"""Neighbours searched for a node's grid step in each direction (on a regular latitude/
longitude grid the next row is 64 columns away at 89N)."""


def local_reach(tree: cKDTree, xyz: np.ndarray, nodes: np.ndarray) -> np.ndarray:
    """The grid step at each node: its largest nearest-neighbour distance over 4 directions.

    The directions are the north, south, east and west quadrants of its tangent plane
    (chord lengths). A station farther than that from its nearest node lies outside the
    grid. The nearest neighbour alone is the wrong step on a latitude/longitude grid: along
    a parallel it is
    ``dlon cos(lat)``, less than half the row step north of about 60N, so stations between
    two rows were taken for outside.
    """
    k = min(NEIGHBOURS + 1, len(xyz))
    if k < 2:
        return np.full(len(nodes), np.inf)
    dist, near = tree.query(xyz[nodes], k=k)
    p = xyz[nodes]
    lon = np.arctan2(p[:, 1], p[:, 0])
    lat = np.arcsin(np.clip(p[:, 2], -1.0, 1.0))
    east = np.stack([-np.sin(lon), np.cos(lon), np.zeros_like(lon)], axis=-1)
    north = np.stack([-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)], axis=-1)
    d = xyz[near[:, 1:]] - p[:, None, :]
    angle = np.arctan2((d * north[:, None]).sum(-1), (d * east[:, None]).sum(-1))
    sector = np.floor((angle + np.pi / 4) / (np.pi / 2)).astype(int) % 4
    reach = np.zeros(len(nodes))
    for s in range(4):
        step = np.where(sector == s, dist[:, 1:], np.inf).min(axis=1)
        reach = np.maximum(reach, np.where(np.isfinite(step), step, 0.0))
    return reach


def init_time(handle: int) -> pd.Timestamp:
    """Initialisation (UTC) of a GRIB message."""
    date = eccodes.codes_get(handle, "dataDate", ktype=int)
    hhmm = eccodes.codes_get(handle, "dataTime", ktype=int)
    return pd.Timestamp(f"{date:08d}T{hhmm:04d}", tz="UTC")


def steps(handle: int) -> tuple[float, float]:
    """``(start, end)`` step of a GRIB message, hours (equal when instantaneous)."""
    # Steps in minutes so sub-hourly HRRR steps stay exact, then hours as float.
    eccodes.codes_set(handle, "stepUnits", "m")
    start = eccodes.codes_get(handle, "startStep", ktype=int) / 60.0
    end = eccodes.codes_get(handle, "endStep", ktype=int) / 60.0
    return start, end


@contextmanager
def on_disk(data: bytes) -> Iterator[str]:
    """``data`` in a temporary file, removed on exit.

    ecCodes reads (multi-field) messages only from a FILE*; a temporary file is the
    portable way to hand it bytes that came from a remote file or range request.
    """
    fd, tmp = tempfile.mkstemp(suffix=".grib")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        yield tmp
    finally:
        os.unlink(tmp)


def _field(handle: int, lat: np.ndarray, lon: np.ndarray, sub: int) -> Field:
    start, end = steps(handle)
    try:
        key = str(eccodes.codes_get(handle, "md5GridSection"))
    except eccodes.KeyValueNotFoundError:  # pragma: no cover - very old GRIB1
        key = str(eccodes.codes_get(handle, "gridType")) + str(
            eccodes.codes_get(handle, "numberOfPoints")
        )
    idx, inside = nearest_points(handle, key, lat, lon)
    values = eccodes.codes_get_double_array(handle, "values")[idx]
    if eccodes.codes_get(handle, "numberOfMissing", ktype=int) > 0:
        values = np.where(
            values == eccodes.codes_get_double(handle, "missingValue"), np.nan, values
        )
    values = np.where(inside, values, np.nan)
    return Field(
        short_name=str(eccodes.codes_get(handle, "shortName")),
        level_type=str(eccodes.codes_get(handle, "typeOfLevel")),
        level=float(eccodes.codes_get(handle, "level", ktype=float)),
        init_time=init_time(handle),
        start_step=start,
        end_step=end,
        step_type=str(eccodes.codes_get(handle, "stepType")),
        units=str(eccodes.codes_get(handle, "units")),
        values=values.astype("float64"),
        submessage=sub,
    )


def iter_fields(
    blobs: Iterable[bytes], lat: np.ndarray, lon: np.ndarray, *, source: str
) -> Iterator[Field]:
    """Decode GRIB bytes (whole messages, any number per blob) and sample them at stations.

    Args:
        blobs: GRIB bytes, e.g. byte ranges fetched through an index or whole files.
        lat: Station latitudes (degrees).
        lon: Station longitudes (degrees).
        source: File or URL, for error messages.

    Raises:
        SourceError: If a blob holds no GRIB message or a message cannot be decoded.
    """
    lat = np.asarray(lat, dtype="float64")
    lon = np.asarray(lon, dtype="float64")
    for blob in blobs:
        if b"GRIB" not in blob[:1024]:
            raise SourceError(f"{source}: expected a GRIB message, got {blob[:16]!r}...")
        with on_disk(blob) as tmp:
            yield from _decode_file(tmp, lat, lon, source)


def message_headers(f: Any, source: str) -> Iterator[Any]:
    """The header handle of every GRIB message of the open file ``f`` (released after use).

    Raises:
        SourceError: If a message cannot be read (names ``source``).
    """
    while True:
        try:
            h = eccodes.codes_grib_new_from_file(f, headers_only=True)
        except eccodes.GribInternalError as err:
            raise SourceError(f"{source}: not a readable GRIB file ({err})") from None
        if h is None:
            return
        try:
            yield h
        finally:
            eccodes.codes_release(h)


def _decode_file(path: str, lat: np.ndarray, lon: np.ndarray, source: str) -> Iterator[Field]:
    eccodes.codes_grib_multi_support_on()
    try:
        with open(path, "rb") as f:
            last_offset, sub = -1, 0
            while True:
                try:
                    handle = eccodes.codes_grib_new_from_file(f)
                except eccodes.GribInternalError as err:
                    raise SourceError(f"{source}: GRIB message cannot be decoded ({err})") from None
                if handle is None:
                    break
                try:
                    offset = int(eccodes.codes_get(handle, "offset"))
                    sub = sub + 1 if offset == last_offset else 1
                    last_offset = offset
                    yield _field(handle, lat, lon, sub)
                except eccodes.GribInternalError as err:
                    raise SourceError(f"{source}: GRIB message cannot be decoded ({err})") from None
                finally:
                    eccodes.codes_release(handle)
    finally:
        eccodes.codes_grib_multi_support_off()
