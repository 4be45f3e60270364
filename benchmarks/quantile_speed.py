"""Quantile speed of every family, and the gamma quantile before and after its rewrite.

Three tables:

1. The Gamma(k, 1) quantile by shape range: the implementation before the rewrite (copied
   below, ``OLD IMPLEMENTATION``: 12 safeguarded Newton steps on ``log x``, each calling
   JAX's float32 ``gammainc``), the current one (:func:`probcast.dists.gamma._gamma_quantile`:
   Halley steps that stop per element, Temme's asymptotic inversion from shape 100 on) and
   scipy's float64 ``gammaincinv`` on the host (the reference for speed and accuracy), in
   microseconds per element (best of ``--repeats``) and the largest relative error against
   scipy for levels in ``[1e-6, 1 - 1e-4]``.
2. Per family, the PIT recalibration gate's quantile-grid CRPS
   (:func:`probcast.train.recalibrate.grid_crps`: 200 quantiles a row) in seconds per 10,000
   rows, with parameters from each family's ``constrain`` of standard-normal raw outputs.

3. The probability of exceeding thresholds under a Vincentized pool of censored shifted gamma
   networks (:func:`probcast.dists.pooling.exceedance`, the path of a gamma head's
   probabilities and PIT): the former bisection on the level (40 steps from ``[0, 1]``, each
   evaluating every network's quantile; copied below, ``OLD EXCEEDANCE``) against the
   current Newton method on the level's normal score, in microseconds per row, with the
   largest error against a float64 scipy reference on a sample of rows.

Usage::

    .venv/bin/python benchmarks/quantile_speed.py [--rows 100000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammainc, gammaln, ndtri
from scipy.special import gammaincinv

from probcast import dists
from probcast.dists import gamma, pooling
from probcast.testing import references
from probcast.train import recalibrate


# ---- OLD IMPLEMENTATION (src/probcast/dists/gamma.py before the rewrite), kept verbatim ----
def _old_gamma_quantile(k, q, steps=12):  # type: ignore[no-untyped-def]
    """Quantile of Gamma(k, 1) at level ``q`` by safeguarded Newton steps on ``log x``."""
    z = ndtri(jnp.clip(q, 1e-7, 1.0 - 1e-7))
    wilson = k * jnp.maximum(1.0 - 1.0 / (9.0 * k) + z / (3.0 * jnp.sqrt(k)), 1e-3) ** 3
    small = jnp.exp((jnp.log(jnp.maximum(q, 1e-30)) + gammaln(k + 1.0)) / k)
    t = jnp.log(jnp.where(k < 1.0, jnp.minimum(small, wilson + small), wilson))
    log_gamma_k = gammaln(k)

    def newton(_, t):  # type: ignore[no-untyped-def]
        x = jnp.exp(t)
        slope = jnp.exp(k * t - x - log_gamma_k)
        step = (gammainc(k, x) - q) / jnp.maximum(slope, 1e-30)
        return t - jnp.clip(step, -2.0, 2.0)

    t = jax.lax.fori_loop(0, steps, newton, t)
    x = jnp.exp(t)
    x = jnp.where(q <= 0.0, 0.0, x)
    return jnp.where(q >= 1.0, jnp.inf, x)


# ---- end of the old implementation ----

SHAPE_RANGES = [(0.02, 1.0), (1.0, 10.0), (10.0, 100.0), (100.0, 1e4), (0.02, 1e4)]


def _best(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` calls after one warm-up call."""
    jax.block_until_ready(fn())
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - t0)
    return best


def gamma_table(rows: int, repeats: int) -> None:
    """Table 1: the gamma quantile by shape range."""
    old, new = jax.jit(_old_gamma_quantile), jax.jit(gamma._gamma_quantile)
    rng = np.random.default_rng(0)
    print("| shapes | old us/el | new us/el | scipy us/el | old/new | max rel err old | new |")
    print("|---|---|---|---|---|---|---|")
    for lo, hi in SHAPE_RANGES:
        k = np.exp(rng.uniform(np.log(lo), np.log(hi), rows)).astype(np.float32)
        q = rng.uniform(1e-6, 1.0 - 1e-4, rows).astype(np.float32)
        kj, qj = jnp.asarray(k), jnp.asarray(q)
        k64, q64 = k.astype(np.float64), q.astype(np.float64)
        ref = gammaincinv(k64, q64)
        shown = ref > 1e-30
        t_old = _best(lambda: old(kj, qj), repeats)  # noqa: B023
        t_new = _best(lambda: new(kj, qj), repeats)  # noqa: B023
        t_ref = _best(lambda: gammaincinv(k64, q64), repeats)  # noqa: B023
        err = [
            float(np.max(np.abs(np.asarray(f(kj, qj))[shown] - ref[shown]) / ref[shown]))
            for f in (old, new)
        ]
        us = [1e6 * t / rows for t in (t_old, t_new, t_ref)]
        print(
            f"| {lo:g}-{hi:g} | {us[0]:.2f} | {us[1]:.2f} | {us[2]:.2f} | "
            f"{t_old / t_new:.1f}x | {err[0]:.1e} | {err[1]:.1e} |"
        )


