"""Alignment: gridded forecasts to stations, truth to forecasts (grids and tables)."""

from probcast.align.grids import align_truth
from probcast.align.stations import extract_at_stations
from probcast.align.tables import align_station_obs

__all__ = ["align_station_obs", "align_truth", "extract_at_stations"]
