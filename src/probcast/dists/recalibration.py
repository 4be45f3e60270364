"""A monotone recalibration map of the PIT: the recalibrated CDF is ``G(F(y))``.

``G: [0, 1] -> [0, 1]`` is piecewise linear on equally spaced knots ``0, 1/(K-1), .., 1``
with values ``knots`` (non-decreasing, ``G(0) = 0``, ``G(1) = 1``). A forecast ``F`` whose
probability integral transform ``u = F(y)`` is distributed with CDF ``G`` becomes calibrated
by it: ``P(G(F(Y)) <= a) = a``. Its products follow from ``F`` and the map alone:

* quantile at level ``tau``: ``F^{-1}(G^{-1}(tau))``;
* member from a uniform ``u``: ``F^{-1}(G^{-1}(u))``;
* probability of exceeding ``t``: ``1 - G(F(t))``.

The map is fitted in :mod:`probcast.train.recalibrate`; this module only evaluates it (numpy
or ``jax.numpy`` arrays alike) and checks a stored one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

EDGE = 1e-6
"""Levels ``G^{-1}`` returns are kept in ``[EDGE, 1 - EDGE]`` (finite quantiles)."""


class PitMap:
    """A monotone piecewise-linear map of ``[0, 1]`` onto itself.

    Args:
        knots: ``G`` at ``K >= 2`` equally spaced points of ``[0, 1]``: finite, strictly
            increasing, first 0 and last 1.
        name: What the map belongs to (for error messages), e.g. the target variable.

    Raises:
        ValueError: If ``knots`` is not such a sequence.
    """

    def __init__(self, knots: Sequence[float] | np.ndarray, name: str = "map") -> None:
        ys = np.asarray(knots, dtype=np.float64)
        if ys.ndim != 1 or len(ys) < 2 or not np.all(np.isfinite(ys)):
            raise ValueError(f"{name}: recalibration knots must be >= 2 finite numbers")
        if abs(ys[0]) > 1e-9 or abs(ys[-1] - 1) > 1e-9 or not np.all(np.diff(ys) > 0):
            raise ValueError(
                f"{name}: recalibration knots must increase strictly from 0 to 1, got "
                f"{ys[0]:.4g} .. {ys[-1]:.4g} (min step {np.diff(ys).min():.3g})"
            )
        self.name = name
        self.knots = ys
        self.grid = np.linspace(0.0, 1.0, len(ys))
        self._xs = jnp.asarray(self.grid, dtype=jnp.float32)
        self._ys = jnp.asarray(ys, dtype=jnp.float32)

    def __call__(self, u: np.ndarray | jnp.ndarray) -> jnp.ndarray:
        """``G(u)``: recalibrated probability of a forecast probability ``u``."""
        return jnp.interp(jnp.clip(jnp.asarray(u, dtype=jnp.float32), 0.0, 1.0), self._xs, self._ys)

    def inverse(self, tau: np.ndarray | jnp.ndarray) -> jnp.ndarray:
        """``G^{-1}(tau)``: the forecast level whose recalibrated probability is ``tau``."""
        lev = jnp.interp(jnp.asarray(tau, dtype=jnp.float32), self._ys, self._xs)
        return jnp.clip(lev, EDGE, 1.0 - EDGE)

    def max_shift(self) -> float:
        """Largest ``|G(u) - u|``: how far the map is from the identity."""
        return float(np.max(np.abs(self.knots - self.grid)))

    def to_list(self) -> list[float]:
        """The knots as a JSON-ready list."""
        return [float(v) for v in self.knots]


def load_maps(record: Mapping[str, Any], source: str = "calibration.json") -> dict[str, PitMap]:
    """The maps of a ``calibration.json`` record (none when it has no ``recalibration``).

    Raises:
        ValueError: If a stored map is not a valid one (names the file and the target).
    """
    maps = record.get("recalibration") or {}
    if not isinstance(maps, Mapping):
        raise ValueError(f"{source}: 'recalibration' must map targets to knot lists")
    return {str(v): PitMap(k, name=f"{source}: recalibration of {v}") for v, k in maps.items()}
