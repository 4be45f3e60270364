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
