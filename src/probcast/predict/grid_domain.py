"""Is a gridded run inside the model's training domain? Lead times and coordinates.

Station predictions flag each row (:mod:`probcast.model.applicability`); a grid has no row
column to flag, so the same comparison is made once per run on what sets a grid apart: its
lead times and the range of its coordinates that the model reads (latitude, longitude,
altitude). Outside the training domain the products are still written, with a warning
naming what lies outside (``extrapolation=flag`` or ``warn``); beyond the hard tolerance
``extrapolation=refuse`` stops before any work.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from probcast.align.points import wrap_longitude
from probcast.model.applicability import DomainPolicy, ExtrapolationError, check_rows
from probcast.model.domain import load_domain
from probcast.predict.grid_checks import GridPredictError

log = logging.getLogger(__name__)

COORDS = ("latitude", "longitude", "altitude")
"""Coordinates whose range is compared with the training rows' (when the model reads them)."""
_FP = "forecast_period"


def _extent(ds: xr.Dataset, name: str) -> tuple[float, float]:
    """Smallest and largest value of a coordinate, longitudes in [-180, 180).

    As in training (:func:`probcast.align.points.node_latlon`): a 0-360 grid is not taken
    for another place.
    """
    values = np.asarray(ds[name].values, dtype="float64")
    if name == "longitude":
        values = wrap_longitude(values)
    return float(np.nanmin(values)), float(np.nanmax(values))


def check_domain(ds: xr.Dataset, workdir: str | Path, policy: DomainPolicy, source: str) -> None:
    """Warn of (or refuse) lead times and coordinates outside the training domain.

    Args:
        ds: The grid (canonical names; ``forecast_period`` a timedelta).
        workdir: The model's directory (its ``domain.json``; none: nothing is checked).
        policy: The request's extrapolation policy.
        source: The input's name for messages.

    Raises:
        GridPredictError: ``refuse``, and a lead time or coordinate beyond the hard
            tolerance (or lead times in seconds or minutes).
    """
    domain = load_domain(workdir)
    if domain is None or _FP not in ds.variables:
        return
    leads = np.atleast_1d(ds[_FP].values / np.timedelta64(1, "h")).astype("float64")
    coords = {c: _extent(ds, c) for c in COORDS if c in ds.variables and c in domain.features}
    rows = [
        {"station": "grid", "lead_time": lead, **dict(zip(coords, corner, strict=True))}
        for lead, corner in itertools.product(leads, itertools.product(*coords.values()))
    ]
    table = pd.DataFrame(rows)
    try:
        found = check_rows(domain, table, policy, stations=["grid"])
    except ExtrapolationError as err:
        raise GridPredictError(f"{source}: {err}") from None
    problems = []
    outside = sorted({float(h) for h in table["lead_time"][found.lead]})  # the check's flags
    if outside:
        shown = ", ".join(f"{h:g}" for h in outside[:10])
        more = f" and {len(outside) - 10} more up to {outside[-1]:g}" if len(outside) > 10 else ""
        problems.append(
            f"lead time(s) {shown}{more} h outside the training "
            f"lead times [{domain.lead_min:g}, {domain.lead_max:g}] h"
        )
    for col in found.columns:
        lo, hi = domain.quantile(col, 0.001), domain.quantile(col, 0.999)
        have = coords[col]
        problems.append(
            f"{col} {have[0]:g}..{have[1]:g} beyond the training {lo:g}..{hi:g} "
            f"(+{policy.tolerance:g} x its width)"
        )
    if problems:
        log.warning(
            "%s: outside the model's training domain, predicted by extrapolation: %s",
            source,
            "; ".join(problems),
        )
