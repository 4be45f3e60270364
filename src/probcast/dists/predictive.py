"""``Predictive``: one variable's predictive distributions for a set of cases.

The one in-memory type every stage hands to the next: the classical baselines and the
network's predictor return it, the station-table product writes and parses it, and
verification scores it. It holds one *form*:

============  ==========================================================================
kind          values
============  ==========================================================================
params        ``(n, P)`` parameters of a registered family (``param_names`` order)
members       ``(n, M)`` ensemble members (an empirical distribution)
quantiles     ``(n, Q)`` quantiles at ascending ``levels`` in (0, 1)
point         ``(n,)`` a deterministic forecast (a point mass; the raw NWP value)
============  ==========================================================================

plus, optionally, exceedance probabilities given with it (``probabilities``:
``{threshold: P(Y > threshold)}``, e.g. columns of a table). Scores and summaries are
closed-form for ``params`` (the family's CRPS, CDF, quantile function) and empirical
otherwise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from numpy.typing import ArrayLike

from probcast.dists._common import expand
from probcast.dists.ensemble import crps_ensemble
from probcast.dists.registry import get

Kind = Literal["members", "quantiles", "params", "point"]
KINDS: tuple[Kind, ...] = ("params", "members", "quantiles", "point")
"""Forms from the most to the least informative."""


@dataclass(frozen=True)
class Predictive:
    """Predictive distributions of one variable, one row per case.

    Attributes:
        variable: Canonical variable name.
        kind: ``params``, ``members``, ``quantiles`` or ``point``.
        values: ``(n, P)`` parameters, ``(n, M)`` members, ``(n, Q)`` quantiles or ``(n,)``.
        levels: Quantile levels ``(Q,)`` (quantiles form only).
        param_names: Parameter names (params form only).
        family: Registered family name (params form only).
        probabilities: ``{threshold: P(Y > threshold)}`` given with the forecast.
    """

    variable: str
    kind: Kind
    values: np.ndarray
    levels: np.ndarray | None = None
    param_names: tuple[str, ...] = ()
    family: str | None = None
    probabilities: dict[float, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        ndim = 1 if self.kind == "point" else 2
        if np.ndim(self.values) != ndim:
            raise ValueError(
                f"{self.variable}: {self.kind} values must be {ndim}-D, got shape "
                f"{np.shape(self.values)}"
            )
        if self.kind == "params" and self.family is None:
            raise ValueError(f"{self.variable}: a params forecast needs its family name")
        if self.kind == "quantiles" and (
            self.levels is None or len(self.levels) != np.shape(self.values)[1]
        ):
            raise ValueError(f"{self.variable}: quantiles need one level per column")

    # -- constructors -----------------------------------------------------------------
    @classmethod
    def from_params(
        cls, variable: str, family: str, params: Mapping[str, np.ndarray]
    ) -> Predictive:
        """Parameters of family ``family`` (one array of shape ``(n,)`` per parameter)."""
        names = tuple(get(family).param_names)
        missing = [p for p in names if p not in params]
        if missing:
            raise ValueError(f"{variable}: {family} needs parameters {names}, missing {missing}")
        arrays = [np.asarray(params[p], dtype=np.float64).reshape(-1) for p in names]
        n = max(a.size for a in arrays)
        values = np.stack([np.broadcast_to(a, (n,)) for a in arrays], axis=1)
        return cls(variable, "params", values, param_names=names, family=family)

    @classmethod
    def from_members(cls, variable: str, members: np.ndarray) -> Predictive:
        """Ensemble members ``(n, M)``."""
        return cls(variable, "members", np.asarray(members))

    @classmethod
    def from_quantiles(
        cls, variable: str, levels: Sequence[float], values: np.ndarray
    ) -> Predictive:
        """Quantiles ``(n, Q)`` at ``levels`` (sorted ascending here)."""
        lv = np.asarray(levels, dtype=np.float64)
        if lv.ndim != 1 or np.any((lv <= 0) | (lv >= 1)):
            raise ValueError(f"{variable}: quantile levels must lie in (0, 1), got {list(lv)}")
        order = np.argsort(lv)
        return cls(variable, "quantiles", np.asarray(values)[:, order], levels=lv[order])

    @classmethod
    def from_point(cls, variable: str, values: np.ndarray) -> Predictive:
        """A deterministic forecast ``(n,)``."""
        return cls(variable, "point", np.asarray(values))

    # -- views ------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(np.shape(self.values)[0])

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Parameters by name (params form; empty otherwise)."""
        return {name: self.values[:, i] for i, name in enumerate(self.param_names)}

    @property
    def members(self) -> np.ndarray | None:
        """Members ``(n, M)`` (members form), else ``None``."""
        return self.values if self.kind == "members" else None

    @property
    def n_members(self) -> int | None:
        """Ensemble size (members form), else ``None``."""
        return int(self.values.shape[1]) if self.kind == "members" else None

    def take(self, index: np.ndarray) -> Predictive:
        """The forecast restricted to rows ``index`` (boolean mask or integer positions)."""
        probs = {t: p[index] for t, p in self.probabilities.items()}
        return replace(self, values=self.values[index], probabilities=probs)

    def with_probabilities(self, probabilities: Mapping[float, np.ndarray]) -> Predictive:
        """The same forecast carrying exceedance probabilities ``{threshold: P(Y > t)}``."""
        return replace(self, probabilities={float(t): p for t, p in probabilities.items()})

    # -- scores and summaries ---------------------------------------------------------
    def _jparams(self) -> dict[str, jax.Array]:
        return {k: jnp.asarray(v, dtype=jnp.float32) for k, v in self.params.items()}

    def _observations(self, y: ArrayLike) -> np.ndarray:
        """``y`` as one observation per case, shape ``(n,)``.

        An ``(n, 1)`` column (``df[["obs_tp"]]``) or ``(1, n)`` row is flattened; nothing
        is broadcast, so a score never silently compares every case with every observation.

        Raises:
            ValueError: ``y`` does not hold exactly one value per case (naming its shape
                and the expected length).
        """
        obs = np.asarray(y)
        n = len(self)
        one_axis = sum(d != 1 for d in obs.shape) <= 1
        if obs.ndim == 0 or obs.size != n or not one_axis:
            raise ValueError(
                f"{self.variable}: observations of shape {obs.shape} for {n} cases; expected "
                f"one per case, shape ({n},) (or ({n}, 1))"
            )
        try:
            return obs.reshape(n).astype(np.float64)
        except (TypeError, ValueError):
            raise ValueError(
                f"{self.variable}: observations must be numbers, got dtype {obs.dtype}"
            ) from None

    def crps(self, y: ArrayLike, fair: bool = True) -> np.ndarray:
        """CRPS per case, shape ``(n,)``.

        Closed form (params), the ensemble estimator (members; ``fair`` for the unbiased
        one), the absolute error (point); quantile forms are scored by
        :mod:`probcast.verify`, which knows the level grid's approximation.

        Args:
            y: One observation per case: shape ``(n,)`` or ``(n, 1)``
                (:meth:`_observations`).
            fair: The unbiased ensemble estimator (members form).

        Raises:
            ValueError: ``y`` not of one value per case, or a quantiles form.
        """
        if self.kind == "quantiles":
            raise ValueError(f"{self.variable}: crps of a quantiles form needs probcast.verify")
        y64 = self._observations(y)
        obs = jnp.asarray(y64.astype(np.float32))
        if self.kind == "params":
            return np.asarray(get(str(self.family)).crps(self._jparams(), obs))
        if self.kind == "members":
            return np.asarray(crps_ensemble(jnp.asarray(self.values), obs, fair=fair))
        return np.abs(np.asarray(self.values, dtype=np.float64) - y64)

    def mean(self) -> np.ndarray:
        """Mean per case (the median level's value for a quantiles form)."""
        if self.kind == "params":
            return np.asarray(get(str(self.family)).mean(self._jparams()))
        if self.kind == "members":
            return np.asarray(self.values).mean(axis=-1)
        if self.kind == "point":
            return np.asarray(self.values)
        return self.quantiles([0.5])[:, 0]

    def quantiles(self, levels: Sequence[float]) -> np.ndarray:
        """Quantiles ``(n, k)`` at ``levels`` in (0, 1), the same levels for every case."""
        lv = _grid(levels, "levels", self.variable)
        if self.kind == "params":
            dist = get(str(self.family))
            out = dist.quantile(expand(self._jparams()), jnp.asarray(lv, dtype=jnp.float32))
            return np.asarray(out)
        if self.kind == "members":
            return np.moveaxis(np.quantile(self.values, lv, axis=-1), 0, -1)
        if self.kind == "point":
            return np.repeat(np.asarray(self.values)[:, None], len(lv), axis=1)
        assert self.levels is not None
        return np.stack([np.interp(lv, self.levels, row) for row in self.values])

    def cdf(self, x: Sequence[float]) -> np.ndarray:
        """``P(Y <= x)`` ``(n, k)`` for each value of ``x`` (the same ``k`` values per case)."""
        xs = _grid(x, "x", self.variable)
        if self.kind == "params":
            dist = get(str(self.family))
            return np.asarray(dist.cdf(expand(self._jparams()), jnp.asarray(xs, jnp.float32)))
        if self.kind == "members":
            return (self.values[:, :, None] <= xs).mean(axis=1)
        if self.kind == "point":
            return (np.asarray(self.values)[:, None] <= xs).astype(np.float64)
        assert self.levels is not None
        return np.stack([np.interp(xs, row, self.levels, 0.0, 1.0) for row in self.values])

    def exceedance(self, thresholds: Sequence[float]) -> np.ndarray:
        """``P(Y > t)`` ``(n, k)`` for each threshold."""
        return 1.0 - self.cdf(thresholds)

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` members per case ``(cases, n)`` (inverse-CDF draws; resampled members)."""
        if n < 1:
            raise ValueError(f"number of members must be >= 1, got {n}")
        if self.kind == "params":
            dist = get(str(self.family))
            return np.asarray(dist.sample(self._jparams(), jax.random.key(seed), n))
        rng = np.random.default_rng(seed)
        u = rng.uniform(size=(len(self), n))
        if self.kind == "members":
            m = self.values.shape[1]
            return np.take_along_axis(self.values, np.minimum((u * m).astype(int), m - 1), 1)
        if self.kind == "point":
            return np.repeat(np.asarray(self.values)[:, None], n, axis=1)
        assert self.levels is not None
        return np.stack([np.interp(u[i], self.levels, row) for i, row in enumerate(self.values)])


def _grid(values: Sequence[float], what: str, variable: str) -> np.ndarray:
    """Values shared by every case (thresholds, levels): a number or a 1-D sequence.

    Raises:
        ValueError: A 2-D array (per-case values are observations: :meth:`Predictive.crps`).
    """
    out = np.asarray(values, dtype=np.float64)
    if out.ndim > 1:
        raise ValueError(
            f"{variable}: {what} of shape {out.shape}; expected a number or a 1-D sequence of "
            "values shared by every case"
        )
    return out


__all__ = ["KINDS", "Kind", "Predictive"]
