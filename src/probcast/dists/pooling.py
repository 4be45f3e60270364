"""Combining the predictive distributions of several seed networks.

Two standard pools (Ranjan & Gneiting 2010 for the linear pool; Ratcliff 1979 / Genest 1992
for quantile averaging, "Vincentization"):

* ``vincentize``: the quantile function is the average of the networks' quantile
  functions. For location-scale families this is the family with averaged parameters; it
  keeps the members' shape and sharpness, which is why it is the default. Censored and
  truncated location-scale families are pooled in their latent space: the latent laws'
  quantiles are averaged (the latent family with averaged parameters) and then censored or
  truncated, so the pool stays in the family and is exactly what :func:`mean_params`
  gives, the parameters that training's blend, spread factor and recalibration map were
  fitted to and that the products write (averaging the censored quantiles themselves
  would give a pool whose point mass is the smallest network's, outside the family).
* ``mixture``: the linear pool, ``F = mean_s F_s``; wider than any member when the networks
  disagree.

Inverses with no closed form are found numerically: quantiles of a mixture by bisection
(a monotone ``cdf``), ``F`` of a Vincentized pool outside the location-scale families (the
censored shifted gamma) by Newton steps on the level inside a bracket
(:func:`_pooled_level`: ``quantile``, ``cdf`` and ``log_prob``). Parameters are passed as
one dict per network, arrays of shape ``(n,)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr, ndtri

from probcast.dists._common import LocScaleFamily
from probcast.dists.registry import Distribution

Params = dict[str, jax.Array]
_Search = tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]
"""The pooled-level search's state: iteration, score, bracket, ends evaluated, active."""
_MAX_STEPS = 40
"""Iterations of a bisection (:func:`_bisect`: a 2**-40 bracket) and the most of a pooled
level's search (:func:`_pooled_level`, which usually stops after 5-7)."""
_LEVEL_TOL, _TAIL_RTOL = 2e-6, 1e-3
"""A step of :func:`_pooled_level` below ``min(_LEVEL_TOL, _TAIL_RTOL min(u, 1 - u))`` in
the level ends its search: absolute precision in the body, relative in the tails (where
float32 quantiles' rounding would keep a tighter search going)."""
_VALUE_TOL = 1e-6
"""Relative distance of the pooled quantile to the threshold at which it stops as well."""
_U_MIN, _U_MAX = 1e-7, 1.0 - 1e-7
"""Range of a pooled level: the families' quantiles clip their levels to it."""


def _expand(p: Params) -> Params:
    return {k: jnp.asarray(v)[..., None] for k, v in p.items()}


