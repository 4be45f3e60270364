"""probcast: calibrated probabilistic forecasts from deterministic NWP output."""

# Import order matters here, not behaviour. The netCDF4 wheel bundles an older SQLite (3.26).
# Loaded first, it shadows the SQLite that pyproj's PROJ needs for proj.db (every later CRS
# fails with "no database context" and the process aborts at exit) and the one MLflow's
# SQLite store needs (>= 3.31). Importing sqlite3 and pyproj first binds the right libraries.
import sqlite3  # noqa: F401  # isort: skip
import pyproj  # noqa: F401  # isort: skip

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("probcast")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
