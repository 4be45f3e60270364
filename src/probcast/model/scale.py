"""Is a prediction input on the training's scale? A whole column in other units, a dead feed.

:mod:`probcast.model.applicability` judges each row against the training range. A column
given in other units can sit inside that range on every row: precipitation in metres for a
model trained in kg m-2 (mm) reads 0.0004 where training read 0.4, a possible amount, so
only a few rows were flagged while every forecast was wrong. This module judges the input
as a whole, per column the model reads, against the quantiles that ``domain.json``
recorded on the training rows (:mod:`probcast.model.domain`):

* ``scale``: the column's typical size, the median magnitude of its finite non-zero values
  (:func:`probcast.plausibility.typical_size`: zeros are left out, a dry day is not a
  unit), differs from the training's by a factor of :data:`SCALE_FACTOR` or more, either
  way (precipitation: smaller only, with even its largest amount below the training's
  typical one; cloud cover and wind not judged, :data:`UNJUDGED`). Checked for the raw
  forecasts of known variables (``fc_<var>``, an extra model's ``fc_<var>_<model>``) and,
  for a model that reads recent errors ``err_<var>`` (made from the input's observations),
  ``obs_<var>`` against the training ``fc_<var>``;
* ``constant``: such a column holds one value on every row (at least
  :data:`~probcast.plausibility.MIN_VALUES`, at two stations or more and two valid times
  or more) where training had many, and that value is no point mass of the training
  values (precipitation 0, cloud cover 0 or 1 are): a dead feed;
* ``lead``: the input's typical lead time is :data:`SCALE_FACTOR` or more times the
  longest training lead time (lead times in seconds or minutes get their own message,
  :func:`~probcast.model.applicability.check_lead_unit`).

Each finding refuses the input (:class:`~probcast.model.applicability.ExtrapolationError`,
naming the input, the column, the input's and the training's typical values) unless the
request's policy is ``extrapolation="warn"``, the user's explicit acceptance of input
outside the training domain: then it is a warning and the rows are predicted. Values of
an unusual size for their variable (:func:`probcast.plausibility.unusual_magnitude`, what
``probcast data check`` reports) are a warning in every policy. Fewer than
:data:`~probcast.plausibility.MIN_VALUES` values (non-zero ones for ``scale``): no judgement.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from probcast import station_ids
from probcast.model.applicability import ExtrapolationError, check_lead_unit
from probcast.model.domain import LEVELS, Domain
from probcast.model.options import DomainPolicy
from probcast.plausibility import (
    MIN_VALUES,
    constant_value,
    typical_size,
    unusual_magnitude,
)
from probcast.ranges import ranged_variable
from probcast.recent import PREFIX as ERR_PREFIX
from probcast.schema import FC_PREFIX, OBS_PREFIX, VARIABLES

log = logging.getLogger(__name__)

SCALE_FACTOR = 100.0
"""Ratio of typical sizes (input over training, or training over input) from which a
column is taken to be in other units. Unit slips are factors of 1000 (m for mm, kg for g),
100 (hPa for Pa, % for fraction) or 3.6 (km/h); a legitimate change of place or season
moves a median wet amount or a median wind speed by a few times, not a hundred."""
MIN_NONZERO = 0.04
"""Smallest share of the training quantile function away from zero for its typical size
to be judged (a training period with almost no rain says little about a wet amount)."""
_GRID = np.linspace(0.0, 1.0, 2001)


def trained_size(quantiles: Sequence[float]) -> float | None:
    """Typical size of a training column from its quantiles at :data:`LEVELS`.

    The median magnitude of the non-zero values of the piecewise-linear quantile function
    (for a 6-hourly precipitation of 60 % zeros, 0.33 where the data's own is 0.30);
    ``None`` when less than :data:`MIN_NONZERO` of it is non-zero.
    """
    x = np.interp(_GRID, LEVELS, np.asarray(quantiles, dtype="float64"))
    mag = np.abs(x[x != 0.0])
    return float(np.median(mag)) if mag.size >= MIN_NONZERO * _GRID.size else None


def _point_mass(quantiles: Sequence[float], value: float) -> bool:
    """Whether training held ``value`` often (two adjacent levels) or as its min or max."""
    q = list(quantiles)
    return value in (q[0], q[-1]) or any(a == b == value for a, b in itertools.pairwise(q))


def _columns(domain: Domain, table: pd.DataFrame) -> list[tuple[str, str, str, bool]]:
    """``(input column, training column, variable, judged)`` of the input columns to check.

    ``judged``: its scale and constancy too, not only its magnitude (the observations only
    where they make the model's recent errors; else they are merely copied to the output).
    """
    out = []
    for col in map(str, table.columns):
        var = ranged_variable(col)
        if var is None:
            continue
        if col.startswith(FC_PREFIX) and col in domain.features:
            out.append((col, col, var, True))
        elif col == OBS_PREFIX + var and FC_PREFIX + var in domain.features:
            out.append((col, FC_PREFIX + var, var, ERR_PREFIX + var in domain.features))
    return out


UNJUDGED = frozenset({"tcc", "u10", "v10", "ws10"})
"""Variables whose typical size is not judged: from one run to the next it moves by as much
as a unit slip would (a calm night's wind components, a nearly clear sky's thin cloud), and
their unit slips are either factors of a few (km/h, knots) or outside the physical range
(cloud cover in %), which the range check refuses."""


def _scale(col: str, values: np.ndarray, trained: Sequence[float], var: str) -> str | None:
    """Why ``values`` look like other units than the training's, or ``None``.

    Precipitation is judged one way only, and only when even the input's largest amount
    is below the training's typical wet amount: a heavy-rain run's typical amount is 170
    times an hourly training set's (sydney-rain) and a drizzle run's 50 times smaller than
    a 6-hourly one's (verif-norway-precip), while metres for millimetres are 1000 times
    smaller throughout.
    """
    if var in UNJUDGED:
        return None
    have, had = typical_size(values), trained_size(trained)
    if have is None or had is None:
        return None
    ratio = max(have / had, had / have)
    if ratio < SCALE_FACTOR:
        return None
    if var == "tp" and (have > had or float(np.nanmax(values)) >= had):
        return None
    units = VARIABLES[var].units
    way = "larger" if have > had else "smaller"
    n = int(np.count_nonzero(np.isfinite(values) & (values != 0)))
    hint = unusual_magnitude(values, var) or f"given in other units than {units}?"
    return (
        f"column {col!r}: typical size {have:.3g} {units} (median magnitude of its {n} "
        f"non-zero values) is {ratio:.3g} times {way} than in training ({had:.3g} {units}): "
        f"{hint}"
    )


def _constant(col: str, rows: pd.DataFrame, trained: Sequence[float]) -> str | None:
    values = rows[col].to_numpy(dtype="float64")
    value = constant_value(values)
    if value is None or trained[0] == trained[-1] or _point_mass(trained, value):
        return None
    used = rows[np.isfinite(values)]
    if used["station"].nunique() < 2 or used["valid_time"].nunique() < 2:
        return None
    return (
        f"column {col!r}: the single value {value:g} on all {len(used)} rows with a value "
        f"(training: {trained[1]:g} to {trained[-2]:g} between q0.001 and q0.999): a broken "
        "or placeholder feed?"
    )


def _lead(domain: Domain, lead: np.ndarray) -> str | None:
    lead = lead[np.isfinite(lead) & (lead > 0)]
    if lead.size < MIN_VALUES or domain.lead_max <= 0:
        return None
    median = float(np.median(lead))
    if median < SCALE_FACTOR * domain.lead_max:
        return None
    return (
        f"column 'lead_time': typical lead time {median:g} h is {median / domain.lead_max:.3g} "
        f"times the longest training lead time ({domain.lead_max:g} h; trained on "
        f"{domain.lead_min:g}-{domain.lead_max:g} h): lead times in other units, or a "
        "broken feed?"
    )


def check_scale(
    domain: Domain | None,
    table: pd.DataFrame,
    policy: DomainPolicy,
    source: str = "input table",
) -> list[str]:
    """Refuse (or warn of) an input on another scale than the training data.

    Args:
        domain: The model's training domain (``None``: an older model, nothing checked).
        table: Canonical station table to predict (padding rows of a service are ignored).
        policy: The request's extrapolation policy: ``warn`` turns refusals into warnings.
        source: The input's name for messages.

    Returns:
        The warning lines logged (findings under ``warn``, unusual magnitudes).

    Raises:
        ExtrapolationError: A finding of the module docstring (``scale``, ``constant``,
            ``lead``), unless ``policy.mode == "warn"``; lead times in seconds or minutes
            in every policy.
    """
    if domain is None or not len(table):
        return []
    rows = table
    if "station" in table.columns:
        rows = table[~station_ids.pad_rows(table["station"])]
    if "valid_time" not in rows.columns:
        rows = rows.assign(valid_time=rows["init_time"])  # distinct runs stand in
    problems: list[str] = []
    if "lead_time" in rows.columns:
        lead = rows["lead_time"].to_numpy(dtype="float64")
        check_lead_unit(domain, lead, policy)
        problems += [p for p in [_lead(domain, lead)] if p]
    odd: list[str] = []
    for col, train_col, var, judged in _columns(domain, rows):
        values = rows[col].to_numpy(dtype="float64")
        trained = domain.features[train_col]
        found = None
        if judged:
            found = _scale(col, values, trained, var) or _constant(col, rows, trained)
        hint = unusual_magnitude(values, var)
        if found:
            problems.append(found)
        elif hint:
            odd.append(f"{source}: {col}: {hint}")
    if problems and policy.mode != "warn":
        raise ExtrapolationError(
            f"{source}: not on the scale of the model's training data: "
            + "; ".join(problems)
            + " -- convert or repair the input (extrapolation='warn' predicts it anyway, "
            "with a warning)"
        )
    lines = [f"{source}: {p} (extrapolation='warn': predicted anyway)" for p in problems]
    for line in lines + odd:
        log.warning("%s", line)
    return lines + odd


__all__ = ["MIN_NONZERO", "SCALE_FACTOR", "UNJUDGED", "check_scale", "trained_size"]
