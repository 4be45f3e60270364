"""CRPS of an ensemble (empirical distribution of members), sorted O(m log m) form."""

from __future__ import annotations

import jax.numpy as jnp

from probcast.dists._common import Array


def crps_ensemble(members: Array, y: Array, fair: bool = True) -> Array:
    """CRPS of an ensemble forecast, elementwise over the leading axes.

    ``CRPS = mean|x_i - y| - sum_ij |x_i - x_j| / (2 m^2)`` (standard, Gneiting & Raftery
    2007) or ``... / (2 m (m - 1))`` (fair, unbiased for the CRPS of the distribution the
    members are drawn from: Ferro 2014, Q. J. R. Meteorol. Soc. 140; Zamo & Naveau 2018,
    Math. Geosci. 50). The double sum uses sorted members:
    ``sum_ij |x_i - x_j| = 2 sum_i (2i - m - 1) x_(i)``. Members and observation are shifted
    by ``y`` first, which leaves the score unchanged but keeps float32 precise for large
    values (pressures in Pa). A single member gives the absolute error in both forms. NaN in
    ``y`` or in any member gives NaN.

    Args:
        members: Ensemble, shape ``(..., m)`` (members last).
        y: Observations, shape ``(...)``.
        fair: Use the fair (unbiased) estimator.

    Returns:
        CRPS, shape ``(...)``.
    """
    members = jnp.asarray(members)
    y = jnp.asarray(y)
    if members.ndim == 0:
        raise ValueError("members must have a trailing member axis, got a scalar")
    m = members.shape[-1]
    if m == 0:
        raise ValueError("members must hold at least one member, got an empty member axis")
    d = jnp.sort(members - y[..., None], axis=-1)
    mae = jnp.mean(jnp.abs(d), axis=-1)
    if m == 1:
        return mae
    weights = 2.0 * jnp.arange(1, m + 1, dtype=d.dtype) - m - 1.0
    half_pair_sum = jnp.sum(weights * d, axis=-1)
    denom = m * (m - 1) if fair else m * m
    return mae - half_pair_sum / denom