def _bisect(fn, lo: jax.Array, hi: jax.Array, target: jax.Array) -> jax.Array:  # type: ignore[no-untyped-def]
    """``inf{x in [lo, hi]: fn(x) >= target}`` for a non-decreasing ``fn`` (2**-40 bracket).

    ``lo`` itself where ``fn(lo) >= target``: a level inside a point mass at ``lo`` (the
    dry cases of pooled precipitation) is exactly ``lo``, not a value ``2**-40`` of the
    bracket above it (a member of 1e-13 mm counted as wet).
    """
    at_lo = fn(lo) >= target

    def body(_: int, bounds: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        a, b = bounds
        mid = 0.5 * (a + b)
        below = fn(mid) <= target
        return jnp.where(below, mid, a), jnp.where(below, b, mid)

    a, b = jax.lax.fori_loop(0, _MAX_STEPS, body, (lo, hi))
    return jnp.where(at_lo, lo, 0.5 * (a + b))


@partial(jax.jit, static_argnames=("dist", "combine"))
def quantile_at(
    dist: Distribution, params: Sequence[Params], q: jax.Array, combine: str
) -> jax.Array:
    """Pooled quantiles at levels ``q`` (broadcastable to ``(n, k)``, in (0, 1)): ``(n, k)``."""
    params = _in_family(dist, params, combine)
    each = jnp.stack([dist.quantile(_expand(p), q) for p in params])
    if len(params) == 1 or combine == "vincentize":
        return jnp.mean(each, axis=0)

    def cdf(x: jax.Array) -> jax.Array:
        return jnp.mean(jnp.stack([dist.cdf(_expand(p), x) for p in params]), axis=0)

    return _bisect(cdf, jnp.min(each, 0), jnp.max(each, 0), jnp.broadcast_to(q, each.shape[1:]))


@partial(jax.jit, static_argnames=("dist", "combine"))
def exceedance(
    dist: Distribution, params: Sequence[Params], t: jax.Array, combine: str
) -> jax.Array:
    """Pooled probability of exceeding thresholds ``t`` (``(k,)``): ``(n, k)``, in [0, 1].

    Clipped: the float32 mean of CDFs that are all 1 can round to 1 + 1.5e-8, which gave
    probabilities of -1.5e-8.
    """
    params = _in_family(dist, params, combine)
    if len(params) == 1 or combine == "mixture":
        cdf = jnp.mean(jnp.stack([dist.cdf(_expand(p), t) for p in params]), axis=0)
    else:
        n = jnp.broadcast_shapes(*(jnp.shape(v) for v in params[0].values()))
        cdf = _pooled_level(dist, params, jnp.broadcast_to(t, (*n, jnp.shape(t)[-1])))
    return jnp.clip(1.0 - cdf, 0.0, 1.0)


def _in_family(dist: Distribution, params: Sequence[Params], combine: str) -> Sequence[Params]:
    """One network with averaged parameters: a location-scale family's Vincentized pool."""
    if combine == "vincentize" and len(params) > 1 and isinstance(dist, LocScaleFamily):
        return [mean_params(params)]
    return params


def _pooled_level(dist: Distribution, params: Sequence[Params], t: jax.Array) -> jax.Array:
    """``F(t)`` of the Vincentized pool (``t`` shaped like the parameters plus one axis).

    The level ``u`` where ``qbar(u) = mean_s Q_s(u)`` reaches ``t``. It lies between the
    networks' smallest and largest ``F_s(t)`` (below every ``F_s(t)`` every ``Q_s(u) <=
    t``): that bracket, widened by float32 rounding and limited to
    ``[_U_MIN, _U_MAX]``, holds the search, which starts at its mean (the linear pool's
    ``F(t)``). Newton steps on the normal score ``z = Phi^-1(u)`` (quantiles are nearly
    linear in it, also in the tails) with ``d qbar / dz = phi(z) mean_s 1 / f_s(Q_s(u))``
    (0 for a network at a bound of its support); every evaluation narrows the bracket
    (``qbar(lo) <= t < qbar(hi)``), and a step leaving it tries the bracket's end where that
    has not been evaluated (the answer at a point mass or at the range's end), else
    bisects. An element stops once its step is below :data:`_LEVEL_TOL` (relative
    :data:`_TAIL_RTOL` in the tails), its pooled quantile within :data:`_VALUE_TOL` of
    ``t`` on a rising stretch, or its bracket closed; at most :data:`_MAX_STEPS`
    iterations. Its error against a float64 reference is below 1e-5
    (``tests/dists/test_dists_pooling.py``); 5-6 iterations of ``quantile`` and
    ``log_prob`` per network, where bisection on ``[0, 1]`` took 40 of ``quantile``
    (``benchmarks/quantile_speed.py``).
    """
    low = float(getattr(dist, "lower", -jnp.inf))
    high = float(getattr(dist, "upper", jnp.inf))
    each = [_expand(p) for p in params]
    cdfs = jnp.stack([dist.cdf(p, t) for p in each])
    margin = 1e-4  # the networks' float32 cdf and quantile agree to about 4e-5
    least, most = jnp.min(cdfs, axis=0), jnp.max(cdfs, axis=0)
    lo = jnp.clip(least - margin, _U_MIN, _U_MAX)
    hi = jnp.clip(most + margin, _U_MIN, _U_MAX)
    z0 = ndtri(jnp.clip(jnp.mean(cdfs, axis=0), _U_MIN, _U_MAX))

    def cond(carry: _Search) -> jax.Array:
        i, *_, active = carry
        return (i < _MAX_STEPS) & jnp.any(active)

    def body(carry: _Search) -> _Search:
        i, z, lo, hi, lo_seen, hi_seen, active = carry
        u = ndtr(z)
        x = jnp.stack([dist.quantile(p, u) for p in each])
        inside = (x > low) & (x < high)
        dens = jnp.stack([jnp.exp(dist.log_prob(p, v)) for p, v in zip(each, x, strict=True)])
        slope_u = jnp.mean(jnp.where(inside, 1.0 / jnp.maximum(dens, 1e-30), 0.0), axis=0)
        slope = slope_u * jnp.exp(-0.5 * z * z) / jnp.sqrt(2.0 * jnp.pi)
        gap = jnp.mean(x, axis=0) - t
        below = gap <= 0.0
        lo, hi = jnp.where(below, z, lo), jnp.where(below, hi, z)
        lo_seen, hi_seen = lo_seen | below, hi_seen | ~below
        newton = z - gap / jnp.where(slope > 0.0, slope, 1.0)
        ok = (slope > 0.0) & jnp.isfinite(newton) & (newton > lo) & (newton < hi)
        nxt = jnp.where(ok, newton, 0.5 * (lo + hi))
        # a step beyond an end of the bracket not evaluated yet: that end (it may be the answer)
        nxt = jnp.where(~ok & (newton <= lo) & ~lo_seen, lo, nxt)
        nxt = jnp.where(~ok & (newton >= hi) & ~hi_seen, hi, nxt)
        scale = jnp.maximum(jnp.abs(t), jnp.mean(jnp.abs(x), axis=0))
        # (not on a flat stretch, a point mass: its largest level is the answer)
        close = (jnp.abs(gap) <= _VALUE_TOL * scale) & (slope > 0.0)
        # a level's precision: absolute in the body, relative in the tails
        tol = jnp.minimum(_LEVEL_TOL, _TAIL_RTOL * jnp.minimum(u, 1.0 - u))
        moved = jnp.abs(ndtr(nxt) - u) > tol
        active = active & ~close & moved & (ndtr(hi) - ndtr(lo) > tol)
        return i + 1, jnp.where(active, nxt, z), lo, hi, lo_seen, hi_seen, active

    zlo, zhi = ndtri(lo), ndtri(hi)
    no = jnp.zeros(zlo.shape, bool)
    carry = (jnp.asarray(0), jnp.clip(z0, zlo, zhi), zlo, zhi, no, no, hi - lo > 0.0)
    _, z, zlo, zhi, *_ = jax.lax.while_loop(cond, body, carry)
    u = ndtr(jnp.clip(z, zlo, zhi))
    # every network's F(t) beyond an end of the range: that end of [0, 1] (below the
    # support F(t) = 0 exactly)
    return jnp.where(most <= _U_MIN, 0.0, jnp.where(least >= _U_MAX, 1.0, u))


def mean_params(params: Sequence[Params]) -> Params:
    """Parameter-wise mean over networks (the Vincentized pool of a location-scale family)."""
    return {k: jnp.mean(jnp.stack([p[k] for p in params]), axis=0) for k in params[0]}


def blend_params(
    net: Mapping[str, np.ndarray], other: Mapping[str, np.ndarray], weight: float
) -> dict[str, np.ndarray]:
    """Quantile average of two members of one location-scale family: ``(1 - w) net + w other``.

    For two location-scale distributions of one family (censored and truncated ones in their
    latent space) quantile averaging is the weighted mean of ``loc`` and ``scale``, so the
    pool stays in the family. Rows where ``other`` has no value keep ``net``'s parameters.
    """
    ok = np.logical_and.reduce([np.isfinite(np.asarray(other[k])) for k in net])
    out = {}
    for k, v in net.items():
        e = np.asarray(other[k], dtype=np.float32)
        mixed = (1.0 - weight) * np.asarray(v, dtype=np.float32) + weight * e
        out[k] = np.where(ok, mixed, v).astype(np.float32)
    return out
