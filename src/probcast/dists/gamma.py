"""Censored shifted gamma family for precipitation (Scheuerer & Hamill 2015).

``Y = max(X - shift, 0)`` with ``X ~ Gamma(shape, scale)``: the mass of ``X`` below
``shift`` is the probability of a dry case.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
from jax.scipy.special import gammainc, gammaln, ndtr, ndtri

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
    lower = 0.0
    """Censoring bound: the point mass of the dry cases sits here (the randomised PIT of
    :mod:`probcast.dists.pit` draws uniformly below ``F(0)`` there)."""
    upper = math.inf

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

        From shape :data:`ASYMPTOTIC_SHAPE` on, the incomplete gamma functions come from
        Temme's expansion (:func:`_gamma_cdf`) and ``B(1/2, k + 1/2)`` from its asymptotic
        series (:func:`_log_beta_half`): float32 ``gammainc`` and a difference of two
        ``gammaln`` of about ``k log k`` made the score wrong there (relative error 9e-2
        at shape 1000, a negative score and a gradient of the wrong sign beyond).
        """
        k, theta, d = params["shape"], params["scale"], params["shift"]
        below = jnp.maximum(-y, 0.0)
        yd = (jnp.maximum(y, 0.0) + d) / theta
        dd = d / theta
        f_k_y, f_k1_y = _gamma_cdf(k, yd), _gamma_cdf(k + 1.0, yd)
        f_k_d, f_k1_d = _gamma_cdf(k, dd), _gamma_cdf(k + 1.0, dd)
        s = (
            yd * (2.0 * f_k_y - 1.0)
            - (k / math.pi) * jnp.exp(_log_beta_half(k)) * (1.0 - _gamma_cdf(2.0 * k, 2.0 * dd))
            + k * (1.0 + 2.0 * f_k_d * f_k1_d - f_k_d**2 - 2.0 * f_k1_y)
            - dd * f_k_d**2
        )
        return theta * s + below

    @jit_method
    def cdf(self, params: Params, x: Array) -> Array:
        """Distribution function: 0 below 0, point mass ``F_gamma(shift)`` at 0."""
        f = _gamma_cdf(params["shape"], jnp.maximum(x + params["shift"], 0.0) / params["scale"])
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
        return k * theta * (1.0 - _gamma_cdf(k + 1.0, d / theta)) - d * (
            1.0 - _gamma_cdf(k, d / theta)
        )

    @jit_method
    def log_prob(self, params: Params, y: Array) -> Array:
        """Log of the mixed density: log point mass at 0, log gamma density above."""
        k, theta, d = params["shape"], params["scale"], params["shift"]
        x = (jnp.maximum(y, 0.0) + d) / theta
        lp = (k - 1.0) * jnp.log(x) - x - gammaln(k) - jnp.log(theta)
        return jnp.where(y <= 0.0, jnp.log(_gamma_cdf(k, d / theta)), lp)


ASYMPTOTIC_SHAPE = 100.0
"""From this shape on the gamma quantile comes from Temme's asymptotic inversion: float32
``gammainc`` loses accuracy there (``shape * log(x)`` cancels against ``lgamma(shape)``; a
relative error up to 8e-4 at shape 100) and its series runs for hundreds of iterations,
while the inversion's relative error is below 2e-5 (:func:`_gamma_quantile_large`)."""

_STEP_TOL = 1e-4
"""A Halley step on ``log x`` below this ends an element's iteration: the step after it
would be of the order of its cube, below float32's resolution."""


