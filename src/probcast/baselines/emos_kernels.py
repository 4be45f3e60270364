"""EMOS kernels: per-row CRPS derivatives and their per-group sums, on the device.

:data:`group_terms` is what the Newton fit calls once per iteration: from the coefficients
``theta (G, n_params, n_feat)`` and the rows (design, group, weight, centre, observation,
all resident on the device for the whole run), every group's weighted CRPS sum, gradient and
Hessian with respect to its coefficients, so that only ``G (1 + k + k^2)`` values come back
(``k = n_params n_feat``, 4 to 9). The per-row derivatives with respect to the row's
unconstrained values are analytic for the normal and the truncated normal
(:mod:`probcast.baselines.emos_analytic`) and JAX autodiff for every other family
(:data:`row_terms`: reverse mode for the gradient, one forward-mode pass per parameter for
the Hessian); the chain rule to ``theta`` is a sum of outer products with the design row.
Rows are elementwise, so padded rows (weight 0) cannot change a real row's value.

Fitting forms. The CRPS of the normal and the truncated normal are evaluated here with
``erf``/``erfc`` instead of :mod:`probcast.dists`' ``ndtr`` / ``log_ndtr``, which are
written for float32 safety and cost up to 5 times more in float64 (both branches of their
``where`` are computed, with their derivatives). The closed forms are the same (Gneiting et
al. 2005; Thorarinsdottir & Gneiting 2010) and agree with the families' to float64 rounding
(``tests/baselines/test_baselines_emos_newton.py``). The truncated-normal form divides by the
kept mass ``Phi(-l)``: up to ``l = -loc/scale =`` :data:`TRUNC_LIMIT` (12: up to there its
float64 CRPS is within 1e-11 and its gradient within 2e-9 of a 50-digit reference) with
``erfc``, beyond with the Mills ratio's asymptotic series
(:func:`~probcast.baselines.emos_analytic.tails`; up to ``l =``
:data:`~probcast.baselines.emos_analytic.FAR_LIMIT`, 30, its CRPS is within 1e-12, its
gradient within 3e-8 and its Hessian within 4e-6 of a 50-digit reference). The kernel
flags the rows below that limit (``ok``), leaves the others out of the sums, and the caller
re-evaluates them with the family's own formula (:data:`group_terms` with ``exact=True``)
on those rows only, one row a block. Every other
family uses its own ``crps``; a family whose formula has no second derivative in JAX
(``censored_shifted_gamma``: ``igamma_grad_a``) is refused by :func:`has_hessian`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import erf

from probcast import dists
from probcast.baselines import emos_analytic
from probcast.baselines.emos_analytic import FAR_LIMIT as FAR_LIMIT  # re-exported
from probcast.baselines.emos_analytic import INV_SQRT2, INV_SQRT_PI
from probcast.baselines.emos_analytic import TRUNC_LIMIT as TRUNC_LIMIT  # re-exported
from probcast.baselines.emos_analytic import pdf as _pdf

Params = dict[str, jax.Array]
Form = Callable[[Params, jax.Array], tuple[jax.Array, jax.Array]]


def _normal(params: Params, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Normal CRPS ``s [z erf(z/sqrt2) + 2 phi(z) - 1/sqrt(pi)]`` (``2 Phi(z) - 1 = erf``)."""
    mu, sigma = params["loc"], params["scale"]
    z = (y - mu) / sigma
    crps = sigma * (z * erf(z * INV_SQRT2) + 2.0 * _pdf(z) - INV_SQRT_PI)
    return crps, jnp.ones(crps.shape, bool)


