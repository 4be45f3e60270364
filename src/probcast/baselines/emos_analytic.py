"""Analytic CRPS, gradient and Hessian of the normal, truncated and censored normal EMOS fits.

Per row, with respect to the row's unconstrained values ``raw = (raw0, raw1)`` of
:meth:`~probcast.dists._common.LocScaleFamily.constrain` (``loc = center + spread raw0``,
``scale`` a function of ``raw1`` alone): the CRPS derivatives with respect to ``(mu,
sigma)`` in closed form, chained through the map's first and second derivatives (taken
from the family's own ``constrain`` by forward-mode JAX, so the map is never restated).
About half the work of reverse-mode autodiff plus one JVP per parameter, and no
re-evaluation of the ``erfc`` terms per derivative.

Normal, ``z = (y - mu)/sigma``: ``dC/dmu = -erf(z/sqrt2)``, ``dC/dsigma = 2 phi(z) -
1/sqrt(pi)``, second derivatives ``2 phi(z)/sigma (1, z, z^2)``.

Truncated normal (lower bound 0): ``C = max(-y, 0) + sigma B(z, l)`` with ``l = -mu/sigma``,
``z = l + max(y, 0)/sigma``, ``p = Phi(-l)``, ``t = Phi(-z)/p``, ``r = phi(l)/p``, ``q =
Phi(-sqrt2 l)/(sqrt(pi) p^2)`` and ``B = z (1 - 2t) + 2 phi(z)/p - q``. Its partial
derivatives are

- ``B_z = 1 - 2t``, ``B_l = r D`` with ``D = 2 (phi(z)/p - z t - q + r)``,
- ``B_zz = 2 phi(z)/p``, ``B_zl = -2 t r``, ``B_ll = r D (2r - l) + r^2 (4r - 2l - 2q)``,

and, as ``dz/dmu = dl/dmu = -1/sigma``, ``dz/dsigma = -z/sigma``, ``dl/dsigma =
-l/sigma``: ``dC/dmu = -(B_z + B_l)``, ``dC/dsigma = B - z B_z - l B_l`` and ``sigma
d2C = v' H_B v'`` with ``v = (1, 1)`` for ``mu`` and ``(z, l)`` for ``sigma``.
(``tests/baselines/test_baselines_emos_analytic.py`` checks all forms against JAX autodiff of the
same forms.) Beyond ``l =`` :data:`TRUNC_LIMIT` the ratios ``t, phi(z)/p, r, q`` come from
the Mills ratio's asymptotic series (:func:`tails`), so that rows far in the tail (the first
Newton iterates from a zero start cross about a thousand) stay in the fitting form up to
:data:`FAR_LIMIT`; its cancelling ``O(l)`` terms limit it there.

Censored normal (point masses at the bounds, e.g. cloud cover in [0, 1]): see
:func:`_censored_normal`; its CRPS is the family's own formula, its derivatives closed-form
(the kernel takes about half the time of autodiff's: 0.25 s vs 0.46 s per million rows).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.scipy.special import erf, erfc

from probcast import dists
from probcast.dists.censored import CensoredNormal, cancelled_sum, tail_terms

INV_SQRT_PI = 1.0 / math.sqrt(math.pi)
INV_SQRT2 = 1.0 / math.sqrt(2.0)
LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
SQRT2 = math.sqrt(2.0)
TRUNC_LIMIT = 12.0
"""Standardised truncation point ``l = -loc/scale`` above which the truncated normal's tail
ratios come from the Mills ratio's asymptotic series (:func:`mills`) instead of ``erfc``."""
FAR_LIMIT = 30.0
"""Largest ``l`` of the fitting form. Its derivatives are differences of ``O(l)`` terms
that are ``O(1/l)`` or smaller, so their relative error grows like ``l^3``-``l^4`` ulps (up
to 30: CRPS within 1e-12, gradient 3e-8, Hessian 4e-6 of a 50-digit reference and of
autodiff; the ``erfc`` form at ``l = 11``: 7e-9 and 2e-7; at 40 the gradient is off by
3e-7, at 150 the Hessian by 1e-2); rows beyond are flagged for the family's own formula."""
MILLS_TERMS = 15
"""Terms of the Mills ratio's asymptotic series."""
_MILLS = tuple(float((-1) ** k * math.prod(range(1, 2 * k, 2))) for k in range(MILLS_TERMS))


