"""probcast: calibrated probabilistic forecasts from deterministic NWP output."""

from importlib.metadata import PackageNotFoundError, version

try:  # pragma: no cover - import order matters, not behaviour
    # The netCDF4 wheel bundles an older SQLite. Loaded first, it shadows the SQLite that
    # pyproj's PROJ needs for proj.db: every later CRS fails ("no database context") and the
    # process aborts at exit (double free). Importing pyproj first binds the right library.
    import pyproj  # noqa: F401
except ImportError:  # pyproj is optional (pulled in by compliance-checker / cf tools)
    pass

try:
    __version__ = version("probcast")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