def _gamma_quantile(k: Array, q: Array, steps: int = 12) -> Array:
    """Quantile of Gamma(k, 1) at level ``q``.

    Shapes below :data:`ASYMPTOTIC_SHAPE`: safeguarded Halley steps on ``log x`` from the
    Wilson-Hilferty guess (``k >= 1``) or the small-``x`` series ``(q Gamma(k+1))^(1/k)``,
    each element stopping once its step is below :data:`_STEP_TOL` and passing benign
    arguments to ``gammainc`` from then on (its series and continued-fraction loops run
    until the slowest element of the whole array has converged). Above: Temme's
    asymptotic inversion, without ``gammainc``.
    """
    large = k >= ASYMPTOTIC_SHAPE
    kk = jnp.where(large, 1.0, k)  # the large shapes take no part in the iteration
    z = ndtri(jnp.clip(q, 1e-7, 1.0 - 1e-7))
    wilson = kk * jnp.maximum(1.0 - 1.0 / (9.0 * kk) + z / (3.0 * jnp.sqrt(kk)), 1e-3) ** 3
    # (q Gamma(k+1))^(1/k) bounds the quantile from below (P(k, x) <= x^k / Gamma(k+1)) and
    # from above by a factor exp(x/k): far below float32's range it is the quantile (0)
    small = jnp.exp((jnp.log(jnp.maximum(q, 1e-30)) + gammaln(kk + 1.0)) / kk)
    t = jnp.log(jnp.where(kk < 1.0, jnp.minimum(small, wilson + small), jnp.maximum(wilson, small)))
    log_gamma_k = gammaln(kk)
    tiny = (kk < 1.0) & (small < 1e-20)
    active = (q > 0.0) & (q < 1.0) & ~large & ~tiny

    def cond(carry: tuple[Array, Array, Array]) -> Array:
        i, _, act = carry
        return (i < steps) & jnp.any(act)

    def iterate(carry: tuple[Array, Array, Array]) -> tuple[Array, Array, Array]:
        i, t, act = carry
        x = jnp.exp(t)
        p = gammainc(jnp.where(act, kk, 1.0), jnp.where(act, x, 1.0))
        # d/dt P(k, e^t) = x * pdf(x) = exp(k t - x - lgamma(k)); its own derivative
        # divided by it is k - x
        slope = jnp.exp(kk * t - x - log_gamma_k)
        newton = (p - q) / jnp.maximum(slope, 1e-30)
        denom = 1.0 - 0.5 * newton * (kk - x)
        halley = (jnp.abs(newton) < 0.5) & (denom > 0.5)
        step = jnp.where(
            halley, newton / jnp.where(halley, denom, 1.0), jnp.clip(newton, -2.0, 2.0)
        )
        step = jnp.where(act, step, 0.0)
        return i + 1, t - step, act & (jnp.abs(step) > _STEP_TOL)

    _, t, _ = jax.lax.while_loop(cond, iterate, (jnp.asarray(0), t, active))
    x = jnp.where(large, _gamma_quantile_large(jnp.maximum(k, ASYMPTOTIC_SHAPE), z), jnp.exp(t))
    x = jnp.where(q <= 0.0, 0.0, x)
    return jnp.where(q >= 1.0, jnp.inf, x)


def _gamma_quantile_large(k: Array, z: Array) -> Array:
    """Gamma(k, 1) quantile at the normal score ``z`` for large ``k`` (Temme 1992).

    With ``lambda = x / k`` and ``eta^2 / 2 = lambda - 1 - log(lambda)`` (``eta`` of the
    sign of ``lambda - 1``), ``P(k, x) = Phi(eta sqrt(k)) + O(k^-1/2 exp(-k eta^2 / 2))``
    and the quantile's ``eta = eta0 + eps1(eta0) / k + O(k^-2)`` with ``eta0 = z /
    sqrt(k)`` and ``eps1(eta) = log(eta / (lambda(eta) - 1)) / eta`` (Temme, Math. Comp.
    58, 755-764, 1992, eq. 3.7 ff.; DiDonato & Morris 1986, eq. 32). Near ``eta = 0`` both
    come from their Taylor series (:data:`_SERIES_ETA`), free of the cancellation.
    """
    eta0 = z / jnp.sqrt(k)
    near = jnp.abs(eta0) < _SERIES_ETA
    safe = jnp.where(near, 1.0, eta0)
    eps1 = jnp.where(
        near, _poly(_EPS1_SERIES, eta0), jnp.log(safe / _lambda_minus_one(safe)) / safe
    )
    return k * (1.0 + _lambda_minus_one(eta0 + eps1 / k))


_SERIES_ETA = 0.5
"""Below this ``|eta|`` the Taylor series give ``lambda - 1`` and ``eps1`` to float32
precision (their next terms are below 1e-8)."""
_LAMBDA_SERIES = (
    0.0,
    1.0,
    1 / 3,
    1 / 36,
    -1 / 270,
    1 / 4320,
    1 / 17010,
    -139 / 5443200,
    1 / 204120,
)
"""Taylor coefficients of ``lambda(eta) - 1`` (from ``s - log1p(s) = eta^2 / 2``)."""
_EPS1_SERIES = (-1 / 3, 1 / 36, 1 / 1620, -7 / 6480, 5 / 18144, -11 / 382725, -101 / 16329600)
"""Taylor coefficients of ``eps1(eta) = log(eta / (lambda(eta) - 1)) / eta``."""


def _poly(coefficients: tuple[float, ...], x: Array) -> Array:
    """``sum(c_i x^i)`` by Horner's rule."""
    out = jnp.zeros_like(x) + coefficients[-1]
    for c in coefficients[-2::-1]:
        out = out * x + c
    return out


