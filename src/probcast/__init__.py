"""probcast: calibrated probabilistic forecasts from deterministic NWP output."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("probcast")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
