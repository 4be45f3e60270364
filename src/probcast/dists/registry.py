"""The family registry and the common interface of the parametric distributions.

The network heads and the classical baselines (EMOS) share these families. Each family
turns unconstrained values into parameters around the raw forecast (:meth:`constrain`) and
scores them with a closed-form CRPS; all functions are in ``jax.numpy`` (jit- and
grad-friendly, float32-safe). The families live in :mod:`probcast.dists`.

Broadcasting: ``crps``, ``cdf`` and ``quantile`` broadcast their second argument
elementwise against the parameter arrays (numpy rules). To get ``k`` quantiles per row, use
:func:`quantiles` (which adds the trailing axis) or pass ``{k: v[..., None]}`` and levels of
shape ``(k,)``. ``sample`` returns ``(..., n)``, members last.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import jax
import jax.numpy as jnp

from probcast.dists._common import Array, Params, expand
from probcast.dists.censored import CensoredNormal
from probcast.dists.gamma import CensoredShiftedGamma
from probcast.dists.logistic import CensoredLogistic, Logistic
from probcast.dists.normal import Normal
from probcast.dists.truncated import TruncatedNormal
from probcast.schema import VARIABLES


@runtime_checkable
class Distribution(Protocol):
    """A parametric predictive distribution with closed-form CRPS.

    Attributes:
        name: Registry name.
        param_names: Names of the parameters, in the order of ``raw``'s last axis.
    """

    name: str
    param_names: tuple[str, ...]

    def constrain(self, raw: Array, center: Array, scale: Array) -> Params:
        """Map unconstrained ``raw[..., len(param_names)]`` to valid parameters.

        ``raw = 0`` gives the raw forecast ``center`` with spread ``scale``.
        """
        ...

    def crps(self, params: Params, y: Array) -> Array:
        """Closed-form CRPS, elementwise."""
        ...

    def cdf(self, params: Params, x: Array) -> Array:
        """Distribution function, elementwise."""
        ...

    def quantile(self, params: Params, q: Array) -> Array:
        """Quantile function; ``q`` broadcasts elementwise against the parameters."""
        ...

    def sample(self, params: Params, key: jax.Array, n: int) -> Array:
        """``n`` members per element by inverse CDF of uniforms, shape ``(..., n)``."""
        ...

    def mean(self, params: Params) -> Array:
        """Mean."""
        ...

    def log_prob(self, params: Params, y: Array) -> Array:
        """Log density (log point mass at a censoring bound)."""
        ...


DISTRIBUTIONS: dict[str, Distribution] = {
    d.name: d
    for d in (
        Normal(),
        Logistic(),
        CensoredLogistic("censored_logistic", lower=0.0),
        CensoredNormal("censored_normal", lower=0.0),
        TruncatedNormal(),
        CensoredNormal("censored_normal_01", lower=0.0, upper=1.0),
        CensoredShiftedGamma(),
    )
}
"""Registered families by name."""

GENERATIVE = "generative"
"""The head marker of a noise-conditioned generative head (members, no family)."""


def is_generative(head: str) -> bool:
    """Whether ``head`` (a family name or :data:`GENERATIVE`) is a generative head."""
    return head == GENERATIVE


_DEFAULT_BY_KIND = {
    "real": "normal",
    "nonneg": "censored_logistic",
    "positive": "truncated_normal",
    "fraction": "censored_normal_01",
}


def get(name: str) -> Distribution:
    """Return the registered family ``name``.

    Raises:
        KeyError: Unknown name; the message lists the registered ones.
    """
    if name not in DISTRIBUTIONS:
        raise KeyError(
            f"unknown distribution {name!r}; expected one of {', '.join(sorted(DISTRIBUTIONS))}"
        )
    return DISTRIBUTIONS[name]


def default_for(variable: str) -> str:
    """Default family of a canonical variable, from ``schema.VARIABLES[variable].kind``.

    ``real`` -> normal, ``nonneg`` -> censored_logistic (point mass at 0), ``positive`` ->
    truncated_normal, ``fraction`` -> censored_normal_01.
    """
    if variable not in VARIABLES:
        raise KeyError(
            f"unknown variable {variable!r}; expected one of {', '.join(sorted(VARIABLES))}"
        )
    kind = VARIABLES[variable].kind
    if kind not in _DEFAULT_BY_KIND:
        raise ValueError(f"variable {variable!r} has kind {kind!r} with no default family")
    return _DEFAULT_BY_KIND[kind]


def quantiles(dist: Distribution, params: Params, levels: Array) -> Array:
    """Quantiles at ``levels`` (shape ``(k,)``) for every element: shape ``(..., k)``."""
    levels = jnp.asarray(levels)
    if levels.ndim != 1 or not bool(jnp.all((levels >= 0.0) & (levels <= 1.0))):
        raise ValueError(f"levels must be a 1-D array of values in [0, 1], got {levels}")
    return dist.quantile(expand(params), levels)


__all__ = [
    "DISTRIBUTIONS",
    "GENERATIVE",
    "Distribution",
    "default_for",
    "get",
    "is_generative",
    "quantiles",
]
