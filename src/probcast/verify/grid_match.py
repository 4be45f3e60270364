"""Is a gridded forecast on the analysis grid? Nothing is regridded.

Grids must match: the same spatial dimensions and sizes, latitude/longitude within
:data:`LATLON_TOLERANCE` degrees (products store them as float32) and projection
coordinates within :data:`XY_TOLERANCE` of the grid spacing. Nearest-neighbour regridding
would only be trivially safe where the grids already coincide, so any other grid is an
error that names both files and the mismatch.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from probcast.verify.grid_inputs import GridField, grid_dims

LATLON_TOLERANCE = 1e-4
"""Degrees (about 10 m): float32 latitude/longitude of a product round to ~4e-6."""
XY_TOLERANCE = 1e-3
"""Fraction of the median grid spacing allowed between projection coordinates."""


def _max_diff(a: np.ndarray, b: np.ndarray, name: str) -> float:
    d = np.abs(a - b)
    if name == "longitude":
        d = np.minimum(d % 360.0, 360.0 - d % 360.0)
    return float(np.nanmax(d)) if d.size else 0.0


def check_same_grid(fc: GridField, truth: xr.Dataset, truth_path: str) -> None:
    """Raise ValueError naming the mismatch when ``fc`` is not on the analysis grid."""
    ga = {d: fc.data.sizes[d] for d in grid_dims(fc.data)}
    gb = {d: truth.sizes[d] for d in grid_dims(truth)}
    where = f"{fc.path} ({fc.variable} {fc.kind}) and the analysis {truth_path}"
    if set(ga) != set(gb) or any(ga[d] != gb[d] for d in ga):
        raise ValueError(
            f"{where} are on different grids: forecast {ga}, analysis {gb}; gridded "
            "verification needs the forecast on the analysis grid (regrid first, e.g. "
            "CDO remapnn or xESMF)"
        )
    coords = fc.data.coords
    for name in ("latitude", "longitude", "y", "x"):
        if name not in coords or name not in truth.coords:
            continue
        da, db = coords[name], truth[name]
        if set(da.dims) != set(db.dims):
            raise ValueError(
                f"{where}: {name} has dims {da.dims} in the forecast, {db.dims} in the analysis"
            )
        a = np.asarray(da.values, "float64")
        b = np.asarray(db.transpose(*da.dims).values, "float64")
        if name in ("x", "y"):
            step = np.nanmedian(np.abs(np.diff(b))) if b.size > 1 else 1.0
            tol = XY_TOLERANCE * float(step if step > 0 else 1.0)
        else:
            tol = LATLON_TOLERANCE
        diff = _max_diff(a, b, name)
        if not diff <= tol:
            raise ValueError(
                f"{where}: {name} differs by up to {diff:.3g} (tolerance {tol:.3g}); "
                "gridded verification needs the forecast on the analysis grid"
            )