def _truncated_normal(params: Params, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Truncated-normal CRPS with tail ratios over ``Phi(-l) = erfc(l/sqrt2)/2``.

    ``CRPS = max(-y, 0) + s max(z (1 - 2 Phi(-z)/p) + 2 phi(z)/p - Phi(-sqrt2 l)/(sqrt(pi)
    p^2), 0)`` with ``z = l + max(y, 0)/s``, ``p = Phi(-l)``; the ratios from
    :func:`~probcast.baselines.emos_analytic.tails` (rows beyond
    :data:`~probcast.baselines.emos_analytic.FAR_LIMIT` are flagged).
    """
    mu, sigma = params["loc"], params["scale"]
    _, z, t, pz, _, q, ok = emos_analytic.tails(-mu / sigma, y, sigma)
    body = z * (1.0 - 2.0 * t) + 2.0 * pz - q
    crps = jnp.maximum(-y, 0.0) + sigma * jnp.maximum(body, 0.0)
    return crps, ok


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
    raw: jax.Array,
    center: jax.Array,
    y: jax.Array,
    spread: jax.Array,
    family: str,
    exact: bool,
    analytic: bool = True,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    if analytic and not exact and family in emos_analytic.FORMS:
        return emos_analytic.row_terms(raw, center, y, spread, family)

    def grad(r: jax.Array) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        return jax.grad(_crps, has_aux=True)(r, center, y, spread, family, exact)  # type: ignore[no-any-return]

    d_raw, (crps, ok) = grad(raw)
    columns = []
    for j in range(raw.shape[-1]):  # rows are independent: one JVP per parameter
        tangent = jnp.zeros_like(raw).at[:, j].set(1.0)
        columns.append(jax.jvp(lambda r: grad(r)[0], (raw,), (tangent,))[1])
    return crps, d_raw, jnp.stack(columns, axis=-1), ok


row_terms = jax.jit(_terms, static_argnames=("family", "exact", "analytic"))
"""``(crps, d crps / d raw, d2 crps / d raw2, ok)`` per row; compiled once per family,
``exact``, row count and dtype. ``analytic=False``: JAX autodiff of the fast forms (the
reference of the analytic derivatives)."""


def _group_terms(
    theta: jax.Array,
    xt: jax.Array,
    blocks: jax.Array,
    weight: jax.Array,
    center: jax.Array,
    y: jax.Array,
    spread: jax.Array,
    family: str,
    exact: bool,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    n_groups, p, f = theta.shape
    rows = xt.shape[1]
    size = rows // blocks.shape[0]  # rows of a block: consecutive rows of one group
    if n_groups == 1:
        coefs = [[theta[0, a, k] for k in range(f)] for a in range(p)]
    else:
        per_block = theta[blocks]  # (blocks, p, f): broadcast over each block's rows
        coefs = [[per_block[:, a, k, None] for k in range(f)] for a in range(p)]
    x_blocks = xt.reshape(f, -1, size)
    raw = [
        functools.reduce(jnp.add, [coefs[a][k] * x_blocks[k] for k in range(f)]).reshape(rows)
        for a in range(p)
    ]
    pairs_f = [(k, m) for k in range(f) for m in range(k, f)]
    pairs_p = [(a, c) for a in range(p) for c in range(a, p)]
    if not exact and family in emos_analytic.FORMS:
        crps, d_raw, h_raw, ok = emos_analytic.row_columns(raw, center, y, spread, family)
    else:
        out = _terms(jnp.stack(raw, -1), center, y, spread, family, exact)
        crps, ok = out[0], out[3]
        d_raw = [out[1][:, a] for a in range(p)]
        h_raw = {(a, c): out[2][:, a, c] for a, c in pairs_p}
    keep = ok & (weight > 0.0)  # far rows (re-evaluated by the caller) and padding: out
    w = jnp.where(keep, weight, 0.0)
    wx = [w * xt[k] for k in range(f)]
    columns = [w * jnp.where(keep, crps, 0.0)]
    columns += [jnp.where(keep, d_raw[a], 0.0) * wx[k] for a in range(p) for k in range(f)]
    wxx = [wx[k] * xt[m] for k, m in pairs_f]
    columns += [jnp.where(keep, h_raw[a, c], 0.0) * v for a, c in pairs_p for v in wxx]
    # every term summed on its own (contiguous reductions; XLA fuses each with its
    # producers): over the rows for one group, else per block, then the blocks by group
    if n_groups == 1:
        sums = jnp.stack([v.sum() for v in columns])[None]
    else:
        part = jnp.stack([v.reshape(-1, size).sum(axis=1) for v in columns], axis=1)
        sums = jax.ops.segment_sum(part, blocks, num_segments=n_groups)
    # H[(a, f), (b, f')] = sum of pair (a, b) of the parameters times pair (f, f') of features
    num_p, num_f = np.empty((p, p), np.int64), np.empty((f, f), np.int64)
    for i, (a, c) in enumerate(pairs_p):
        num_p[a, c] = num_p[c, a] = i
    for i, (k, m) in enumerate(pairs_f):
        num_f[k, m] = num_f[m, k] = i
    index = (num_p[:, None, :, None] * len(pairs_f) + num_f[None, :, None, :]).reshape(p * f, -1)
    hess = sums[:, 1 + p * f :][:, index]
    return sums[:, 0], sums[:, 1 : 1 + p * f], hess, ok


group_terms = jax.jit(_group_terms, static_argnames=("family", "exact"))
"""Per-group weighted CRPS sum ``(G,)``, gradient ``(G, k)`` and Hessian ``(G, k, k)`` with
respect to the coefficients ``theta (G, n_params, n_feat)`` (``k = n_params n_feat`` in
``theta[g].ravel()`` order), and the per-row ``ok`` flags.

Rows come in blocks of equal size (``rows / len(blocks)``), each block's rows of one group
``blocks[i]``; they carry their transposed design ``xt (n_feat, rows)`` and weight ``w_r``
(0: padding). Rows not ``ok`` are left out of the sums (the caller re-evaluates them with
``exact=True``). Per-row terms are summed over each block (contiguous reductions), then the
blocks by group: a scatter of ``rows / block`` entries instead of ``rows``. Only the small
per-group arrays leave the device; compiled once per family, ``exact``, row count, block
count, group count (bucketed by the caller) and shape."""


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
