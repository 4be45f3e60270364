"""The L-BFGS-B EMOS fit: the fallback for families without second derivatives in JAX.

:func:`probcast.baselines.emos_fit.fit_groups` minimises the same loss with a batched Newton
method; families whose CRPS JAX cannot differentiate twice (``censored_shifted_gamma``) come
here: the per-row CRPS gradient on the device (:data:`grad_terms`, compiled once per family,
row count and dtype), the chain rule to the coefficients as sparse products on the host, and
scipy's L-BFGS-B in float64.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse
from scipy.optimize import minimize

from probcast import dists
from probcast.baselines.emos_layout import bucket

FTOL = 1e-13
"""L-BFGS-B relative-reduction stopping tolerance (scipy's default is 2.2e-9)."""
GTOL = 1e-9
"""L-BFGS-B largest-gradient stopping tolerance (scipy's default is 1e-5)."""


@functools.cache
def _openblas_thread_setters() -> tuple[Callable[[int], int], ...]:
    """``openblas_set_num_threads_local`` of every OpenBLAS loaded (Linux; else none)."""
    try:
        with open("/proc/self/maps") as maps:
            paths = sorted({ln.split()[-1] for ln in maps if "openblas" in ln.lower()})
    except OSError:
        return ()
    found = []
    for path in paths:
        try:
            fn = ctypes.CDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
        found.append(fn)
    return tuple(found)


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """Run the calling thread's OpenBLAS calls on one thread.

    L-BFGS-B calls BLAS on vectors of a few hundred values; on a loaded machine OpenBLAS's
    worker threads then cost about 15 ms an iteration (measured on 2 shared cores), more
    than the CRPS itself. Thread-local, restored on exit; a no-op where it is unavailable.
    """
    setters = _openblas_thread_setters()
    before = [fn(1) for fn in setters]
    try:
        yield
    finally:
        for fn, n in zip(setters, before, strict=True):
            fn(n)


def _rows(
    raw: jax.Array, center: jax.Array, y: jax.Array, spread: jax.Array, family: str
) -> tuple[jax.Array, jax.Array]:
    dist = dists.get(family)
    crps = dist.crps(dist.constrain(raw, center, spread), y)
    return jnp.sum(crps), crps


grad_terms = jax.jit(jax.grad(_rows, has_aux=True), static_argnames=("family",))
"""``(d crps / d raw, crps)`` per row (L-BFGS fallback); compiled once per family, row count
and dtype."""


def fit_lbfgs(
    family: str,
    x: np.ndarray,
    center: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    prior: np.ndarray,
    spread: float,
    shrinkage: float,
    maxiter: int = 500,
    pad_rows: int | None = None,
) -> np.ndarray:
    """Minimise the per-group mean CRPS with L-BFGS-B; returns ``theta`` like ``prior``.

    The fallback of :func:`~probcast.baselines.emos_fit.fit_groups` for families whose
    CRPS JAX cannot differentiate twice, with the same signature (less ``start`` and
    ``slots``: it always starts from ``prior``, on its own kernels) so that either can
    stand in for the other; the arguments are described there. ``maxiter`` is the most
    L-BFGS iterations.

    Raises:
        ValueError: ``pad_rows`` is below the number of rows.
        FloatingPointError: The fit produced non-finite coefficients.
    """
    n, (n_groups, n_params, n_feat) = len(x), prior.shape
    size = pad_rows or bucket(n)
    if size < n:
        raise ValueError(f"padding to {size} rows is below the data's {n} rows")
    fill = np.where(np.arange(size) < n, np.arange(size), 0)  # padding repeats row 0
    with jax.enable_x64(True):
        args = [jnp.asarray(np.asarray(a, dtype=np.float64)[fill]) for a in (center, y)]
        scale = jnp.asarray(spread, dtype=jnp.float64)
    # design as a sparse (rows, groups * features) matrix: raw = design @ theta, and the
    # chain rule sums each group's rows with weight 1 / (count * spread) (mean CRPS)
    cols = (np.asarray(groups)[:, None] * n_feat + np.arange(n_feat)).ravel()
    rows = np.repeat(np.arange(n), n_feat)
    x64 = np.asarray(x, dtype=np.float64)
    design = scipy.sparse.csr_matrix((x64.ravel(), (rows, cols)), shape=(n, n_groups * n_feat))
    counts = np.maximum(np.bincount(groups, minlength=n_groups), 1)
    weight = 1.0 / (counts[groups] * spread)
    chain = scipy.sparse.csr_matrix(design.multiply(weight[:, None]).T)
    means = scipy.sparse.csr_matrix((weight, (groups, np.arange(n))), shape=(n_groups, n))
    prior64 = np.asarray(prior, dtype=np.float64)
    raw_pad = np.zeros((size, n_params))  # padded rows: raw 0, finite

    def fun(flat: np.ndarray) -> tuple[float, np.ndarray]:
        theta = flat.reshape(prior.shape)
        raw_pad[:n] = design @ theta.transpose(0, 2, 1).reshape(n_groups * n_feat, n_params)
        d_raw, crps = grad_terms(jnp.array(raw_pad), *args, scale, family=family)
        grad = chain @ np.asarray(d_raw, dtype=np.float64)[:n]  # (groups * features, params)
        grad = grad.reshape(n_groups, n_feat, n_params).transpose(0, 2, 1)
        diff = theta - prior64
        val = float(np.sum(means @ np.asarray(crps, dtype=np.float64)[:n]))
        val += shrinkage * float(np.sum(diff**2))
        return val, (grad + 2.0 * shrinkage * diff).ravel()

    with one_blas_thread(), jax.enable_x64(True):
        res: Any = minimize(
            fun,
            prior64.ravel(),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": maxiter, "ftol": FTOL, "gtol": GTOL},
        )
    theta = np.asarray(res.x).reshape(prior.shape)
    if not np.all(np.isfinite(theta)):
        raise FloatingPointError(f"EMOS fit for family {family!r} diverged: {res.message}")
    return theta