def pdf(z: jax.Array) -> jax.Array:
    """Standard normal density."""
    return jnp.exp(-0.5 * z * z - LOG_SQRT_2PI)


Moments = tuple[jax.Array, ...]
"""``(crps, C_mu, C_sigma, C_mumu, C_musigma, C_sigmasigma, ok)`` per row."""


def _normal(mu: jax.Array, sigma: jax.Array, y: jax.Array) -> Moments:
    z = (y - mu) / sigma
    e, ph = erf(z * INV_SQRT2), pdf(z)
    crps = sigma * (z * e + 2.0 * ph - INV_SQRT_PI)
    c = 2.0 * ph / sigma
    return crps, -e, 2.0 * ph - INV_SQRT_PI, c, c * z, c * z * z, jnp.ones(crps.shape, bool)


def mills(x: jax.Array) -> jax.Array:
    """Mills ratio ``Phi(-x)/phi(x)`` for ``x >=`` :data:`TRUNC_LIMIT`: its asymptotic series.

    ``(1/x) sum_k (-1)^k (2k-1)!! / x^(2k)``, :data:`MILLS_TERMS` terms (the first one left
    out is below 3e-17 of the sum at ``x = 12``).
    """
    u = 1.0 / (x * x)
    acc = jnp.full_like(x, _MILLS[-1])
    for c in _MILLS[-2::-1]:
        acc = acc * u + c
    return acc / x


