"""Per-row fallbacks: which rows the network can predict, and what the others get instead.

The network needs every input of a row: each predictor it was trained on (a missing value
only where training had an indicator for it, see :mod:`probcast.features`) and the raw
forecast of every target, all finite and, for known variables, within the physical range
(values off by float noise only are clipped, :func:`probcast.ranges.clip_float_noise`).
A row that lacks one is not refused; per target ``<var>`` it gets, in order
(:data:`probcast.products.table.SOURCES`):

1. ``emos``: the model's own local EMOS of ``<var>`` (fitted for the blend,
   :mod:`probcast.train.blend`; only blended targets have one), where its inputs are finite;
2. ``raw_dressed``: the raw forecast ``fc_<var>`` dressed with the training error spread
   (the family's parameters at zero raw values: centred on the forecast, latent standard
   deviation = training std of ``obs - fc``; the head's family, or the variable's default
   family for a generative head);
3. ``missing``: no valid ``fc_<var>``: NaN forecasts.

A table none of whose rows the network can predict is refused (:class:`UnusableTableError`).
Station and gridded prediction share this code (:func:`plan_rows`, :class:`Filler`), so a grid
point gets the forecast, and the source, of the same row predicted as a station.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from probcast import dists
from probcast.baselines.emos import EmosModel
from probcast.dists._common import expand
from probcast.features import FeatureSpec, MissingColumnsError
from probcast.products.table import SOURCES
from probcast.ranges import clip_float_noise, ranged_variable
from probcast.schema import FC_PREFIX

log = logging.getLogger(__name__)

MODEL, EMOS, RAW, MISSING = SOURCES


class UnusableTableError(ValueError):
    """No row of the table has the inputs the network needs."""


@dataclasses.dataclass
class InputCheck:
    """Which rows the network can predict.

    Attributes:
        table: The input table with float noise clipped (same rows and order).
        usable: Rows whose every network input is present and valid.
        problems: Input column -> rows where it is missing or invalid.
        valid_fc: Target -> rows with a valid raw forecast ``fc_<var>``.
        clipped: Input column -> values clipped as float noise.
    """

    table: pd.DataFrame
    usable: np.ndarray
    problems: dict[str, int]
    valid_fc: dict[str, np.ndarray]
    clipped: dict[str, int]


def check_inputs(
    table: pd.DataFrame,
    columns: Sequence[str],
    indicators: Sequence[str],
    targets: Sequence[str],
) -> InputCheck:
    """Check the network inputs of every row.

    Args:
        table: Canonical station table.
        columns: Input columns of the feature spec.
        indicators: Columns whose missing values the network knows (missing indicator).
        targets: Target variables (their ``fc_<var>`` may never be missing).

    Raises:
        ValueError: An input column is absent from the table (a table of another layout,
            not a row to fall back on).
    """
    needed = list(dict.fromkeys([*columns, *(FC_PREFIX + v for v in targets)]))
    absent = [c for c in needed if c not in table.columns]
    if absent:
        raise MissingColumnsError(absent, targets)
    out = table.copy() if any(ranged_variable(c) for c in needed) else table
    usable = np.ones(len(table), dtype=bool)
    problems: dict[str, int] = {}
    clipped: dict[str, int] = {}
    valid: dict[str, np.ndarray] = {}
    for col in needed:
        values = table[col].to_numpy(dtype="float64")
        bad = np.isinf(values)
        if col not in indicators:
            bad |= np.isnan(values)
        var = ranged_variable(col)
        if var is not None:
            values, n_noise, outside = clip_float_noise(values, var)
            bad |= outside
            if n_noise:
                clipped[col] = n_noise
                out[col] = values
        if bad.any():
            problems[col] = int(bad.sum())
            usable &= ~bad
        if col.removeprefix(FC_PREFIX) in targets and col.startswith(FC_PREFIX):
            valid[col.removeprefix(FC_PREFIX)] = np.isfinite(values) & ~bad
    return InputCheck(out, usable, problems, valid, clipped)


@dataclasses.dataclass
class Fallback:
    """The fallback distributions of one target on some rows.

    Attributes:
        variable: Target variable.
        family: Registered family of ``params``.
        rows: Positions (in the table) of the rows it covers.
        params: Parameters ``(len(rows),)`` by name.
    """

    variable: str
    family: str
    rows: np.ndarray
    params: dict[str, np.ndarray]

    def _jparams(self) -> dict[str, jax.Array]:
        return {k: jnp.asarray(v, dtype=jnp.float32) for k, v in self.params.items()}

    def members(self, n: int, seed: int) -> np.ndarray:
        """``n`` members per row ``(rows, n)`` (inverse-CDF draws, seeded)."""
        key = jax.random.fold_in(jax.random.key(seed), len(SOURCES))
        return np.asarray(dists.get(self.family).sample(self._jparams(), key, n))

    def quantiles(self, levels: Sequence[float]) -> np.ndarray:
        """Quantiles ``(rows, k)`` at ``levels``."""
        lv = jnp.asarray(np.asarray(levels, dtype=np.float32))
        return np.asarray(dists.get(self.family).quantile(expand(self._jparams()), lv))

    def exceedance(self, thresholds: Sequence[float]) -> np.ndarray:
        """``P(Y > t)`` ``(rows, k)``."""
        ts = jnp.asarray(np.asarray(thresholds, dtype=np.float32))
        return 1.0 - np.asarray(dists.get(self.family).cdf(expand(self._jparams()), ts))


def fallback_family(var: str, head: str) -> str:
    """Family of the fallbacks of ``var``: the head's, or the variable's default one."""
    return dists.default_for(var) if dists.is_generative(head) else head


def row_sources(
    check: InputCheck,
    heads: Mapping[str, str],
    spread: Mapping[str, float],
    blend: Mapping[str, Mapping[str, Any]],
    *,
    refuse: bool = True,
) -> tuple[dict[str, np.ndarray], dict[str, Fallback]]:
    """The source of every row's forecast of each target, and the fallbacks.

    Args:
        check: Result of :func:`check_inputs`.
        heads: Target -> head family (or the generative marker).
        spread: Target -> training std of ``obs - fc`` (the feature spec's ``scale``).
        blend: The model's EMOS blend (target -> ``{"weight", "emos"}``).
        refuse: Refuse a table none of whose rows the network can predict (``False``: one
            tile of a grid, which is part of a larger table).

    Returns:
        ``({var: labels (rows,)}, {var: Fallback of the rows not predicted by the
        network})``; a target without such rows has no fallback.

    Raises:
        UnusableTableError: No row is usable by the network (with ``refuse``).
    """
    table, n = check.table, len(check.table)
    if refuse and n and not check.usable.any():
        worst = ", ".join(f"{c} ({k} rows)" for c, k in sorted(check.problems.items()))
        raise UnusableTableError(
            f"no row of the table ({n} rows) has every input the model needs; missing or "
            f"invalid: {worst}"
        )
    sources: dict[str, np.ndarray] = {}
    fallbacks: dict[str, Fallback] = {}
    for var, head in heads.items():
        labels = np.full(n, MODEL, dtype=object)
        labels[~check.usable] = RAW
        labels[~check.usable & ~check.valid_fc[var]] = MISSING
        rows = np.flatnonzero(labels == RAW)
        if not len(rows):
            sources[var] = labels
            continue
        family = fallback_family(var, head)
        sub = table.iloc[rows]
        params = _dressed(family, sub[FC_PREFIX + var].to_numpy(dtype="float32"), spread[var])
        if var in blend and not dists.is_generative(head):
            emos = EmosModel.from_dict(dict(blend[var]["emos"]))
            local = {k: np.asarray(v) for k, v in emos.predict(sub).items()}
            ok = np.logical_and.reduce([np.isfinite(v) for v in local.values()])
            params = {k: np.where(ok, local[k], v) for k, v in params.items()}
            labels[rows[ok]] = EMOS
        sources[var] = labels
        fallbacks[var] = Fallback(var, family, rows, params)
    return sources, fallbacks


@dataclasses.dataclass
class RowPlan:
    """Which rows the network predicts and what the others get (:func:`plan_rows`).

    Attributes:
        check: The input check (its ``table``: the rows with float noise clipped).
        use: Positions of the rows the network predicts.
        sources: Target -> source label of every row (``<var>_source``).
        fallbacks: Target -> fallback of its rows the network does not predict.
    """

    check: InputCheck
    use: np.ndarray
    sources: dict[str, np.ndarray]
    fallbacks: dict[str, Fallback]

    @property
    def table(self) -> pd.DataFrame:
        """The checked table (every row)."""
        return self.check.table

    @property
    def network_rows(self) -> pd.DataFrame:
        """The rows the network predicts (the whole table when it predicts every row)."""
        table = self.check.table
        return table if len(self.use) == len(table) else table.iloc[self.use]

    def filler(self) -> Filler:
        """The :class:`Filler` of these rows."""
        return Filler(len(self.check.table), self.use, self.fallbacks)


def plan_rows(
    table: pd.DataFrame,
    spec: FeatureSpec,
    heads: Mapping[str, str],
    blend: Mapping[str, Mapping[str, Any]],
    *,
    refuse: bool = True,
) -> RowPlan:
    """Check every row's network inputs and choose each target's source per row.

    The one rule of station and gridded prediction: :func:`check_inputs`, then
    :func:`row_sources`.

    Args:
        table: Canonical station table with the model's input columns (derived ones
            included, :meth:`~probcast.features.FeatureSpec.derive`).
        spec: The model's feature spec.
        heads: Target -> head family (or the generative marker).
        blend: The model's EMOS blend.
        refuse: See :func:`row_sources`.

    Raises:
        ValueError: An input column is absent; no row is usable (with ``refuse``).
    """
    check = check_inputs(table, spec.columns, spec.indicators, spec.targets)
    spread = dict(zip(spec.targets, spec.scale, strict=True))
    sources, fallbacks = row_sources(check, heads, spread, blend, refuse=refuse)
    return RowPlan(check, np.flatnonzero(check.usable), sources, fallbacks)


class Filler:
    """Full-length products: the network's on its rows, the fallbacks' elsewhere.

    Rows without a fallback (``missing``) are NaN.

    Args:
        n: Rows of the table.
        use: Positions of the rows the network predicted.
        fallbacks: Target -> its fallback.
    """

    def __init__(self, n: int, use: np.ndarray, fallbacks: Mapping[str, Fallback]) -> None:
        self.n, self.use, self.fallbacks = n, use, fallbacks

    def __call__(self, var: str, part: np.ndarray, form: str, *args: Any) -> np.ndarray:
        """``part`` (network rows) scattered; fallback rows from ``Fallback.<form>(*args)``.

        Args:
            var: Target.
            part: The network's values ``(len(use), ...)``.
            form: ``members``, ``quantiles`` or ``exceedance``.
            *args: Arguments of that :class:`Fallback` method.
        """
        if len(self.use) == self.n:
            return part
        full = np.full((self.n, *np.shape(part)[1:]), np.nan, dtype=np.float32)
        full[self.use] = part
        fb = self.fallbacks.get(var)
        if fb is not None:
            values = np.asarray(getattr(fb, form)(*args), dtype=np.float32)
            full[fb.rows] = values.reshape(len(fb.rows), -1)
        return full

    def params(self, var: str, part: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Parameters ``(n,)`` by name: the network's, the fallback's (same family) elsewhere."""
        if len(self.use) == self.n:
            return dict(part)
        fb = self.fallbacks.get(var)
        out = {}
        for name, values in part.items():
            full = np.full(self.n, np.nan, dtype=np.float32)
            full[self.use] = values
            if fb is not None and name in fb.params:
                full[fb.rows] = fb.params[name]
            out[name] = full
        return out


def _dressed(family: str, fc: np.ndarray, spread: float) -> dict[str, np.ndarray]:
    dist = dists.get(family)
    raw = jnp.zeros((len(fc), len(dist.param_names)), dtype=jnp.float32)
    params = dist.constrain(raw, jnp.asarray(fc), jnp.asarray(spread, dtype=jnp.float32))
    return {k: np.asarray(v, dtype=np.float32) for k, v in params.items()}


def summary(sources: Mapping[str, np.ndarray]) -> str:
    """``t2m: model 80, emos 2, raw_dressed 1, missing 1; tp: ...`` (sources with rows)."""
    parts = []
    for var, labels in sources.items():
        counts = [(s, int((labels == s).sum())) for s in SOURCES]
        parts.append(f"{var}: " + ", ".join(f"{s} {k}" for s, k in counts if k))
    return "; ".join(parts)


__all__ = [
    "Fallback",
    "Filler",
    "InputCheck",
    "RowPlan",
    "UnusableTableError",
    "check_inputs",
    "fallback_family",
    "plan_rows",
    "row_sources",
    "summary",
]
