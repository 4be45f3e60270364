"""Errors of the gridded readers."""

from __future__ import annotations


class GriddedReadError(ValueError):
    """A gridded file cannot be read or normalised; the message names file and problem."""
