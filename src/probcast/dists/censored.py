"""Censored normal families: point masses at the bounds of a physical range.

``Y = clip(X, lower, upper)`` with latent ``X ~ N(loc, scale**2)``: the mass of ``X`` below
``lower`` sits at ``lower`` (dry cases of precipitation at 0, clear sky at 0), the mass above
``upper`` at ``upper`` (overcast at 1).
"""

from __future__ import annotations

import math

import jax.numpy as jnp

from probcast.dists._common import (
    INV_SQRT_PI,
    LOG_SQRT_2PI,
    SQRT2,
    Array,
    LocScaleFamily,
    Params,
    jit_method,
    log_ndtr,
    ndtr,
    ndtri,
    norm_crps,
    norm_pdf,
)


def tail_terms(t: Array, cdf: Array, dens: Array, cdf2: Array) -> Array:
    """``T(t) = -t Phi(t)^2 - 2 phi(t) Phi(t) + Phi(sqrt2 t)/sqrt(pi)`` from its values.

    ``cdf = Phi(t)``, ``dens = phi(t)``, ``cdf2 = Phi(sqrt2 t)``: callers that have them
    (the EMOS fitting form, :mod:`probcast.baselines.emos_analytic`) pass their own.
    """
    return -t * cdf * cdf - 2.0 * dens * cdf + INV_SQRT_PI * cdf2


def cancelled_sum(
    z: Array, t: Array, sf_z: Array, dens_z: Array, cdf_t: Array, sf_t: Array, dens_t: Array,
    sf2_t: Array,
) -> Array:  # fmt: skip
    """``N(z) + T(t)`` for ``z >= t > 0`` with its two O(t) terms cancelled analytically.

    ``(z - t) + [2 phi(z) - 2 z Phi(-z)] + R(t)`` with ``R(t) = t Phi(-t)(1 + Phi(t)) - 2
    phi(t) Phi(t) - Phi(-sqrt2 t)/sqrt(pi)``, from ``sf_z = Phi(-z)``, ``dens_z = phi(z)``,
    ``cdf_t = Phi(t)``, ``sf_t = Phi(-t)``, ``dens_t = phi(t)``, ``sf2_t = Phi(-sqrt2 t)``.
    """
    r_t = t * sf_t * (1.0 + cdf_t) - 2.0 * dens_t * cdf_t - INV_SQRT_PI * sf2_t
    return (z - t) + 2.0 * dens_z - 2.0 * z * sf_z + r_t


def _tail(t: Array) -> Array:
    """Correction of the normal CRPS for censoring at standardised bound ``t``.

    :func:`tail_terms`; tends to 0 as ``t -> -inf`` (no mass below the bound).
    """
    return tail_terms(t, ndtr(t), norm_pdf(t), ndtr(SQRT2 * t))


def _censored_sum(z: Array, t: Array) -> Array:
    """``N(z) + T(t)`` for ``z >= t``, stable when most mass is censored (``t >> 0``).

    For ``t > 0`` in the form of :func:`cancelled_sum`.
    """
    stable = cancelled_sum(
        z, t, ndtr(-z), norm_pdf(z), ndtr(t), ndtr(-t), norm_pdf(t), ndtr(-SQRT2 * t)
    )
    return jnp.where(t > 0.0, stable, norm_crps(z) + _tail(t))


class CensoredNormal(LocScaleFamily):
    """Normal censored at ``lower`` (and at ``upper`` when finite).

    Attributes:
        name: Registry name.
        lower: Lower bound (point mass ``Phi((lower - loc)/scale)``).
        upper: Upper bound or ``inf`` (point mass ``Phi((loc - upper)/scale)``).
    """

    def __init__(self, name: str, lower: float = 0.0, upper: float = math.inf) -> None:
        if not lower < upper:
            raise ValueError(f"{name}: lower must be below upper, got {lower} >= {upper}")
        self.name = name
        self.lower = float(lower)
        self.upper = float(upper)

    def _bounds(self, params: Params) -> tuple[Array, Array | None]:
        mu, sigma = params["loc"], params["scale"]
        lo = (self.lower - mu) / sigma
        up = (self.upper - mu) / sigma if math.isfinite(self.upper) else None
        return lo, up

    @jit_method
    def crps(self, params: Params, y: Array) -> Array:
        """Closed-form CRPS of the censored normal.

        Jordan et al. 2019, J. Stat. Softw. 90(12), ``crps_cnorm``; the two-sided case is
        their ``gtcnormal`` with point masses ``Phi(l)`` and ``Phi(-u)``.

        ``CRPS/scale = |w - z| + N(z) + T(l) + T(-u)`` with ``w`` the standardised
        observation, ``z = clip(w, l, u)``, ``N`` the standard normal CRPS and ``T`` the
        censoring correction of :func:`_tail` (``T(-inf) = 0``). The branch whose bound
        holds most of the mass is rewritten so its O(|bound|) terms cancel exactly.
        """
        w = (y - params["loc"]) / params["scale"]
        lo, up = self._bounds(params)
        if up is None:
            z = jnp.maximum(w, lo)
            body = _censored_sum(z, lo)
        else:
            z = jnp.clip(w, lo, up)
            body = jnp.where(
                lo > 0.0,
                _censored_sum(z, lo) + _tail(-up),
                jnp.where(
                    up < 0.0,
                    _censored_sum(-z, -up) + _tail(lo),
                    norm_crps(z) + _tail(lo) + _tail(-up),
                ),
            )
        body = jnp.where(body > 0.0, body, 0.0)  # (rounding left -3e-14 with all mass censored)
        return params["scale"] * (jnp.abs(w - z) + body)

    @jit_method
    def cdf(self, params: Params, x: Array) -> Array:
        """Distribution function: 0 below ``lower``, 1 at and above ``upper``."""
        f = ndtr((x - params["loc"]) / params["scale"])
        f = jnp.where(x < self.lower, 0.0, f)
        return jnp.where(x >= self.upper, 1.0, f)

    @jit_method
    def quantile(self, params: Params, q: Array) -> Array:
        """Quantile function; ``q`` broadcasts elementwise against the parameters.

        Levels inside a point mass map to its bound.
        """
        x = params["loc"] + params["scale"] * ndtri(q)
        return jnp.clip(x, self.lower, self.upper)

    @jit_method
    def mean(self, params: Params) -> Array:
        """Mean: ``lower + scale * (G(-l) - G(-u))`` with ``G(t) = t Phi(t) + phi(t)``."""
        lo, up = self._bounds(params)
        m = _int_cdf(-lo)
        if up is not None:
            m = m - _int_cdf(-up)
        return self.lower + params["scale"] * m

    @jit_method
    def log_prob(self, params: Params, y: Array) -> Array:
        """Log of the mixed density: log point mass at a bound, log density inside."""
        w = (y - params["loc"]) / params["scale"]
        lo, up = self._bounds(params)
        lp = -0.5 * w * w - LOG_SQRT_2PI - jnp.log(params["scale"])
        lp = jnp.where(y <= self.lower, log_ndtr(lo), lp)
        if up is not None:
            lp = jnp.where(y >= self.upper, log_ndtr(-up), lp)
        return lp


def _int_cdf(t: Array) -> Array:
    """``G(t) = integral of Phi up to t = t Phi(t) + phi(t)``."""
    return t * ndtr(t) + norm_pdf(t)
