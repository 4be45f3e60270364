"""Alignment: gridded forecasts to stations, truth to forecasts (grids and tables)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from probcast.align.grids import align_truth
    from probcast.align.stations import extract_at_stations
    from probcast.align.tables import align_station_obs

_HOMES = {"align_truth": "grids", "extract_at_stations": "stations", "align_station_obs": "tables"}
"""Where each name of the package lives: imported on first use (PEP 562), so that importing
one submodule (``align.points``) does not load the others (and the products with them)."""

__all__ = ["align_station_obs", "align_truth", "extract_at_stations"]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
