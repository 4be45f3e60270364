"""Values inside a variable's physical range but far from its usual size: a units hint.

The range check (:data:`probcast.schema.VARIABLES`) catches degC read as K or hPa read as
Pa; it cannot catch precipitation in metres read as kg m-2 (0.004 is a possible amount) or
wind speed in km/h read as m s-1 (36 is a possible speed). :func:`unusual_magnitude` looks
at the typical size of the values instead. It gives a finding for ``probcast data check``
(never an error: a very dry or very windy site can be real), a warning at training and at
prediction.

:func:`typical_size` and :func:`constant_value` serve the checks of training
(:mod:`probcast.train.plausible`: a constant target is refused) and of prediction
(:mod:`probcast.model.scale`: an input whose typical size is far from the training's).
"""

from __future__ import annotations

import numpy as np

MIN_VALUES = 20
"""Fewest values (non-zero ones for precipitation) before a median is judged."""
TP_MEDIAN_MIN = 0.003
"""Median of non-zero precipitation amounts below which metres are suspected (kg m-2, mm).
In metres, wet medians of 0.1-3 mm read 1e-4-0.003. Gauges resolve 0.1-0.2 mm, and NWP
trace amounts keep a model's wet median far higher too (sydney-rain's hourly forecasts:
0.039 mm, norway's 6-hourly: 0.30)."""
WIND_MEDIAN_MAX = 20.0
"""Median wind speed above which km/h or knots are suspected (m s-1)."""
_WIND = ("ws10", "u10", "v10")


def unusual_magnitude(values: np.ndarray, variable: str) -> str | None:
    """Why ``values`` (canonical units) look like other units than canonical, or ``None``.

    Args:
        values: Values of one column in canonical units (NaN allowed).
        variable: Canonical variable name.
    """
    v = np.asarray(values, dtype="float64")
    v = v[np.isfinite(v)]
    if variable == "tp":
        wet = v[v > 0]
        median = float(np.median(wet)) if wet.size >= MIN_VALUES else np.inf
        if median < TP_MEDIAN_MIN:
            return (
                f"non-zero amounts have a median of {median:.3g} kg m-2 (mm): given in "
                "metres? (1 m = 1000 kg m-2; declare the units or convert)"
            )
    if variable in _WIND and v.size >= MIN_VALUES:
        median = float(np.median(np.abs(v)))
        if median > WIND_MEDIAN_MAX:
            return (
                f"median speed {median:.3g} m s-1: given in km/h or knots? (declare the "
                "units or convert: 1 km/h = 0.278 m s-1, 1 knot = 0.514 m s-1)"
            )
    return repeated_extreme(v)


SENTINEL_SHARE = 0.005
"""Share of the values (and at least :data:`MIN_VALUES` of them) that one largest value must
hold to be taken for a missing-value code."""
SENTINEL_RATIO = 3.0
"""How far above the 99th percentile of the other values (in magnitude) it must lie."""


def repeated_extreme(values: np.ndarray) -> str | None:
    """Why the largest value looks like a missing-value code inside the range, or ``None``.

    A code such as 99.99 (GSOD precipitation), 99.9 or 999 is a possible value of its
    variable, so the range check lets it through; held by many rows at once, far above every
    other value, it is a code (3 % of rows of ``obs_tp`` at 99.99 made a trained model's CRPS
    18 % worse and its spread-skill 3.3). A real maximum is rare, or (cloud cover 1, a
    saturated sensor) close to the values below it.
    """
    v = np.asarray(values, dtype="float64")
    v = v[np.isfinite(v)]
    if v.size < MIN_VALUES:
        return None
    top = float(v.max())
    held = int(np.count_nonzero(v == top))
    if top <= 0.0 or held < max(MIN_VALUES, SENTINEL_SHARE * v.size):
        return None
    rest = np.abs(v[v != top])
    below = float(np.percentile(rest, 99)) if rest.size else 0.0
    if top < SENTINEL_RATIO * below or below == 0.0:
        return None
    return (
        f"the value {top:g} is on {held} rows ({held / v.size:.1%}), {top / below:.3g} times "
        "the 99th percentile of the others: a missing-value code? (set such values to NaN)"
    )


def typical_size(values: np.ndarray) -> float | None:
    """Median magnitude of the finite non-zero ``values``; ``None`` below :data:`MIN_VALUES`.

    Zeros are left out: a dry period has a wet median of the same size as a wet one, and a
    unit (mm vs m) scales every non-zero value alike.
    """
    v = np.abs(np.asarray(values, dtype="float64"))
    v = v[np.isfinite(v) & (v > 0)]
    return float(np.median(v)) if v.size >= MIN_VALUES else None


def constant_value(values: np.ndarray) -> float | None:
    """The one value that every finite entry of ``values`` takes, or ``None``.

    ``None`` too below :data:`MIN_VALUES` finite values: a few equal values say nothing.
    """
    v = np.asarray(values, dtype="float64")
    v = v[np.isfinite(v)]
    if v.size < MIN_VALUES or v.min() != v.max():
        return None
    return float(v[0])
