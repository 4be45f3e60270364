"""Positions on the sphere: the one conversion every nearest-neighbour search uses.

Stations, grid nodes and requested points are compared as unit vectors, so that a
KD-tree's chord distance is monotonic in the great-circle distance whatever the longitude
convention (-180-180 or 0-360) and near the poles.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

EARTH_RADIUS_KM = 6371.0
"""Mean Earth radius (km) for converting chord or angle distances."""


def unit_vectors(lat: ArrayLike, lon: ArrayLike) -> np.ndarray:
    """Positions on the unit sphere of latitudes/longitudes in degrees.

    Args:
        lat: Latitudes (degrees north), any shape.
        lon: Longitudes (degrees east), the same shape.

    Returns:
        float64 array of shape ``(*shape, 3)``.
    """
    la, lo = np.deg2rad(np.asarray(lat, "float64")), np.deg2rad(np.asarray(lon, "float64"))
    return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)


def is_global(lon: ArrayLike) -> bool:
    """Whether 1-D regular grid longitudes go all the way round (span plus one step is 360).

    Such a grid has no longitude edge, only a seam between its last and first columns
    (0..359.75, or -180..179.75): stations and targets near the seam wrap across it. Within
    half a step of 360, so that coordinates stored in float32 still count.

    Args:
        lon: The grid's longitudes (degrees, any order or convention).

    Returns:
        True for a global grid, False for a regional one (or a single column).
    """
    lon = np.asarray(lon, "float64")
    step = float(np.median(np.abs(np.diff(lon)))) if lon.size > 1 else 0.0
    return bool(step > 0 and abs(float(np.ptp(lon)) + step - 360.0) <= step / 2)
