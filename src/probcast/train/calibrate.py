"""Post-hoc spread calibration: one scale factor per target, fitted on validation rows.

A network trained by minimum CRPS on the fit period is often under-dispersive on later
data (its errors on unseen weeks are larger than on the rows it was fitted to). A single
factor ``k`` per target multiplies the scale parameter of the pooled predictive
distribution; ``k`` minimises the mean CRPS over the held-out validation rows (the last part
of the training period), so the test period is never looked at. This is the
"spread correction" of classical post-processing, with one parameter per target: it cannot
overfit a validation set of thousands of rows.

Only location-scale families (parameters ``loc`` and ``scale``, censored and truncated ones
included) are calibrated; others keep ``k = 1``.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import minimize_scalar

from probcast import dists

log = logging.getLogger(__name__)

FACTOR_RANGE = (0.5, 2.5)
"""Search interval of the spread factor."""


def calibratable(family: str) -> bool:
    """Whether ``family`` has a ``scale`` parameter that a spread factor multiplies."""
    if family == "generative":
        return False
    return set(dists.get(family).param_names) == {"loc", "scale"}


def scaled(params: Mapping[str, np.ndarray], factor: float) -> dict[str, np.ndarray]:
    """``params`` with the scale parameter multiplied by ``factor``."""
    return {k: (v * factor if k == "scale" else v) for k, v in params.items()}


def mean_crps(family: str, params: Mapping[str, np.ndarray], y: np.ndarray) -> float:
    """Mean closed-form CRPS over the rows with an observation."""
    ok = np.isfinite(y)
    sub = {k: np.asarray(v, dtype=np.float32)[ok] for k, v in params.items()}
    return float(_mean_crps(family, sub, np.asarray(y[ok], dtype=np.float32), 1.0))


@functools.partial(jax.jit, static_argnums=0)
def _mean_crps(
    family: str, params: Mapping[str, jax.Array], y: jax.Array, factor: jax.Array | float
) -> jax.Array:
    """Mean CRPS with the scale multiplied by ``factor``: one compiled call per evaluation."""
    return jnp.mean(dists.get(family).crps(scaled(params, factor), y))  # type: ignore[arg-type]


def fit_spread_factor(family: str, params: Mapping[str, np.ndarray], y: np.ndarray) -> float:
    """The factor in :data:`FACTOR_RANGE` minimising the mean CRPS of ``params`` on ``y``.

    Returns 1 when the family has no scale parameter, when fewer than 30 rows are observed,
    or when the fitted factor does not lower the CRPS.

    Args:
        family: Distribution family name.
        params: Predictive parameters per row (``(n,)`` arrays).
        y: Observations ``(n,)``, NaN where missing.
    """
    if not calibratable(family) or int(np.isfinite(y).sum()) < 30:
        return 1.0
    lo, hi = (math.log(b) for b in FACTOR_RANGE)
    ok = np.isfinite(y)
    sub = {k: jnp.asarray(np.asarray(v, dtype=np.float32)[ok]) for k, v in params.items()}
    obs = jnp.asarray(y[ok], dtype=jnp.float32)  # on the device once, for every evaluation
    res = minimize_scalar(
        lambda t: float(_mean_crps(family, sub, obs, math.exp(t))),
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-3},
    )
    factor = float(math.exp(res.x))
    if mean_crps(family, scaled(params, factor), y) >= mean_crps(family, params, y):
        return 1.0
    return factor
