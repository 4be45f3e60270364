"""Normal (Gaussian) family."""

from __future__ import annotations

import jax.numpy as jnp

from probcast.dists._common import (
    LOG_SQRT_2PI,
    Array,
    LocScaleFamily,
    Params,
    batch_shape,
    jit_method,
    ndtr,
    ndtri,
    norm_crps,
)


class Normal(LocScaleFamily):
    """Gaussian ``N(loc, scale**2)`` (non-homogeneous Gaussian regression)."""

    name = "normal"

    @jit_method
    def crps(self, params: Params, y: Array) -> Array:
        """Closed-form CRPS (Gneiting et al. 2005, Mon. Wea. Rev. 133, eq. 5)."""
        mu, sigma = params["loc"], params["scale"]
        return sigma * norm_crps((y - mu) / sigma)

    @jit_method
    def cdf(self, params: Params, x: Array) -> Array:
        """Distribution function."""
        return ndtr((x - params["loc"]) / params["scale"])

    @jit_method
    def quantile(self, params: Params, q: Array) -> Array:
        """Quantile function; ``q`` broadcasts elementwise against the parameters."""
        return params["loc"] + params["scale"] * ndtri(q)

    @jit_method
    def mean(self, params: Params) -> Array:
        """Mean."""
        return jnp.broadcast_to(params["loc"], batch_shape(params))

    @jit_method
    def log_prob(self, params: Params, y: Array) -> Array:
        """Log density."""
        z = (y - params["loc"]) / params["scale"]
        return -0.5 * z * z - LOG_SQRT_2PI - jnp.log(params["scale"])
