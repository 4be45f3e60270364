"""Censored shifted gamma family for precipitation (Scheuerer & Hamill 2015).

``Y = max(X - shift, 0)`` with ``X ~ Gamma(shape, scale)``: the mass of ``X`` below
``shift`` is the probability of a dry case.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.scipy.special import gammainc, gammaln, ndtri

from probcast.dists._common import (
    MIN_REL_SCALE,
    Array,
    Params,
    batch_shape,
    check_raw,
    expand,
    jit_method,
    positive_scale,
    softplus_inv,
    uniforms,
)

SHAPE_RANGE = (1e-2, 1e4)
"""``constrain`` clips the gamma shape here: outside it ``gammainc`` and its gradient with
respect to the shape lose accuracy in float32."""

MIN_SHIFT = 1e-6
"""Smallest shift, relative to the target's spread: at a shift of exactly 0 (softplus
underflows below about -88 in float32) the derivative of ``gammainc(k, x)`` at ``x = 0``
is infinite for ``k < 1`` and the CRPS gradient NaN."""

_SHIFT_OFFSET = softplus_inv(0.5 - MIN_SHIFT)


class CensoredShiftedGamma:
    """Censored shifted gamma with parameters ``shape``, ``scale`` (gamma scale) and ``shift``."""

    name = "censored_shifted_gamma"
    param_names: tuple[str, ...] = ("shape", "scale", "shift")

    def constrain(self, raw: Array, center: Array, scale: Array) -> Params:
        """Map ``raw[..., 3]`` to parameters through the gamma mean, sd and shift.

        ``shift = scale * (softplus(raw2 + c) + MIN_SHIFT)`` (``scale/2`` at raw 0);
        ``mean = shift + scale * softplus(center/scale + raw0)`` (about ``center + shift``
        for a wet forecast); ``sd = scale * (softplus(raw1 + c') + MIN_REL_SCALE)``;
        ``shape = (mean/sd)^2`` clipped to :data:`SHAPE_RANGE`, gamma ``scale = mean/shape``.
        """
        raw = check_raw(raw, 3, self.name)
        scale = jnp.asarray(scale)
        shift = scale * (jax.nn.softplus(raw[..., 2] + _SHIFT_OFFSET) + MIN_SHIFT)
        mean = shift + scale * (
            jax.nn.softplus(jnp.asarray(center) / scale + raw[..., 0]) + MIN_REL_SCALE
        )
        sd = positive_scale(raw[..., 1], scale)
        shape = jnp.clip((mean / sd) ** 2, *SHAPE_RANGE)
        return {"shape": shape, "scale": mean / shape, "shift": shift}

    @jit_method
    def crps(self, params: Params, y: Array) -> Array:
        """Closed-form CRPS of the censored shifted gamma.

        Scheuerer & Hamill 2015, Mon. Wea. Rev. 143, eq. 5 (scoringrules ``crps_csg0``),
        extended to ``y < 0`` by adding ``-y``.
        """
        k, theta, d = params["shape"], params["scale"], params["shift"]
        below = jnp.maximum(-y, 0.0)
        yd = (jnp.maximum(y, 0.0) + d) / theta
        dd = d / theta
        f_k_y, f_k1_y = gammainc(k, yd), gammainc(k + 1.0, yd)
        f_k_d, f_k1_d = gammainc(k, dd), gammainc(k + 1.0, dd)
        log_beta = gammaln(0.5) + gammaln(k + 0.5) - gammaln(k + 1.0)
        s = (
            yd * (2.0 * f_k_y - 1.0)
            - (k / math.pi) * jnp.exp(log_beta) * (1.0 - gammainc(2.0 * k, 2.0 * dd))
            + k * (1.0 + 2.0 * f_k_d * f_k1_d - f_k_d**2 - 2.0 * f_k1_y)
            - dd * f_k_d**2
        )
        return theta * s + below

    @jit_method
    def cdf(self, params: Params, x: Array) -> Array:
        """Distribution function: 0 below 0, point mass ``F_gamma(shift)`` at 0."""
        f = gammainc(params["shape"], jnp.maximum(x + params["shift"], 0.0) / params["scale"])
        return jnp.where(x < 0.0, 0.0, f)

    @jit_method
    def quantile(self, params: Params, q: Array) -> Array:
        """Quantile function; ``q`` broadcasts elementwise against the parameters.

        The gamma quantile is found by Newton steps in log space (JAX has no inverse
        incomplete gamma); levels inside the point mass map to 0.
        """
        k, theta = params["shape"], params["scale"]
        x = _gamma_quantile(k, jnp.clip(q, 0.0, 1.0))
        return jnp.maximum(theta * x - params["shift"], 0.0)

    @functools.partial(jax.jit, static_argnums=(0, 3))
    def sample(self, params: Params, key: jax.Array, n: int) -> Array:
        """``n`` members per element by inverse CDF of uniforms, shape ``(..., n)``."""
        if n < 1:
            raise ValueError(f"number of members must be >= 1, got {n}")
        return self.quantile(expand(params), uniforms(key, (*batch_shape(params), n)))

    @jit_method
    def mean(self, params: Params) -> Array:
        """Mean ``shape*scale*(1 - F_{k+1}(shift)) - shift*(1 - F_k(shift))``."""
        k, theta, d = params["shape"], params["scale"], params["shift"]
        return k * theta * (1.0 - gammainc(k + 1.0, d / theta)) - d * (1.0 - gammainc(k, d / theta))

    @jit_method
    def log_prob(self, params: Params, y: Array) -> Array:
        """Log of the mixed density: log point mass at 0, log gamma density above."""
        k, theta, d = params["shape"], params["scale"], params["shift"]
        x = (jnp.maximum(y, 0.0) + d) / theta
        lp = (k - 1.0) * jnp.log(x) - x - gammaln(k) - jnp.log(theta)
        return jnp.where(y <= 0.0, jnp.log(gammainc(k, d / theta)), lp)


def _gamma_quantile(k: Array, q: Array, steps: int = 12) -> Array:
    """Quantile of Gamma(k, 1) at level ``q`` by safeguarded Newton steps on ``log x``."""
    z = ndtri(jnp.clip(q, 1e-7, 1.0 - 1e-7))
    wilson = k * jnp.maximum(1.0 - 1.0 / (9.0 * k) + z / (3.0 * jnp.sqrt(k)), 1e-3) ** 3
    small = jnp.exp((jnp.log(jnp.maximum(q, 1e-30)) + gammaln(k + 1.0)) / k)
    t = jnp.log(jnp.where(k < 1.0, jnp.minimum(small, wilson + small), wilson))
    log_gamma_k = gammaln(k)

    def newton(_: int, t: Array) -> Array:
        x = jnp.exp(t)
        # d/dt P(k, e^t) = x * pdf(x) = exp(k t - x - lgamma(k))
        slope = jnp.exp(k * t - x - log_gamma_k)
        step = (gammainc(k, x) - q) / jnp.maximum(slope, 1e-30)
        return t - jnp.clip(step, -2.0, 2.0)

    t = jax.lax.fori_loop(0, steps, newton, t)
    x = jnp.exp(t)
    x = jnp.where(q <= 0.0, 0.0, x)
    return jnp.where(q >= 1.0, jnp.inf, x)
