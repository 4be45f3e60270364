"""Shared numerics of the distribution families: float32-safe, jit- and grad-friendly.

Every family is parameterised by ``params: dict[str, Array]``; the batch shape is the
broadcast of the parameter shapes. ``quantile`` and ``cdf`` broadcast elementwise (numpy
rules); ``sample`` appends a trailing member axis.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import TypeVar, cast

import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr, ndtr, ndtri

Array = jax.Array
Params = dict[str, Array]

SQRT2 = math.sqrt(2.0)
INV_SQRT_PI = 1.0 / math.sqrt(math.pi)
LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
LOGISTIC_STD = math.pi / math.sqrt(3.0)
"""Standard deviation of the standard logistic distribution."""

MIN_REL_SCALE = 1e-3
"""Smallest scale ``constrain`` returns, relative to the target's spread: keeps scales
positive in float32 for any raw value (softplus underflows below about -100)."""


F = TypeVar("F", bound=Callable[..., Array])


def jit_method(fn: F) -> F:
    """``jax.jit`` a method with ``self`` static (families are immutable singletons).

    Compiling the whole formula once per shape is far faster than eager op-by-op dispatch,
    and nesting inside a caller's ``jit`` costs nothing.
    """
    return cast(F, jax.jit(fn, static_argnums=0))


def softplus_inv(y: float) -> float:
    """Inverse of softplus for a positive Python float: ``log(exp(y) - 1)``."""
    if y <= 0.0:
        raise ValueError(f"softplus_inv needs a positive value, got {y}")
    return y + math.log(-math.expm1(-y))


_SCALE_OFFSET = softplus_inv(1.0 - MIN_REL_SCALE)


def positive_scale(raw: Array, scale: Array) -> Array:
    """Map an unconstrained value to a positive scale equal to ``scale`` at ``raw = 0``.

    ``scale * (softplus(raw + c) + MIN_REL_SCALE)`` with ``c`` chosen so that raw 0 gives
    exactly ``scale``; never below ``MIN_REL_SCALE * scale``.
    """
    return scale * (jax.nn.softplus(raw + _SCALE_OFFSET) + MIN_REL_SCALE)


def check_raw(raw: Array, n: int, family: str) -> Array:
    """Return ``raw`` as an array after checking its last axis holds ``n`` parameters."""
    raw = jnp.asarray(raw)
    if raw.ndim == 0 or raw.shape[-1] != n:
        raise ValueError(
            f"{family}.constrain: raw must have a last axis of length {n} (one per parameter),"
            f" got shape {raw.shape}"
        )
    return raw


def batch_shape(params: Params) -> tuple[int, ...]:
    """Broadcast shape of all parameter arrays."""
    return jnp.broadcast_shapes(*(jnp.shape(v) for v in params.values()))


def expand(params: Params) -> Params:
    """Add a trailing axis to every parameter (to broadcast against ``(k,)`` levels)."""
    return {k: jnp.asarray(v)[..., None] for k, v in params.items()}


def uniforms(key: Array, shape: tuple[int, ...]) -> Array:
    """Uniform draws in the open interval (0, 1), float32."""
    tiny = float(jnp.finfo(jnp.float32).tiny)
    u = jax.random.uniform(key, shape, dtype=jnp.float32, minval=tiny, maxval=1.0)
    return jnp.clip(u, tiny, 1.0 - float(jnp.finfo(jnp.float32).epsneg))


class LocScaleFamily:
    """Base of the families with a location and a scale (of the latent, uncensored law).

    Subclasses set ``name`` and ``spread`` (standard deviation of the standard member of the
    family, so that ``constrain`` at ``raw = 0`` gives a latent standard deviation equal to
    the target spread) and implement ``crps``, ``cdf``, ``quantile``, ``mean``, ``log_prob``.
    """

    name: str = "locscale"
    param_names: tuple[str, ...] = ("loc", "scale")
    spread: float = 1.0

    def constrain(self, raw: Array, center: Array, scale: Array) -> Params:
        """Map unconstrained ``raw[..., 2]`` to parameters around ``center``.

        ``loc = center + scale * raw[..., 0]``;
        ``scale = scale / spread * (softplus(raw[..., 1] + c) + MIN_REL_SCALE)``, equal to
        ``scale / spread`` at ``raw = 0``.

        Args:
            raw: Unconstrained values, shape ``(..., 2)``.
            center: Reference value (the raw deterministic forecast), shape ``(...)``.
            scale: Typical spread of the target (training error std), ``(...)`` or scalar.

        Returns:
            ``{"loc": (...), "scale": (...)}``.
        """
        raw = check_raw(raw, 2, self.name)
        scale = jnp.asarray(scale)
        loc = jnp.asarray(center) + scale * raw[..., 0]
        return {"loc": loc, "scale": positive_scale(raw[..., 1], scale / self.spread)}

    def quantile(self, params: Params, q: Array) -> Array:
        """Quantile function; ``q`` broadcasts elementwise against the parameters."""
        raise NotImplementedError

    @functools.partial(jax.jit, static_argnums=(0, 3))
    def sample(self, params: Params, key: Array, n: int) -> Array:
        """Draw ``n`` members per batch element by inverse CDF of uniforms: ``(..., n)``.

        The same key gives the same uniforms, so members are coherent across families.
        """
        if n < 1:
            raise ValueError(f"number of members must be >= 1, got {n}")
        u = uniforms(key, (*batch_shape(params), n))
        return self.quantile(expand(params), u)


def norm_pdf(z: Array) -> Array:
    """Standard normal density."""
    return jnp.exp(-0.5 * z * z - LOG_SQRT_2PI)


def norm_crps(z: Array) -> Array:
    """CRPS of N(0, 1) at ``z`` (Gneiting et al. 2005, eq. 5)."""
    return z * (2.0 * ndtr(z) - 1.0) + 2.0 * norm_pdf(z) - INV_SQRT_PI


def logistic_crps(z: Array) -> Array:
    """CRPS of the standard logistic distribution at ``z`` (Jordan et al. 2019, sec. 3)."""
    return z + 2.0 * jax.nn.softplus(-z) - 1.0


def trunc_ratio(log_num: Array, log_den: Array) -> Array:
    """``exp(log_num - log_den)`` clipped to [0, 1]: a ratio of tail probabilities."""
    return jnp.clip(jnp.exp(log_num - log_den), 0.0, 1.0)


__all__ = [
    "INV_SQRT_PI",
    "LOGISTIC_STD",
    "LOG_SQRT_2PI",
    "MIN_REL_SCALE",
    "SQRT2",
    "Array",
    "LocScaleFamily",
    "Params",
    "batch_shape",
    "check_raw",
    "expand",
    "jit_method",
    "log_ndtr",
    "logistic_crps",
    "ndtr",
    "ndtri",
    "norm_crps",
    "norm_pdf",
    "positive_scale",
    "softplus_inv",
    "trunc_ratio",
    "uniforms",
]