def tails(
    lo: jax.Array, y: jax.Array, sigma: jax.Array
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """The truncated normal's tail ratios ``(l, z, t, phi(z)/p, r, q, ok)`` (module doc).

    With ``erfc`` while ``l <`` :data:`TRUNC_LIMIT`, beyond from :func:`mills` (``p =
    phi(l) R(l)``: ``t = e R(z)/R(l)``, ``phi(z)/p = e/R(l)``, ``r = 1/R(l)``, ``q = sqrt2
    R(sqrt2 l)/R(l)^2`` with ``e = exp((l^2 - z^2)/2)``); ``l`` is clamped at
    :data:`FAR_LIMIT` and ``ok`` flags the rows below it. Both branches are finite
    everywhere (their arguments are clamped), so that autodiff of the selection is too.
    """
    ls = jnp.minimum(lo, FAR_LIMIT)  # beyond: flagged, re-evaluated by the family's form
    v = jnp.maximum(y, 0.0) / sigma
    near = lo < TRUNC_LIMIT
    ln = jnp.where(near, ls, TRUNC_LIMIT)  # where, not min/max: no split slope at a tie
    kept = 0.5 * erfc(ln * INV_SQRT2)
    t_n = jnp.clip(0.5 * erfc((ln + v) * INV_SQRT2) / kept, 0.0, 1.0)
    q_n = INV_SQRT_PI * 0.5 * erfc(ln) / (kept * kept)
    pz_n, r_n = pdf(ln + v) / kept, pdf(ln) / kept
    near_terms = (t_n, pz_n, r_n, q_n)

    def far() -> tuple[jax.Array, ...]:
        lf = jnp.where(near, TRUNC_LIMIT, ls)
        inv = 1.0 / mills(lf)
        e = jnp.exp(-0.5 * v * (2.0 * lf + v))
        t_f = e * mills(lf + v) * inv
        q_f = SQRT2 * mills(SQRT2 * lf) * inv * inv
        far_terms = (t_f, e * inv, inv, q_f)
        return tuple(jnp.where(near, a, b) for a, b in zip(near_terms, far_terms, strict=True))

    # the series only where some row needs it (most calls: none)
    t, pz, r, q = jax.lax.cond(jnp.all(near), lambda: near_terms, far)
    return ls, ls + v, t, pz, r, q, lo < FAR_LIMIT


def _truncated_normal(mu: jax.Array, sigma: jax.Array, y: jax.Array) -> Moments:
    ls, z, t, pz, r, q, ok = tails(-mu / sigma, y, sigma)
    body = z * (1.0 - 2.0 * t) + 2.0 * pz - q
    # in (v, l) with v = z - l fixed by y: the differences e, f, g are O(1/l) for large l
    e, f, g = pz - z * t, r - q, r - ls
    b_v = 1.0 - 2.0 * t
    b_l = b_v + 2.0 * r * (e + f)
    b_vv, b_vl = 2.0 * pz, 2.0 * (pz - t * r)
    b_ll = b_vl + 2.0 * r * (r * g - t) + 2.0 * r * (g * (e + f) + r * e + 2.0 * r * f)
    live = body > 0.0  # the CRPS is clamped at 0 (rounding): no slope there
    crps = jnp.maximum(-y, 0.0) + sigma * jnp.maximum(body, 0.0)

    def on(v: jax.Array) -> jax.Array:
        return jnp.where(live, v, 0.0)

    v = z - ls
    h_mm = b_ll / sigma
    h_ms = (v * b_vl + ls * b_ll) / sigma
    h_ss = (v * v * b_vv + 2.0 * v * ls * b_vl + ls * ls * b_ll) / sigma
    g_m, g_s = -b_l, body - v * b_v - ls * b_l
    return crps, on(g_m), on(g_s), on(h_mm), on(h_ms), on(h_ss), ok


def _cdf_pair(t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(Phi(t), Phi(-t))`` from one ``erfc`` of ``|t|``: the smaller one without rounding."""
    small = 0.5 * erfc(jnp.abs(t) * INV_SQRT2)
    neg = t < 0.0
    return jnp.where(neg, small, 1.0 - small), jnp.where(neg, 1.0 - small, small)


def _censored_normal(
    mu: jax.Array, sigma: jax.Array, y: jax.Array, dist: CensoredNormal
) -> Moments:
    """``dist`` (normal censored at its ``lower``, ``upper``): ``C = sigma B(w, l, m)``.

    With ``w = (y - mu)/sigma``, ``l = (lower - mu)/sigma``, ``m = (mu - upper)/sigma``
    and ``T`` the censoring correction of :mod:`probcast.dists.censored`, ``B = N(w) + T(l)
    + T(m)`` for ``y`` within the bounds (``T' = -Phi^2``, ``T'' = -2 Phi phi``; ``N' = 2
    Phi - 1``, ``N'' = 2 phi``); below ``lower`` the ``w`` and ``l`` terms become ``l - w``
    and ``l + N(l) + T(l)``, above ``upper`` the ``w`` and ``m`` terms ``w + m`` and
    ``N(-m) + T(m)``. ``dw, dl = -1/sigma``, ``dm = +1/sigma`` per unit of ``mu``; every
    argument ``x`` moves by ``-x/sigma`` per unit of ``sigma``. The derivatives have no
    cancelling terms. The CRPS is the family's formula (the branch whose bound holds most
    of the mass rewritten so that its ``O(|bound|)`` terms cancel exactly), from the same
    five ``erfc`` values as the derivatives (the family's own evaluates about twenty:
    the kernel takes 0.4 of its time).
    """
    w, lo = (y - mu) / sigma, (dist.lower - mu) / sigma
    two_sided = math.isfinite(dist.upper)
    m = (mu - dist.upper) / sigma if two_sided else jnp.full_like(mu, -jnp.inf)
    below, above = w < lo, w > -m
    z = jnp.where(below, lo, jnp.where(above, -m, w))  # w clipped to the bounds
    (cdf_z, sf_z), (cdf_l, sf_l), (cdf2_l, sf2_l) = map(_cdf_pair, (z, lo, SQRT2 * lo))
    pdf_z, pdf_l = pdf(z), pdf(lo)
    zero = jnp.zeros_like(mu)
    m0 = m if two_sided else zero  # no upper bound: its terms are 0
    cdf_m, sf_m, cdf2_m, sf2_m, pdf_m = zero, zero, zero, zero, zero
    if two_sided:
        (cdf_m, sf_m), (cdf2_m, sf2_m) = _cdf_pair(m), _cdf_pair(SQRT2 * m)
        pdf_m = pdf(m)

    t_l, t_m = tail_terms(lo, cdf_l, pdf_l, cdf2_l), tail_terms(m0, cdf_m, pdf_m, cdf2_m)
    body = z * (cdf_z - sf_z) + 2.0 * pdf_z - INV_SQRT_PI + t_l + t_m
    # most mass below lower (l > 0; then m < 0): N(z) + T(l) with its O(l) terms cancelled
    low = cancelled_sum(z, lo, sf_z, pdf_z, cdf_l, sf_l, pdf_l, sf2_l) + t_m
    body = jnp.where(lo > 0.0, low, body)
    if two_sided:  # most mass above upper (m > 0): the mirror image (phi is even)
        high = cancelled_sum(-z, m, cdf_z, pdf_z, cdf_m, sf_m, pdf_m, sf2_m)
        body = jnp.where(m > 0.0, high + t_l, body)
    crps = sigma * (jnp.abs(w - z) + body)
    # (first, second) derivative of each argument's term, then chained (B separable)
    b_w = jnp.where(below, -1.0, jnp.where(above, 1.0, 2.0 * cdf_z - 1.0))
    b_ww = jnp.where(below | above, 0.0, 2.0 * pdf_z)
    b_l = jnp.where(below, 2.0 * cdf_l, 0.0) - cdf_l * cdf_l
    b_ll = jnp.where(below, 2.0 * pdf_l, 0.0) - 2.0 * cdf_l * pdf_l
    b_m = jnp.where(above, 2.0 * cdf_m, 0.0) - cdf_m * cdf_m
    b_mm = jnp.where(above, 2.0 * pdf_m, 0.0) - 2.0 * cdf_m * pdf_m
    g_m = -b_w - b_l + b_m
    g_s = crps / sigma - w * b_w - lo * b_l - m0 * b_m
    h_mm = (b_ww + b_ll + b_mm) / sigma
    h_ms = (w * b_ww + lo * b_ll - m0 * b_mm) / sigma
    h_ss = (w * w * b_ww + lo * lo * b_ll + m0 * m0 * b_mm) / sigma
    return crps, g_m, g_s, h_mm, h_ms, h_ss, jnp.ones(crps.shape, bool)


FORMS: dict[str, Callable[[jax.Array, jax.Array, jax.Array], Moments]] = {
    "normal": _normal,
    "truncated_normal": _truncated_normal,
    **{
        name: functools.partial(_censored_normal, dist=fam)
        for name, fam in dists.DISTRIBUTIONS.items()
        if isinstance(fam, CensoredNormal)
    },
}
"""Families with an analytic fitting form (all :class:`LocScaleFamily` maps)."""


def row_columns(
    raw: list[jax.Array], center: jax.Array, y: jax.Array, spread: jax.Array, family: str
) -> tuple[jax.Array, list[jax.Array], dict[tuple[int, int], jax.Array], jax.Array]:
    """``(crps, [d crps / d raw_a], {(a, b): d2 crps / d raw_a d raw_b, a <= b}, ok)``.

    Per row, from the unconstrained values ``raw = [raw0, raw1]`` (one vector each).
    ``loc`` is linear in ``raw0`` and ``scale`` depends on ``raw1`` only (the
    location-scale map), so the chain rule has no cross terms of the map.
    """
    dist = dists.get(family)
    r0, r1 = raw
    ones = jnp.ones_like(r0)

    def loc(a: jax.Array) -> jax.Array:
        return dist.constrain(jnp.stack([a, r1], -1), center, spread)["loc"]

    def scale(b: jax.Array) -> jax.Array:
        return dist.constrain(jnp.stack([r0, b], -1), center, spread)["scale"]

    def scale_slope(b: jax.Array) -> tuple[jax.Array, jax.Array]:
        return jax.jvp(scale, (b,), (ones,))

    mu, dmu = jax.jvp(loc, (r0,), (ones,))
    (sigma, ds), (_, d2s) = jax.jvp(scale_slope, (r1,), (ones,))
    crps, c_m, c_s, c_mm, c_ms, c_ss, ok = FORMS[family](mu, sigma, y)
    hess = {(0, 0): c_mm * dmu * dmu, (0, 1): c_ms * dmu * ds, (1, 1): c_ss * ds * ds + c_s * d2s}
    return crps, [c_m * dmu, c_s * ds], hess, ok


def row_terms(
    raw: jax.Array, center: jax.Array, y: jax.Array, spread: jax.Array, family: str
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """:func:`row_columns` stacked: ``(crps, (rows, 2), (rows, 2, 2), ok)``."""
    crps, grad, hess, ok = row_columns([raw[:, 0], raw[:, 1]], center, y, spread, family)
    h01 = hess[0, 1]
    h_raw = jnp.stack([jnp.stack([hess[0, 0], h01], -1), jnp.stack([h01, hess[1, 1]], -1)], -2)
    return crps, jnp.stack(grad, -1), h_raw, ok