def _lambda_minus_one(eta: Array, steps: int = 6) -> Array:
    """``s = lambda - 1`` solving ``s - log1p(s) = eta^2 / 2`` with the sign of ``eta``.

    The Taylor series below ``|eta| =`` :data:`_SERIES_ETA`; above, Newton steps from
    ``exp(-1 - eta^2/2) - 1`` (``lambda`` near 0) or ``h + log1p(h) + log1p(log1p(h))``
    with ``h = eta^2 / 2`` (large ``lambda``).
    """
    h = 0.5 * eta * eta
    series = _poly(_LAMBDA_SERIES, eta)
    near = jnp.abs(eta) < _SERIES_ETA
    start = jnp.where(
        eta > 0.0, h + jnp.log1p(h) + jnp.log1p(jnp.log1p(h)), jnp.exp(-1.0 - h) - 1.0
    )
    s = jnp.where(jnp.abs(eta) < 1.0, series, start)
    for _ in range(steps):
        slope = s / (1.0 + s)
        step = (s - jnp.log1p(s) - h) / jnp.where(near | (slope == 0.0), 1.0, slope)
        s = jnp.maximum(jnp.where(near, s, s - step), -1.0 + 1e-30)
    return jnp.where(near, series, s)


def _log_beta_half(k: Array) -> Array:
    """``log B(1/2, k + 1/2) = log Gamma(1/2) + log Gamma(k + 1/2) - log Gamma(k + 1)``.

    From shape :data:`ASYMPTOTIC_SHAPE` on by the asymptotic series of the ratio
    ``log Gamma(k + 1/2) - log Gamma(k + 1) = -log(k)/2 - 1/(8k) + 1/(192k^3) + 1/(640k^5)``
    (truncation error below 1e-13 there), free of the cancellation of two ``gammaln``
    of about ``k log k`` (0.008 in float32 at shape 1e4).
    """
    large = k >= ASYMPTOTIC_SHAPE
    ks = jnp.where(large, 1.0, k)
    small = gammaln(ks + 0.5) - gammaln(ks + 1.0)
    kl = jnp.maximum(k, ASYMPTOTIC_SHAPE)
    inv = 1.0 / kl
    series = -0.5 * jnp.log(kl) + inv * (-1 / 8 + inv * inv * (1 / 192 + inv * inv / 640))
    return 0.5 * math.log(math.pi) + jnp.where(large, series, small)


def _gamma_cdf(k: Array, x: Array) -> Array:
    """``P(k, x)``: ``gammainc`` below :data:`ASYMPTOTIC_SHAPE`, Temme's expansion above.

    From shape 100 on float32 ``gammainc`` is off by up to 6e-4 (1e-2 at shapes 1e3-1e4:
    ``k log x`` cancels against ``lgamma(k)``), its series running for hundreds of terms.
    Every use goes through this: the CRPS (the training loss), ``cdf``, ``mean`` and the
    point mass of ``log_prob``.
    """
    large = k >= ASYMPTOTIC_SHAPE
    small = gammainc(jnp.where(large, 1.0, k), jnp.where(large, 1.0, x))
    return jnp.where(large, _gamma_cdf_large(jnp.maximum(k, ASYMPTOTIC_SHAPE), x), small)


def _gamma_cdf_large(k: Array, x: Array) -> Array:
    """``P(k, x)`` for large ``k`` (Temme 1979; DiDonato & Morris 1986, eq. 19).

    ``P = Phi(eta sqrt(k)) - phi(eta sqrt(k)) C0(eta) / sqrt(k) + O(k^-3/2)`` with ``eta``
    of :func:`_gamma_quantile_large` (``eta^2 / 2 = mu - log1p(mu)``, ``mu = x / k - 1``)
    and ``C0(eta) = 1 / mu - 1 / eta`` (its Taylor series near 0, free of the
    cancellation). The neglected term is below 1e-6 from shape 100 on.
    """
    mu = x / k - 1.0
    # mu - log1p(mu), by its series where float32 would cancel
    half = jnp.where(jnp.abs(mu) < 0.1, mu * mu * _poly(_HALF_ETA2_SERIES, mu), mu - jnp.log1p(mu))
    eta = jnp.sign(mu) * jnp.sqrt(2.0 * jnp.maximum(half, 0.0))
    near = jnp.abs(eta) < 0.2
    safe_mu, safe_eta = jnp.where(near, 1.0, mu), jnp.where(near, 1.0, eta)
    c0 = jnp.where(near, _poly(_C0_SERIES, eta), 1.0 / safe_mu - 1.0 / safe_eta)
    w = eta * jnp.sqrt(k)
    p = ndtr(w) - jnp.exp(-0.5 * w * w) / jnp.sqrt(2.0 * jnp.pi * k) * c0
    return jnp.where(x <= 0.0, 0.0, jnp.clip(p, 0.0, 1.0))


_HALF_ETA2_SERIES = (1 / 2, -1 / 3, 1 / 4, -1 / 5, 1 / 6, -1 / 7, 1 / 8)
"""``(mu - log1p(mu)) / mu^2`` as a power series in ``mu``."""
_C0_SERIES = (-1 / 3, 1 / 12, -2 / 135, 1 / 864, 1 / 2835, -139 / 777600)
"""Taylor coefficients of Temme's ``C0(eta)`` (DiDonato & Morris 1986, ``d0``)."""
