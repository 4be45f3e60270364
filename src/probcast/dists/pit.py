"""The randomised PIT of a predictive distribution: one definition for training and verification.

Where the predictive CDF jumps at the observation (a point mass: zero precipitation under a
censored family, cloud cover 1, ties between members and the observation) the PIT is drawn
uniformly between the CDF's left and right limits there, ``F(y-) + U (F(y) - F(y-))``, which
makes it exactly uniform for a calibrated forecast (Czado et al. 2009). A parametric family
can only jump at its bounds (``lower``/``upper`` of a censored family): everywhere else
``F(y-) = F(y)``.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax.numpy as jnp
import numpy as np

from probcast.dists.registry import Distribution

BELOW = 1e-6
"""Relative offset below an upper bound at which its left CDF limit is evaluated."""


def randomised(cdf_left: np.ndarray, cdf_right: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Randomised PIT ``F(y-) + U (F(y) - F(y-))`` from the CDF limits at the observation."""
    lo = np.asarray(cdf_left, dtype="float64")
    hi = np.asarray(cdf_right, dtype="float64")
    return lo + rng.random(lo.shape) * (hi - lo)


def below_upper(upper: float) -> float:
    """Where the CDF's left limit at ``upper`` is evaluated (just below it)."""
    return upper - BELOW * (1.0 + abs(upper))


def left_limit(
    y: np.ndarray,
    cdf: np.ndarray,
    lower: float,
    upper: float = np.inf,
    cdf_below_upper: np.ndarray | None = None,
) -> np.ndarray:
    """``F(y-)`` of a distribution whose CDF jumps only at its bounds.

    Args:
        y: Observations.
        cdf: ``F(y)``.
        lower: Lower bound: no mass lies left of it, so ``F(y-) = 0`` at or below it.
        upper: Upper bound (infinite: none).
        cdf_below_upper: ``F`` just below ``upper`` (:func:`below_upper`), needed when it is
            finite.

    Returns:
        The left limits, float64.
    """
    y = np.asarray(y, dtype="float64")
    left = np.where(y <= lower, 0.0, np.asarray(cdf, dtype="float64"))
    if np.isfinite(upper):
        if cdf_below_upper is None:
            raise ValueError("a finite upper bound needs the CDF just below it")
        left = np.where(y >= upper, np.asarray(cdf_below_upper, dtype="float64"), left)
    return left


def parametric(
    dist: Distribution,
    params: Mapping[str, np.ndarray],
    y: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """Randomised PIT of ``y`` under a parametric forecast (float32 parameters).

    Args:
        dist: The family.
        params: Parameters ``(n,)`` per name.
        y: Observations ``(n,)``, finite.
        rng: Source of the uniforms (one per row, drawn in row order).

    Returns:
        ``(n,)`` PIT values in ``[0, 1]``.
    """
    p = {k: jnp.asarray(np.asarray(v, dtype=np.float32)) for k, v in params.items()}
    yy = np.asarray(y, dtype=np.float64)
    cdf = np.asarray(dist.cdf(p, jnp.asarray(yy, dtype=jnp.float32)), dtype=np.float64)
    low = float(getattr(dist, "lower", -np.inf))  # no lower bound: no mass at one
    upper = float(getattr(dist, "upper", np.inf))
    below = None
    if np.isfinite(upper):
        at = jnp.full(yy.shape, below_upper(upper), jnp.float32)
        below = np.asarray(dist.cdf(p, at), dtype=np.float64)
    return randomised(left_limit(yy, cdf, low, upper, below), cdf, rng)
