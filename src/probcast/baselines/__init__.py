"""Classical baselines: raw forecast, error dressing and EMOS (global and local).

Each is fitted on a canonical training station table and applied to a test table, giving a
:class:`~probcast.dists.Predictive` (family parameters or ensemble members).
"""

from __future__ import annotations

from typing import Any

from probcast.baselines.base import Baseline
from probcast.baselines.dressing import DressingBaseline
from probcast.baselines.emos import EmosBaseline, EmosModel, fit_emos
from probcast.baselines.raw import RawBaseline

BASELINES = ("raw", "dressing", "emos-global", "emos-local")
"""Names accepted by :func:`make`."""


def make(name: str, var: str, **kwargs: Any) -> Baseline:
    """Construct the baseline ``name`` for target ``var`` (unfitted)."""
    if name == "raw":
        return RawBaseline(var)
    if name == "dressing":
        return DressingBaseline(var, **kwargs)
    if name in ("emos-global", "emos-local"):
        return EmosBaseline(var, by_station=name == "emos-local", **kwargs)
    raise KeyError(f"unknown baseline {name!r}; expected one of {', '.join(BASELINES)}")


__all__ = [
    "BASELINES",
    "Baseline",
    "DressingBaseline",
    "EmosBaseline",
    "EmosModel",
    "RawBaseline",
    "fit_emos",
    "make",
]
