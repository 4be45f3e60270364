"""Compiled block kernels of parametric sources: one XLA compilation per family and request.

A product block is computed by a jit-compiled JAX function of the distribution parameters.
XLA compiles once per input shape, and a grid's dask blocks come in up to four shapes (the
inner blocks and the short edge blocks), so compiling per variable and block shape cost 60
compilations (0.1-0.8 s CPU each) for the seven NBM-CONUS variables. Here every block is
flattened and computed in pieces of :data:`PIECE` values (the last one padded), and the
compiled function is shared by every variable of a family asking the same levels or
thresholds: the variable's physical bounds are arguments, not constants. Each function
compiles once, whatever the grid, its chunking or the number of variables.

The functions are kept in a cache of at most :data:`MAX_KERNELS` (least recently used
first out, its compilations freed with it): every distinct set of levels, thresholds or
member count is a new function, and a long-running process asked for many would otherwise
keep them all.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Hashable
from typing import Any

import numpy as np

PIECE = 2**15
"""Values per compiled call: 8 per 512 x 512 block, one for a thin edge block."""

Body = Callable[[Any, dict[str, Any], Any, Any, Any], Any]
"""``body(dist, params, lo, hi, xp) -> (..., k)``: the product of flat parameters."""

MAX_KERNELS = 64
"""Compiled functions kept (least recently used first out)."""

_CACHE: collections.OrderedDict[Hashable, Callable[..., Any]] = collections.OrderedDict()
_LOCK = threading.Lock()
_WARM: set[tuple[Hashable, str]] = set()
"""Keys and dtypes already compiled."""


def _kept(key: Hashable, make: Callable[[], Callable[..., Any]]) -> Callable[..., Any]:
    """The cached function of ``key`` (made by ``make`` if absent); the oldest ones out."""
    with _LOCK:
        fn = _CACHE.get(key)
        if fn is None:
            fn = _CACHE[key] = make()
            while len(_CACHE) > MAX_KERNELS:
                old, _ = _CACHE.popitem(last=False)
                _WARM.difference_update({w for w in _WARM if w[0] == old})
        else:
            _CACHE.move_to_end(key)
    return fn


def compiled(key: Hashable, dist: Any, body: Body) -> Callable[..., Any]:
    """The shared jitted ``(params, lo, hi) -> (k, n)`` of ``body`` for ``key``.

    Args:
        key: What makes two requests the same function: family name, kind and levels.
        dist: The family's distribution object.
        body: Product of the parameters, last axis the ``k`` levels or thresholds.

    Returns:
        The jitted function (the first call for a dtype compiles it).
    """

    def make() -> Callable[..., Any]:
        import jax
        import jax.numpy as jnp

        def whole(params: dict[str, Any], lo: Any, hi: Any) -> Any:
            return jnp.moveaxis(body(dist, params, lo, hi, jnp), -1, 0)

        return jax.jit(whole)

    return _kept(key, make)


def compiled_draw(key: Hashable, dist: Any, n: int) -> Callable[..., Any]:
    """The shared jitted ``(params, rng, lo, hi) -> (n, ...)`` of ``n`` random draws.

    Draws of ``dist.sample`` limited to ``[lo, hi]``, the member axis first; one function
    per ``key`` (family and member count), whatever the variable.
    """

    def make() -> Callable[..., Any]:
        import jax
        import jax.numpy as jnp

        def draw(params: dict[str, Any], rng: Any, lo: Any, hi: Any) -> Any:
            return jnp.clip(jnp.moveaxis(dist.sample(params, rng, n), -1, 0), lo, hi)

        return jax.jit(draw)

    return _kept(("random", key, int(n)), make)


def _call(key: Hashable, fn: Callable[..., Any], args: tuple[Any, ...]) -> np.ndarray:
    """``fn(*args)`` as NumPy; the first call per dtype runs alone (one compilation)."""
    sig = (key, ",".join(str(v.dtype) for v in args[0].values()))
    if sig in _WARM:
        return np.asarray(fn(*args))
    with _LOCK:
        out = np.asarray(fn(*args))
        if key in _CACHE:  # (not one evicted meanwhile: the set stays bounded)
            _WARM.add(sig)
    return out


def run(
    key: Hashable,
    fn: Callable[..., Any],
    blocks: dict[str, np.ndarray],
    bounds: tuple[float, float],
    size: int,
) -> np.ndarray:
    """Compute one block: ``(size, *block shape)`` float32, C order.

    Args:
        key: The key ``fn`` was made with.
        fn: From :func:`compiled`.
        blocks: Parameter name -> block (all of one shape, or broadcastable).
        bounds: Lower and upper physical bound of the variable.
        size: Number of levels or thresholds (the new leading axis).
    """
    shape = np.broadcast_shapes(*(b.shape for b in blocks.values()))
    flat = {k: np.broadcast_to(b, shape).reshape(-1) for k, b in blocks.items()}
    n = int(np.prod(shape, dtype=np.int64))
    out = np.empty((size, n), dtype=np.float32)
    dtype = np.result_type(*flat.values())
    lo, hi = (np.asarray(b, dtype=dtype) for b in bounds)
    for start in range(0, n, PIECE):
        stop = min(start + PIECE, n)
        piece = {k: v[start:stop] for k, v in flat.items()}
        if stop - start < PIECE:  # padded with the last value: finite, and cut off below
            piece = {k: np.pad(v, (0, PIECE - v.size), mode="edge") for k, v in piece.items()}
        out[:, start:stop] = _call(key, fn, (piece, lo, hi))[:, : stop - start]
    return out.reshape(size, *shape)


def quantile_body(levels: np.ndarray) -> Body:
    """Quantiles at ``levels``, within the variable's physical bounds: ``(..., k)``."""

    def body(d: Any, p: dict[str, Any], lo: Any, hi: Any, xp: Any) -> Any:
        # quantile broadcasts elementwise: a trailing parameter axis against the (k,)
        # levels gives (..., k) (probcast.dists.quantiles).
        q = d.quantile({k: v[..., None] for k, v in p.items()}, xp.asarray(levels))
        return xp.clip(q, lo, hi)

    return body


def exceedance_body(thresholds: list[float]) -> Body:
    """P(X > t) = 1 - F(t) for each threshold: ``(..., k)``."""

    def body(d: Any, p: dict[str, Any], lo: Any, hi: Any, xp: Any) -> Any:
        # One CDF call per threshold keeps the only broadcasting requirement on the
        # distribution "scalar x against parameter arrays".
        cdf = xp.stack([d.cdf(p, t) for t in thresholds], axis=-1)
        return xp.clip(1.0 - cdf, 0.0, 1.0)

    return body
