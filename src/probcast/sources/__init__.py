"""Real sources: NWP runs and observations read through fsspec, and ``probcast data build``.

One registry maps a source name to its reader; see docs/sources.md.

NWP (:data:`NWP_SOURCES`): ``ecmwf-opendata``, ``gfs``, ``hrrr``, ``rap``, ``nam`` (byte
ranges from the GRIB index) and ``archive`` (a user's GRIB/NetCDF/Zarr files).
Truth (:data:`TRUTH_SOURCES`): ``isd``, ``isd-csv``, ``ghcnh``, ``table``, ``era5``,
``arco-era5``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from probcast.sources.errors import SourceError

NWP_SOURCES: dict[str, str] = {
    "ecmwf-opendata": "probcast.sources.remote:EcmwfOpenData",
    "gfs": "probcast.sources.remote:Gfs",
    "hrrr": "probcast.sources.remote:Hrrr",
    "rap": "probcast.sources.remote:Rap",
    "nam": "probcast.sources.remote:Nam",
    "archive": "probcast.sources.archive:Archive",
}
"""NWP source name -> ``module:class``."""

TRUTH_SOURCES: dict[str, str] = {
    "isd": "probcast.sources.isd:read_isd",
    "isd-csv": "probcast.sources.isd:read_global_hourly",
    "ghcnh": "probcast.sources.ghcnh:read_ghcnh",
    "table": "probcast.sources.ghcnh:read_table",
    "era5": "probcast.sources.era5:read_era5",
    "arco-era5": "probcast.sources.arco:read_arco",
}
"""Truth source name -> ``module:function`` (one file -> ``ObsData``; era5 takes all)."""


def _load(target: str) -> Any:
    import importlib

    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def nwp_source(name: str) -> Callable[..., Any]:
    """The NWP source class registered as ``name``."""
    if name not in NWP_SOURCES:
        raise SourceError(
            f"nwp.source: unknown source {name!r}; expected one of {sorted(NWP_SOURCES)}"
        )
    return _load(NWP_SOURCES[name])  # type: ignore[no-any-return]


def truth_reader(name: str) -> Callable[..., Any]:
    """The truth reader registered as ``name``."""
    if name not in TRUTH_SOURCES:
        raise SourceError(
            f"truth.source: unknown source {name!r}; expected one of {sorted(TRUTH_SOURCES)}"
        )
    return _load(TRUTH_SOURCES[name])  # type: ignore[no-any-return]


__all__ = ["NWP_SOURCES", "TRUTH_SOURCES", "SourceError", "nwp_source", "truth_reader"]