def gate_table(rows: int, repeats: int) -> None:
    """Table 2: the recalibration gate's quantile-grid CRPS per family."""
    rng = np.random.default_rng(1)
    center = np.abs(rng.normal(0.0, 2.0, rows)).astype(np.float32)
    y = np.maximum(center + rng.normal(0.0, 1.0, rows), 0.0)
    print("\n| family | grid CRPS (200 quantiles a row), s per 10,000 rows |")
    print("|---|---|")
    for name in sorted(dists.DISTRIBUTIONS):
        family = dists.get(name)
        raw = rng.normal(0.0, 1.0, (rows, len(family.param_names))).astype(np.float32)
        params = {
            k: np.asarray(v)
            for k, v in family.constrain(jnp.asarray(raw), jnp.asarray(center), 1.0).items()
        }
        t = _best(lambda: recalibrate.grid_crps(name, params, y), repeats)  # noqa: B023
        print(f"| {name} | {1e4 * t / rows:.3f} |")


# ---- OLD EXCEEDANCE (src/probcast/dists/pooling.py before the Newton method), verbatim ----
def _old_exceedance(dist, params, t):  # type: ignore[no-untyped-def]
    def qbar(u):  # type: ignore[no-untyped-def]
        return jnp.mean(jnp.stack([dist.quantile(pooling._expand(p), u) for p in params]), 0)

    n = jnp.broadcast_shapes(*(jnp.shape(v) for v in params[0].values()))
    shape = (*n, jnp.shape(t)[-1])
    lo, hi = jnp.zeros(shape), jnp.ones(shape)
    return 1.0 - pooling._bisect(qbar, lo, hi, jnp.broadcast_to(t, shape))


# ---- end of the old exceedance ----


def pool_table(rows: int, networks: int, repeats: int) -> None:
    """Table 3: the Vincentized gamma pool's exceedance, old bisection against Newton."""
    family = dists.get("censored_shifted_gamma")
    rng = np.random.default_rng(2)
    center = rng.gamma(0.3, 3.0, rows).astype(np.float32)  # mostly dry, a few very wet
    params = [
        {
            k: np.asarray(v)
            for k, v in family.constrain(
                jnp.asarray(rng.normal(0.0, 0.3, (rows, 3)).astype(np.float32)),
                jnp.asarray(center),
                1.0,
            ).items()
        }
        for _ in range(networks)
    ]
    t = jnp.asarray([0.1, 1.0, 5.0], jnp.float32)  # the default events of tp (mm)
    old = jax.jit(_old_exceedance, static_argnums=0)
    t_old = _best(lambda: old(family, params, t), repeats)
    t_new = _best(lambda: pooling.exceedance(family, params, t, "vincentize"), repeats)
    got = [np.asarray(old(family, params, t)), np.asarray(pooling.exceedance(
        family, params, t, "vincentize"))]  # fmt: skip
    sample = range(0, rows, max(rows // 200, 1))
    ref = np.array(
        [[references.pooled_gamma_exceedance(params, r, float(v)) for v in t] for r in sample]
    )
    err = [float(np.max(np.abs(g[list(sample)] - ref))) for g in got]
    print(f"\n{networks} censored shifted gamma networks, {rows} rows, thresholds 0.1/1/5 mm:")
    print("| exceedance | old us/row | new us/row | old/new | max abs err old | new |")
    print("|---|---|---|---|---|---|")
    print(
        f"| Vincentized pool | {1e6 * t_old / rows:.0f} | {1e6 * t_new / rows:.0f} | "
        f"{t_old / t_new:.1f}x | {err[0]:.1e} | {err[1]:.1e} |"
    )


def main() -> None:
    """Print the three tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="elements (table 1)")
    parser.add_argument("--gate-rows", type=int, default=20_000, help="rows (table 2)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pool-rows", type=int, default=10_000, help="rows (table 3)")
    parser.add_argument("--networks", type=int, default=10, help="pooled networks (table 3)")
    args = parser.parse_args()
    print(f"jax {jax.__version__}, {jax.devices()[0].platform}")
    gamma_table(args.rows, args.repeats)
    gate_table(args.gate_rows, args.repeats)
    pool_table(args.pool_rows, args.networks, args.repeats)


if __name__ == "__main__":
    main()
