"""Combining the predictive distributions of several seed networks.

Two standard pools (Ranjan & Gneiting 2010 for the linear pool; Ratcliff 1979 / Genest 1992
for quantile averaging, "Vincentization"):

* ``vincentize``: the quantile function is the average of the networks' quantile
  functions. For location-scale families this is the family with averaged parameters; it
  keeps the members' shape and sharpness, which is why it is the default.
* ``mixture``: the linear pool, ``F = mean_s F_s``; wider than any member when the networks
  disagree.

Inverses with no closed form (``F`` of a Vincentized pool, quantiles of a mixture) are found
by bisection, which needs only monotone ``quantile`` / ``cdf`` functions. Parameters are
passed as one dict per network, arrays of shape ``(n,)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from probcast.dists.registry import Distribution

Params = dict[str, jax.Array]
COMBINES = ("vincentize", "mixture")
_BISECTIONS = 40


def check_combine(combine: str) -> str:
    """Validate a ``config.predict.combine`` value."""
    if combine not in COMBINES:
        raise ValueError(f"predict.combine must be one of {COMBINES}, got {combine!r}")
    return combine


def _expand(p: Params) -> Params:
    return {k: jnp.asarray(v)[..., None] for k, v in p.items()}


def _bisect(fn, lo: jax.Array, hi: jax.Array, target: jax.Array) -> jax.Array:  # type: ignore[no-untyped-def]
    """Largest ``x`` in ``[lo, hi]`` with ``fn(x) <= target`` for a non-decreasing ``fn``."""

    def body(_: int, bounds: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        a, b = bounds
        mid = 0.5 * (a + b)
        below = fn(mid) <= target
        return jnp.where(below, mid, a), jnp.where(below, b, mid)

    lo, hi = jax.lax.fori_loop(0, _BISECTIONS, body, (lo, hi))
    return 0.5 * (lo + hi)


@partial(jax.jit, static_argnames=("dist", "combine"))
def quantile_at(
    dist: Distribution, params: Sequence[Params], q: jax.Array, combine: str
) -> jax.Array:
    """Pooled quantiles at levels ``q`` (broadcastable to ``(n, k)``, in (0, 1)): ``(n, k)``."""
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
    """Pooled probability of exceeding thresholds ``t`` (``(k,)``): ``(n, k)``."""
    if len(params) == 1 or combine == "mixture":
        return 1.0 - jnp.mean(jnp.stack([dist.cdf(_expand(p), t) for p in params]), axis=0)

    def qbar(u: jax.Array) -> jax.Array:
        return jnp.mean(jnp.stack([dist.quantile(_expand(p), u) for p in params]), axis=0)

    n = jnp.broadcast_shapes(*(jnp.shape(v) for v in params[0].values()))
    shape = (*n, jnp.shape(t)[-1])
    lo, hi = jnp.zeros(shape), jnp.ones(shape)
    return 1.0 - _bisect(qbar, lo, hi, jnp.broadcast_to(t, shape))


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
