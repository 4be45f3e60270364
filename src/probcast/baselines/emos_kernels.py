"""Per-row CRPS, gradient and Hessian of EMOS with respect to the unconstrained values.

:data:`row_terms` is one module-level ``jax.jit`` with the family static: for every row the
CRPS of ``constrain(raw, center, spread)`` at the observation, its gradient ``(rows,
n_params)`` and Hessian ``(rows, n_params, n_params)`` with respect to the row's ``raw``
(reverse mode for the gradient, one forward-mode pass per parameter for the Hessian). It is
elementwise over rows, so it compiles once per family, row count and dtype and padded rows
cannot change a real row's value.

Fitting forms. The CRPS of the normal and the truncated normal are evaluated here with
``erf``/``erfc`` instead of :mod:`probcast.dists`' ``ndtr`` / ``log_ndtr``, which are
written for float32 safety and cost up to 5 times more in float64 (both branches of their
``where`` are computed, with their derivatives). The closed forms are the same (Gneiting et
al. 2005; Thorarinsdottir & Gneiting 2010) and agree with the families' to float64 rounding
(``tests/baselines/test_baselines_emos_newton.py``). The truncated-normal form divides by the
kept mass ``Phi(-l)`` and is used while ``l = -loc/scale`` stays below :data:`TRUNC_LIMIT`;
the kernel flags the rows inside (``ok``), and the caller re-evaluates the others with the
family's own formula (``exact=True``), on those rows only when they are few. Every other
family uses its own ``crps``; a family whose formula has no second derivative in JAX
(``censored_shifted_gamma``: ``igamma_grad_a``) is refused by :func:`has_hessian`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
from jax.scipy.special import erf, erfc

from probcast import dists

INV_SQRT_PI = 1.0 / math.sqrt(math.pi)
INV_SQRT2 = 1.0 / math.sqrt(2.0)
LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
TRUNC_LIMIT = 8.0
"""Largest standardised truncation point ``l = -loc/scale`` of the fast truncated-normal
form (where the family's own formula switches to its Mills-ratio branch)."""

Params = dict[str, jax.Array]
Form = Callable[[Params, jax.Array], tuple[jax.Array, jax.Array]]


def _pdf(z: jax.Array) -> jax.Array:
    return jnp.exp(-0.5 * z * z - LOG_SQRT_2PI)


def _normal(params: Params, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Normal CRPS ``s [z erf(z/sqrt2) + 2 phi(z) - 1/sqrt(pi)]`` (``2 Phi(z) - 1 = erf``)."""
    mu, sigma = params["loc"], params["scale"]
    z = (y - mu) / sigma
    crps = sigma * (z * erf(z * INV_SQRT2) + 2.0 * _pdf(z) - INV_SQRT_PI)
    return crps, jnp.ones(crps.shape, bool)


def _truncated_normal(params: Params, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Truncated-normal CRPS with tail ratios over ``Phi(-l) = erfc(l/sqrt2)/2``.

    ``CRPS = max(-y, 0) + s max(z (1 - 2 Phi(-z)/p) + 2 phi(z)/p - Phi(-sqrt2 l)/(sqrt(pi)
    p^2), 0)`` with ``z = l + max(y, 0)/s``, ``p = Phi(-l)``; valid while ``l <``
    :data:`TRUNC_LIMIT` (rows beyond are flagged).
    """
    mu, sigma = params["loc"], params["scale"]
    lo = -mu / sigma
    ls = jnp.minimum(lo, TRUNC_LIMIT)  # beyond: flagged, re-evaluated by the family's form
    z = ls + jnp.maximum(y, 0.0) / sigma
    kept = 0.5 * erfc(ls * INV_SQRT2)
    tail = jnp.clip(0.5 * erfc(z * INV_SQRT2) / kept, 0.0, 1.0)
    two = 0.5 * erfc(ls) / (kept * kept)  # Phi(-sqrt2 l) / p^2
    body = z * (1.0 - 2.0 * tail) + 2.0 * _pdf(z) / kept - INV_SQRT_PI * two
    crps = jnp.maximum(-y, 0.0) + sigma * jnp.maximum(body, 0.0)
    return crps, lo < TRUNC_LIMIT


FORMS: dict[str, Form] = {"normal": _normal, "truncated_normal": _truncated_normal}
"""Fast float64 fitting forms of the CRPS, by family; the returned flags say which rows lay
where the form is accurate."""


def _crps(
    raw: jax.Array, center: jax.Array, y: jax.Array, spread: jax.Array, family: str, exact: bool
) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    dist = dists.get(family)
    params = dist.constrain(raw, center, spread)
    form = None if exact else FORMS.get(family)
    if form is None:
        crps = dist.crps(params, y)
        return jnp.sum(crps), (crps, jnp.ones(crps.shape, bool))
    crps, ok = form(params, y)
    return jnp.sum(crps), (crps, ok)


def _terms(
    raw: jax.Array, center: jax.Array, y: jax.Array, spread: jax.Array, family: str, exact: bool
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    def grad(r: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        return jax.grad(_crps, has_aux=True)(r, center, y, spread, family, exact)  # type: ignore[no-any-return]

    d_raw, (crps, ok) = grad(raw)
    columns = []
    for j in range(raw.shape[-1]):  # rows are independent: one JVP per parameter
        tangent = jnp.zeros_like(raw).at[:, j].set(1.0)
        columns.append(jax.jvp(lambda r: grad(r)[0], (raw,), (tangent,))[1])
    return crps, d_raw, jnp.stack(columns, axis=-1), ok


row_terms = jax.jit(_terms, static_argnames=("family", "exact"))
"""``(crps, d crps / d raw, d2 crps / d raw2, ok)`` per row; compiled once per family,
``exact``, row count and dtype."""


@functools.cache
def has_hessian(family: str) -> bool:
    """Whether JAX can differentiate ``family``'s CRPS twice (traced once, not compiled)."""
    x = jax.ShapeDtypeStruct((4, len(dists.get(family).param_names)), jnp.float32)
    v = jax.ShapeDtypeStruct((4,), jnp.float32)
    s = jax.ShapeDtypeStruct((), jnp.float32)
    try:
        jax.eval_shape(functools.partial(_terms, family=family, exact=True), x, v, v, s)
    except NotImplementedError:
        return False
    return True
