"""Logistic and left-censored logistic families.

The logistic ``scale`` is the logistic scale parameter ``s`` (standard deviation
``s * pi / sqrt(3)``); ``constrain`` accounts for that so ``raw = 0`` gives a standard
deviation equal to the target spread.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from probcast.dists._common import (
    LOGISTIC_STD,
    Array,
    LocScaleFamily,
    Params,
    batch_shape,
    jit_method,
    logistic_crps,
)


def _logit(q: Array) -> Array:
    return jnp.log(q) - jnp.log1p(-q)


def _log_pdf(w: Array, scale: Array) -> Array:
    return -w - 2.0 * jax.nn.softplus(-w) - jnp.log(scale)


class Logistic(LocScaleFamily):
    """Logistic distribution with location ``loc`` and scale ``scale``."""

    name = "logistic"
    spread = LOGISTIC_STD

    @jit_method
    def crps(self, params: Params, y: Array) -> Array:
        """Closed-form CRPS ``s (w - 2 log F(w) - 1)``.

        Taillardat et al. 2016, Mon. Wea. Rev. 144; Jordan et al. 2019, J. Stat. Softw.
        90(12), ``crps_logis``.
        """
        return params["scale"] * logistic_crps((y - params["loc"]) / params["scale"])

    @jit_method
    def cdf(self, params: Params, x: Array) -> Array:
        """Distribution function."""
        return jax.nn.sigmoid((x - params["loc"]) / params["scale"])

    @jit_method
    def quantile(self, params: Params, q: Array) -> Array:
        """Quantile function; ``q`` broadcasts elementwise against the parameters."""
        return params["loc"] + params["scale"] * _logit(q)

    @jit_method
    def mean(self, params: Params) -> Array:
        """Mean."""
        return jnp.broadcast_to(params["loc"], batch_shape(params))

    @jit_method
    def log_prob(self, params: Params, y: Array) -> Array:
        """Log density."""
        return _log_pdf((y - params["loc"]) / params["scale"], params["scale"])


class CensoredLogistic(LocScaleFamily):
    """Logistic left-censored at ``lower`` (precipitation: point mass ``F(0)`` at 0)."""

    spread = LOGISTIC_STD

    def __init__(self, name: str, lower: float = 0.0) -> None:
        self.name = name
        self.lower = float(lower)

    @jit_method
    def crps(self, params: Params, y: Array) -> Array:
        """Closed-form CRPS of the left-censored logistic.

        Jordan et al. 2019, J. Stat. Softw. 90(12), ``crps_clogis`` (scoringrules
        ``crps_clogistic``).

        With ``w = (y - loc)/s``, ``l = (lower - loc)/s`` and ``z = max(w, l)``:
        ``CRPS/s = |w - z| + z + 2 softplus(-z) - 1 + sigmoid(l) - softplus(l)``.
        Where most mass is censored (``l > 0``) the equivalent form
        ``|w - z| + (z - l) + 2 softplus(-z) - softplus(-l) - sigmoid(-l)`` avoids the
        cancellation of O(l) terms.
        """
        s = params["scale"]
        w = (y - params["loc"]) / s
        lo = (self.lower - params["loc"]) / s
        z = jnp.maximum(w, lo)
        direct = logistic_crps(z) + jax.nn.sigmoid(lo) - jax.nn.softplus(lo)
        stable = (z - lo) + 2.0 * jax.nn.softplus(-z) - jax.nn.softplus(-lo) - jax.nn.sigmoid(-lo)
        body = jnp.where(lo > 0.0, stable, direct)
        return s * (jnp.abs(w - z) + jnp.where(body > 0.0, body, 0.0))  # (never -3e-26)

    @jit_method
    def cdf(self, params: Params, x: Array) -> Array:
        """Distribution function: 0 below ``lower``."""
        f = jax.nn.sigmoid((x - params["loc"]) / params["scale"])
        return jnp.where(x < self.lower, 0.0, f)

    @jit_method
    def quantile(self, params: Params, q: Array) -> Array:
        """Quantile function; levels inside the point mass map to ``lower``."""
        return jnp.maximum(params["loc"] + params["scale"] * _logit(q), self.lower)

    @jit_method
    def mean(self, params: Params) -> Array:
        """Mean ``lower + s * softplus((loc - lower)/s)``."""
        s = params["scale"]
        return self.lower + s * jax.nn.softplus((params["loc"] - self.lower) / s)

    @jit_method
    def log_prob(self, params: Params, y: Array) -> Array:
        """Log of the mixed density: ``log F(lower)`` at the bound, log density above."""
        s = params["scale"]
        lo = (self.lower - params["loc"]) / s
        lp = _log_pdf((y - params["loc"]) / s, s)
        return jnp.where(y <= self.lower, -jax.nn.softplus(-lo), lp)
