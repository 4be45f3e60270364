"""Normal truncated to ``[0, inf)`` (wind speed).

``loc`` and ``scale`` are those of the latent normal. Every formula divides by the kept mass
``Phi(-l)`` (``l = -loc/scale``), which underflows in float32 once ``l`` passes about 13, so
tail ratios are computed in log space: with ``log_ndtr`` while ``l < 8`` and, beyond, with the
log Mills ratio ``m(t) = log(Phi(-t)/phi(t))`` from its continued fraction, where the
``t**2/2`` terms cancel analytically. Both branches are evaluated on clamped inputs so that
``jnp.where`` never mixes in an infinite gradient.
"""

from __future__ import annotations

import jax
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
)

_FAR = 8.0
"""Standardised truncation point beyond which the Mills-ratio forms are used."""
_CRPS_FAR = 3.0
"""Standardised truncation point from which the CRPS takes the cancellation-free form
(:func:`_far_body`): between 3 and 8 the closed form's O(l) terms cancel in float32 (CRPS
relative error up to 1e-3, its gradient up to 11 % at ``l = 7.5``)."""
_CF_TERMS = 10
_CF_TERMS_CRPS = 24
"""Terms of the continued fraction in the CRPS: from ``t = 3`` on its relative error is
below 1e-9 (10 terms: 6e-7 there)."""
_NEWTON_STEPS = 8


def _continued_fraction(t: Array, terms: int = _CF_TERMS) -> tuple[Array, Array]:
    """Log Mills ratio ``log(Phi(-t)/phi(t))`` and ``phi(t)/Phi(-t) - t``, for ``t >= _FAR``.

    Laplace's continued fraction ``phi/Phi(-t) = t + 1/(t + 2/(t + 3/(t + ...)))``
    (``terms`` of it; the CRPS uses it from ``t = 3`` on with more).
    """
    f = t
    for n in range(terms, 1, -1):
        f = t + n / f
    excess = 1.0 / f
    return -jnp.log(t + excess), excess


def _log_mills(t: Array) -> Array:
    """``log(Phi(-t)/phi(t))`` for ``t >= _FAR``."""
    return _continued_fraction(t)[0]


def _ratios(v: Array, lo: Array) -> tuple[Array, Array, Array]:
    """Tail ratios at ``z = l + v`` (``v >= 0``, the distance above the truncation point).

    Returns ``Phi(-z)/Phi(-l)``, ``phi(z)/Phi(-l)`` and ``Phi(-sqrt2 l)/Phi(-l)^2``.
    """
    near = lo < _FAR
    ls = jnp.minimum(lo, _FAR)
    z = ls + v
    log_p = log_ndtr(-ls)
    tail_n = jnp.exp(log_ndtr(-z) - log_p)
    pdf_n = jnp.exp(-0.5 * z * z - LOG_SQRT_2PI - log_p)
    two_n = jnp.exp(log_ndtr(-SQRT2 * ls) - 2.0 * log_p)
    lb = jnp.maximum(lo, _FAR)
    gap = -0.5 * v * (2.0 * lb + v)  # -(z^2 - l^2)/2 without cancellation
    m_l = _log_mills(lb)
    tail_f = jnp.exp(_log_mills(lb + v) + gap - m_l)
    pdf_f = jnp.exp(gap - m_l)
    two_f = jnp.exp(_log_mills(SQRT2 * lb) - 2.0 * m_l + LOG_SQRT_2PI)
    tail = jnp.clip(jnp.where(near, tail_n, tail_f), 0.0, 1.0)
    return tail, jnp.where(near, pdf_n, pdf_f), jnp.where(near, two_n, two_f)


def _far_body(v: Array, lo: Array) -> Array:
    """Standardised CRPS for ``l >= _FAR`` at distance ``v >= 0`` above the truncation point.

    With ``e(t) = phi(t)/Phi(-t) - t`` (so ``Phi(-t)/phi(t) = 1/(t + e(t))``) the formula of
    :meth:`TruncatedNormal.crps` becomes
    ``v + (l e2/sqrt2 - 2 l e - e^2)/(l + e2/sqrt2) + 2 exp(-v(2l+v)/2) (l + e) e_v/(l + v + e_v)``
    with ``e = e(l)``, ``e2 = e(sqrt2 l)``, ``e_v = e(l + v)``: every term is O(1) or smaller,
    where the original form subtracts O(l) terms to leave O(1/l).
    """
    e = _continued_fraction(lo, _CF_TERMS_CRPS)[1]
    e2 = _continued_fraction(SQRT2 * lo, _CF_TERMS_CRPS)[1]
    ev = _continued_fraction(lo + v, _CF_TERMS_CRPS)[1]
    h = e2 / SQRT2
    core = (lo * h - 2.0 * lo * e - e * e) / (lo + h)
    return v + core + 2.0 * jnp.exp(-0.5 * v * (2.0 * lo + v)) * (lo + e) * ev / (lo + v + ev)


