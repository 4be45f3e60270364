"""The build area: ``area: [north, west, south, east]`` (degrees, the ECMWF/CDS convention).

Longitudes may be given in -180..180 or 0..360; an area whose west edge is east of its east
edge (``[70, 170, 40, -170]`` or ``[70, 170, 40, 190]``) crosses the antimeridian.
:class:`Area` tells which stations are inside (the build counts the others in its summary)
and crops a NetCDF/Zarr/reference dataset to the grid rows and columns around the area
before anything is loaded (:func:`crop`). GRIB messages read by byte range are the smallest
unit a range can fetch and are decoded whole; there the area only removes stations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from probcast.geo import is_global
from probcast.sources.errors import SourceError

MARGIN = 2
"""Grid points kept beyond the area on each side, so that the nearest grid point and the
bilinear cell of every station inside the area are inside the crop."""


@dataclass(frozen=True)
class Area:
    """A latitude/longitude box.

    Attributes:
        north: Northern edge (degrees, > ``south``).
        west: Western edge (degrees east, -180..360).
        south: Southern edge (degrees).
        east: Eastern edge (degrees east, -180..360).
    """

    north: float
    west: float
    south: float
    east: float

    @property
    def width(self) -> float:
        """Longitude extent (degrees, 0..360), eastwards from ``west``."""
        if abs(self.east - self.west) >= 360.0:
            return 360.0
        width = (self.east - self.west) % 360.0
        return 360.0 if width == 0.0 and self.east != self.west else width

    def contains(self, lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
        """Whether each point is inside the area (edges included)."""
        lat = np.asarray(lat, dtype="float64")
        lon = np.asarray(lon, dtype="float64")
        east_of_west = (lon - self.west) % 360.0
        return (lat >= self.south) & (lat <= self.north) & (east_of_west <= self.width)

    def as_list(self) -> list[float]:
        """``[north, west, south, east]`` as given."""
        return [self.north, self.west, self.south, self.east]


def parse_area(value: Any, source: str) -> Area | None:
    """Validate a spec's ``area`` field (None when absent).

    Raises:
        SourceError: Naming the spec file and the field, with what was expected.
    """
    if value is None:
        return None
    where = f"{source}: area"
    expected = "expected [north, west, south, east] in degrees, e.g. [72, -25, 34, 45]"
    if not isinstance(value, list | tuple) or len(value) != 4:
        raise SourceError(f"{where}: {value!r}: {expected}")
    try:
        north, west, south, east = (float(v) for v in value)
    except (TypeError, ValueError):
        raise SourceError(f"{where}: {value!r}: {expected}") from None
    if not all(np.isfinite([north, west, south, east])):
        raise SourceError(f"{where}: {value!r}: {expected} (finite numbers)")
    for name, lat in (("north", north), ("south", south)):
        if not -90.0 <= lat <= 90.0:
            raise SourceError(f"{where}: {name} {lat:g} is outside -90..90")
    for name, lon in (("west", west), ("east", east)):
        if not -180.0 <= lon <= 360.0:
            raise SourceError(f"{where}: {name} {lon:g} is outside -180..360")
    if north <= south:
        raise SourceError(f"{where}: north {north:g} must be greater than south {south:g}")
    return Area(north, west, south, east)


def _span(mask: np.ndarray, margin: int) -> slice | None:
    """The index slice covering ``mask`` plus ``margin``; None when it is not contiguous."""
    idx = np.flatnonzero(mask)
    if idx.size == 0 or idx[-1] - idx[0] + 1 != idx.size:
        return None
    return slice(max(int(idx[0]) - margin, 0), min(int(idx[-1]) + margin + 1, mask.size))


def crop(ds: xr.Dataset, area: Area | None, margin: int = MARGIN) -> xr.Dataset:
    """``ds`` restricted to the grid rows/columns around ``area`` (lazy; nothing is loaded).

    Regular grids (1-D ``latitude``/``longitude``) keep the rows inside the area and, when
    they are one contiguous run (on a global grid, one that does not reach either end, so
    its seam is never cut), the columns inside it, each with ``margin`` points (default
    :data:`MARGIN`) on either side. 2-D (projected) grids keep the index box around the grid
    points inside the area plus the margin. A grid without any point in the area is returned whole.
    """
    if area is None or "latitude" not in ds.coords or "longitude" not in ds.coords:
        return ds
    la, lo = ds["latitude"], ds["longitude"]
    if la.ndim == 1 and lo.ndim == 1:
        lat = la.values.astype("float64")
        rows = _span((lat >= area.south) & (lat <= area.north), margin)
        cut: dict[str, slice] = {}
        if rows is not None:
            cut[str(la.dims[0])] = rows
        lon = lo.values.astype("float64")
        cols = _span(area.contains(np.full(lon.shape, area.south), lon), margin)
        if cols is not None and not (is_global(lon) and (cols.start == 0 or cols.stop == lon.size)):
            cut[str(lo.dims[0])] = cols
        return ds.isel(cut) if cut else ds
    if la.ndim == 2 and la.dims == lo.dims:
        inside = area.contains(la.values, lo.values)
        if not inside.any():
            return ds
        ys, xs = np.nonzero(inside)
        ny, nx = inside.shape
        return ds.isel(
            {
                str(la.dims[0]): slice(
                    max(int(ys.min()) - margin, 0), min(ys.max() + margin + 1, ny)
                ),
                str(la.dims[1]): slice(
                    max(int(xs.min()) - margin, 0), min(xs.max() + margin + 1, nx)
                ),
            }
        )
    return ds


def inside_area(ds: xr.Dataset, area: Area, source: str) -> xr.Dataset:
    """``ds`` cut to its grid points inside ``area`` (no margin): the grid output's domain.

    As :func:`crop` with ``margin=0`` (on a global grid whose seam the area runs over, the
    longitudes are kept whole).

    Raises:
        SourceError: When none of the grid's points is inside the area (naming the spec).
    """
    out = crop(ds, area, margin=0)
    if "latitude" in out.coords and "longitude" in out.coords:
        lat, lon = xr.broadcast(out["latitude"], out["longitude"])
        if not area.contains(lat.values, lon.values).any():
            raise SourceError(
                f"{source}: area: {area.as_list()} ([north, west, south, east]) holds none of "
                "the model grid's points"
            )
    return out
