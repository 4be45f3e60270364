"""A grid's amounts since the start of the forecast, de-accumulated to the model's period.

ECMWF (HRES, ENS, open data) and ARPEGE publish ``tp`` accumulated since the start of the
forecast: 0-6 h, 0-12 h, ... A model trained on 6-h amounts needs, at every step ``s``, the
amount over ``[s - 6, s]``: the difference of two of the file's steps. The GRIB reader
records such variables (:data:`probcast.periods.FROM_START`); :func:`to_model_periods`
de-accumulates those the model uses to the period it was trained on, so that the file can
be predicted as it comes. Steps without the step one period before them in the file (the
first steps, a gap) are left without the variable (NaN: the documented fallbacks for a
missing input apply), and named in a warning.
"""

from __future__ import annotations

import json
from typing import Any

import xarray as xr

from probcast import periods
from probcast.sources.deaccum import grid_from_start


def to_model_periods(model: Any, ds: xr.Dataset, where: str) -> xr.Dataset:
    """``ds`` with its amounts since the start over the periods ``model`` was trained on.

    Variables the model does not use, or whose period the model does not know (trained on
    data that recorded none), are left as they are: :meth:`check_periods` then says why.

    Args:
        model: A loaded :class:`probcast.model.predictor.Predictor`.
        ds: A canonical grid (``fc_<var>`` on ``forecast_period``).
        where: The input, named in messages.

    Returns:
        ``ds``, or a copy with those variables de-accumulated and the periods recorded.

    Raises:
        ValueError: No step of the file has the step one period before it.
    """
    known = model.domain.periods if model.domain is not None else {}
    todo = [
        v
        for v in periods.from_start(ds.attrs)
        if v in model.statistics_used and v in known and f"fc_{v}" in ds
    ]
    if not todo:
        return ds
    out = ds.copy()
    fixed, words = periods.of(ds.attrs, where), periods.unfixed(ds.attrs, where)
    for var in todo:
        hours = float(known[var])
        name = f"fc_{var}"
        out[name] = grid_from_start(ds[name], hours, where)
        out[name].attrs["comment"] = (
            f"{hours:g}-h amounts de-accumulated by probcast from amounts since the start"
        )
        out[name].attrs.pop("grib_step_range", None)
        fixed[var] = hours
        words.pop(var, None)
    out.attrs[periods.ATTR] = json.dumps(dict(sorted({**fixed, **words}.items())))
    left = [v for v in periods.from_start(ds.attrs) if v not in todo]
    if left:
        out.attrs[periods.FROM_START] = json.dumps(left)
    else:
        out.attrs.pop(periods.FROM_START, None)
    return out