class TruncatedNormal(LocScaleFamily):
    """Normal ``N(loc, scale**2)`` truncated to ``[0, inf)``."""

    name = "truncated_normal"

    @staticmethod
    def _std(params: Params, x: Array) -> tuple[Array, Array]:
        """Standardised distance above the truncation point ``max(x, 0)/scale`` and ``l``."""
        sigma = params["scale"]
        return jnp.maximum(x, 0.0) / sigma, -params["loc"] / sigma

    @jit_method
    def crps(self, params: Params, y: Array) -> Array:
        """Closed-form CRPS of the truncated normal.

        Thorarinsdottir & Gneiting 2010, J. R. Stat. Soc. A 173, eq. 5 (the generalised
        truncated normal of Jordan et al. 2019 with no point masses).

        With ``w = (y - mu)/sigma``, ``l = -mu/sigma``, ``z = max(w, l)``, ``p = Phi(-l)``:
        ``CRPS/sigma = |w - z| + z (1 - 2 Phi(-z)/p) + 2 phi(z)/p - Phi(-sqrt2 l)/(sqrt(pi) p^2)``.
        From ``l = 3`` on the O(l) terms are cancelled analytically (:func:`_far_body`).
        The branches are clamped with ``where``, not ``minimum``/``maximum``, whose
        derivative at a tie is halved (the gradient at ``l = 8`` exactly was half its value).
        """
        v, lo = self._std(params, y)
        below = lo < _CRPS_FAR
        ln = jnp.where(below, lo, 0.0)
        tail, pdf, two = _ratios(v, ln)
        near = (ln + v) * (1.0 - 2.0 * tail) + 2.0 * pdf - INV_SQRT_PI * two
        body = jnp.where(below, near, _far_body(v, jnp.where(below, _CRPS_FAR, lo)))
        return jnp.maximum(-y, 0.0) + params["scale"] * jnp.maximum(body, 0.0)

    @jit_method
    def cdf(self, params: Params, x: Array) -> Array:
        """Distribution function (0 below 0)."""
        v, lo = self._std(params, x)
        return jnp.where(x < 0.0, 0.0, 1.0 - _ratios(v, lo)[0])

    @jit_method
    def quantile(self, params: Params, q: Array) -> Array:
        """Quantile function; ``q`` broadcasts elementwise against the parameters.

        Inverts the lower tail where ``loc >= 0``, the upper tail where ``0 < l < 8`` and,
        beyond, solves ``m(l + v) - v (2l + v)/2 - m(l) = log(1 - q)`` for ``v = w - l`` by
        Newton's method from the exponential-tail guess ``v = -log(1 - q)/l``.
        """
        mu, sigma = params["loc"], params["scale"]
        lo = -mu / sigma
        q = jnp.clip(q, 0.0, 1.0)
        log_keep = jnp.log1p(-jnp.minimum(q, 1.0 - 1e-7))
        ls = jnp.minimum(lo, _FAR)
        w_low = ndtri(ndtr(ls) + q * ndtr(-ls))
        w_up = -ndtri(jnp.exp(log_keep + log_ndtr(-ls)))
        lb = jnp.maximum(lo, _FAR)
        v = -log_keep / lb
        m_l = _log_mills(lb)

        def newton(_: int, v: Array) -> Array:
            m_w = _log_mills(lb + v)
            g = m_w - 0.5 * v * (2.0 * lb + v) - m_l - log_keep
            return jnp.maximum(v + g * jnp.exp(m_w), 0.0)  # g' = -exp(-m(w))

        # Skipped when no element is beyond _FAR (most fields): 80 % of the cost otherwise.
        v = jax.lax.cond(
            jnp.any(lo >= _FAR),
            lambda v: jax.lax.fori_loop(0, _NEWTON_STEPS, newton, v),
            lambda v: v,
            v,
        )
        # x = mu + sigma w = sigma (w - l): keeps x accurate when mu and sigma w nearly cancel
        dist = jnp.where(lo < 0.0, w_low - lo, jnp.where(lo < _FAR, w_up - lo, v))
        return jnp.where(q >= 1.0, jnp.inf, sigma * jnp.maximum(dist, 0.0))

    @jit_method
    def mean(self, params: Params) -> Array:
        """Mean ``loc + scale * phi(l)/Phi(-l)``, computed as ``scale * (phi(l)/Phi(-l) - l)``."""
        sigma = params["scale"]
        lo = -params["loc"] / sigma
        near = jnp.minimum(lo, _FAR)
        excess_near = jnp.exp(-0.5 * near * near - LOG_SQRT_2PI - log_ndtr(-near)) - near
        excess_far = _continued_fraction(jnp.maximum(lo, _FAR))[1]
        return sigma * jnp.where(lo < _FAR, excess_near, excess_far)

    @jit_method
    def log_prob(self, params: Params, y: Array) -> Array:
        """Log density (``-inf`` below 0)."""
        sigma = params["scale"]
        lo = -params["loc"] / sigma
        v = y / sigma
        ls, lb = jnp.minimum(lo, _FAR), jnp.maximum(lo, _FAR)
        # log(phi(w)/Phi(-l)) with w = l + v
        near = -0.5 * (ls + v) ** 2 - LOG_SQRT_2PI - log_ndtr(-ls)
        far = -0.5 * v * (2.0 * lb + v) - _log_mills(lb)
        lp = jnp.where(lo < _FAR, near, far) - jnp.log(sigma)
        return jnp.where(y >= 0.0, lp, -jnp.inf)
