"""Post-hoc PIT recalibration, chosen per target by a nested cross-validation gate.

After the blend weight and the spread factor (:mod:`probcast.train.select`), the
out-of-fold (OOF) predictions of every training row can still be miscalibrated in shape
(skewed, a point mass handled badly, too many observations in one tail). The empirical
distribution ``G`` of their probability integral transforms (PIT, randomised where the
forecast has a point mass) is a monotone map of ``[0, 1]`` that makes them calibrated:
the recalibrated CDF is ``G(F(y))`` (:class:`probcast.dists.recalibration.PitMap`).

Applied blindly such a map helps some targets and hurts others (the PIT of unseen weeks
differs from the OOF one). The gate decides per target on held-out data: for each fold the
map is fitted on the other folds' OOF PITs and the held-out fold's CRPS is compared with
and without it. The map (fitted on all OOF PITs) is kept only when the mean held-out CRPS
falls by at least :data:`MIN_GAIN` and most folds improve; otherwise the target keeps its
parametric forecast. The CRPS of both is computed from the same grid of
:data:`N_LEVELS` quantile levels (mean pinball loss), so the comparison is like for like.

``G`` is the empirical CDF of the PITs on :data:`KNOTS` equally spaced knots, shrunk
towards the identity by :data:`PRIOR_ROWS` pseudo-observations (strictly increasing,
``G(0) = 0``, ``G(1) = 1``, and close to the identity when few rows are available).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from probcast import dists
from probcast.dists import pit as dists_pit
from probcast.dists.recalibration import PitMap

log = logging.getLogger(__name__)

KNOTS = 101
"""Knots of the map (equally spaced on ``[0, 1]``)."""
PRIOR_ROWS = 100
"""Pseudo-observations of a uniform PIT mixed into the empirical CDF."""
MIN_ROWS = 500
"""Fewest observed OOF rows for a target to be considered."""
MIN_GAIN = 0.005
"""Least relative fall of the mean held-out CRPS for the map to be applied."""
N_LEVELS = 200
"""Quantile levels of the CRPS approximation used by the gate."""
MAX_SCORED_ROWS = 100_000
"""Most held-out rows the gate scores (a seeded random subset of them beyond): the maps are
still fitted on every OOF PIT, and on 100,000 rows the paired difference of the mean CRPS
with and without a map is known far more precisely than :data:`MIN_GAIN`."""
_CHUNK = 32768


def pit(family: str, params: Mapping[str, np.ndarray], y: np.ndarray, seed: int = 0) -> np.ndarray:
    """Randomised PIT (:func:`probcast.dists.pit.parametric`) of the observed rows.

    Args:
        family: Distribution family name.
        params: Parameters ``(n,)`` per name.
        y: Observations ``(n,)``; NaN rows are dropped from the result.
        seed: Seed of the uniforms (they only matter at point masses).

    Returns:
        ``(m,)`` PIT values of the ``m`` observed rows, in order.
    """
    ok = np.isfinite(y)
    sub = {k: np.asarray(v)[ok] for k, v in params.items()}
    return dists_pit.parametric(dists.get(family), sub, y[ok], np.random.default_rng(seed))


def fit_map(u: np.ndarray, knots: int = KNOTS, prior: int = PRIOR_ROWS) -> PitMap:
    """The monotone map ``G`` (empirical CDF of the PITs ``u``, shrunk to the identity).

    Args:
        u: PIT values in ``[0, 1]``.
        knots: Knots of the piecewise-linear map.
        prior: Pseudo-observations of a uniform PIT (shrinkage; > 0 keeps it strictly
            increasing).
    """
    u = np.sort(np.asarray(u, dtype=np.float64))
    xs = np.linspace(0.0, 1.0, knots)
    ecdf = np.searchsorted(u, xs, side="right") / max(1, len(u))
    ys = (len(u) * ecdf + prior * xs) / (len(u) + prior)
    ys[0], ys[-1] = 0.0, 1.0
    return PitMap(ys)


@functools.partial(jax.jit, static_argnums=0)
def _pinball(family: str, params: dict, y: jax.Array, q: jax.Array, levels: jax.Array) -> jax.Array:
    """Sum over rows of the CRPS approximated by quantiles at ``q`` scored at ``levels``."""
    x = dists.get(family).quantile({k: v[:, None] for k, v in params.items()}, q[None, :])
    d = y[:, None] - x
    return jnp.sum(2.0 * jnp.mean(jnp.maximum(levels * d, (levels - 1.0) * d), axis=1))


def grid_crps(
    family: str,
    params: Mapping[str, np.ndarray],
    y: np.ndarray,
    pit_map: PitMap | None = None,
    n_levels: int = N_LEVELS,
) -> float:
    """Mean CRPS of observed rows from ``n_levels`` quantiles (recalibrated by ``pit_map``).

    The quantile at level ``tau`` is ``F^{-1}(tau)``, or ``F^{-1}(G^{-1}(tau))`` with a map.
    """
    ok = np.isfinite(y)
    levels = (np.arange(n_levels) + 0.5) / n_levels
    q = np.asarray(pit_map.inverse(levels)) if pit_map is not None else levels
    lv, qj = jnp.asarray(levels, dtype=jnp.float32), jnp.asarray(q, dtype=jnp.float32)
    sub = {k: np.asarray(v, dtype=np.float32)[ok] for k, v in params.items()}
    yy = np.asarray(y[ok], dtype=np.float32)
    total = 0.0
    for s in range(0, len(yy), _CHUNK):
        part = {k: jnp.asarray(v[s : s + _CHUNK]) for k, v in sub.items()}
        total += float(_pinball(family, part, jnp.asarray(yy[s : s + _CHUNK]), qj, lv))
    return total / max(1, len(yy))


@dataclasses.dataclass(frozen=True)
class GateResult:
    """The gate's verdict for one target.

    Attributes:
        apply: Whether the map is kept.
        before: Mean held-out-fold CRPS without the map (quantile-grid approximation).
        after: The same with the map fitted on the other folds.
        improved: Folds whose CRPS fell.
        folds: Folds scored.
        rows: Observed OOF rows.
    """

    apply: bool
    before: float
    after: float
    improved: int
    folds: int
    rows: int

    @property
    def scored(self) -> bool:
        """Whether the gate could score the map (enough observed rows and folds)."""
        return not math.isnan(self.before)

    @property
    def gain(self) -> float:
        """Relative change of the mean held-out CRPS (negative: better)."""
        return self.after / self.before - 1.0 if self.before > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record (with the relative change)."""
        return {**dataclasses.asdict(self), "gain": round(self.gain, 6)}


def gate(
    family: str,
    params: Mapping[str, np.ndarray],
    y: np.ndarray,
    fold: np.ndarray,
    min_gain: float = MIN_GAIN,
) -> GateResult:
    """Nested-CV test of the map: fit on all folds but one, score the one left out.

    Above :data:`MAX_SCORED_ROWS` observed rows only a seeded random subset of them is
    scored (each fold's map is still fitted on all the other folds' PITs).

    Args:
        family: Distribution family name.
        params: OOF parameters ``(n,)`` per name (the final blended, spread-scaled ones).
        y: Observations ``(n,)`` (NaN: not observed).
        fold: Fold index ``(n,)`` of every row.
        min_gain: Least relative fall of the mean held-out CRPS.
    """
    ok = np.isfinite(y)
    n = int(ok.sum())
    ids = np.unique(fold[ok])
    if n < MIN_ROWS or len(ids) < 2:
        return GateResult(False, float("nan"), float("nan"), 0, len(ids), n)
    sub = {k: np.asarray(v)[ok] for k, v in params.items()}
    yy, ff = np.asarray(y)[ok], np.asarray(fold)[ok]
    u = pit(family, sub, yy)
    scored = np.ones(n, dtype=bool)
    if n > MAX_SCORED_ROWS:
        scored[:] = False
        scored[np.random.default_rng(0).choice(n, MAX_SCORED_ROWS, replace=False)] = True
    c0, c1 = [], []
    for i in ids:
        held = (ff == i) & scored
        part = {k: v[held] for k, v in sub.items()}
        c0.append(grid_crps(family, part, yy[held]))
        c1.append(grid_crps(family, part, yy[held], fit_map(u[ff != i])))
    before, after = float(np.mean(c0)), float(np.mean(c1))
    improved = int(sum(b < a for a, b in zip(c0, c1, strict=True)))
    apply = after < before * (1.0 - min_gain) and improved > len(ids) / 2
    return GateResult(apply, before, after, improved, len(ids), n)


def select_maps(
    heads: Mapping[str, str],
    params: Mapping[str, Mapping[str, np.ndarray]],
    y: Mapping[str, np.ndarray],
    fold: np.ndarray,
    gated: bool = True,
) -> dict[str, Any]:
    """Gate every target and fit the kept maps on all its OOF PITs.

    Args:
        heads: Target -> family of the parametric targets to consider.
        params: Target -> final OOF parameters.
        y: Target -> observations of the same rows.
        fold: Fold index of every row.
        gated: Keep a map only where the gate finds it lowers the held-out CRPS; ``False``
            keeps it on every target the gate could score (calibration first,
            ``train.recalibrate_gate``), the gate's record still saved.

    Returns:
        ``{"recalibration": {target: knots}, "recalibration_gate": {target: record}}`` for
        ``calibration.json``; the first is empty when no target passes the gate.
    """
    maps: dict[str, list[float]] = {}
    records: dict[str, dict[str, Any]] = {}
    for var, p in params.items():
        family = heads[var]
        result = gate(family, p, y[var], fold)
        records[var] = result.to_dict()
        kept = result.apply or (not gated and result.scored)
        log.info(
            "recalibration gate of %s: held-out CRPS %.5g -> %.5g (%+.2f %%), %d/%d folds "
            "better: %s",
            var,
            result.before,
            result.after,
            100 * result.gain,
            result.improved,
            result.folds,
            "apply" if result.apply else "skip, applied ungated" if kept else "skip",
        )
        if kept:
            maps[var] = fit_map(pit(family, p, y[var])).to_list()
    return {"recalibration": maps, "recalibration_gate": records}


def on_folds(
    config: Any,
    heads: Mapping[str, str],
    params: Mapping[str, Mapping[str, np.ndarray]],
    held: Any,
    sizes: list[int],
) -> dict[str, Any]:
    """:func:`select_maps` on the out-of-fold predictions of cross-validation.

    Args:
        config: Training config (``train.recalibrate`` off: nothing is fitted).
        heads: Target -> family.
        params: Target -> final OOF parameters of the rows of ``held``.
        held: The held-out blocks concatenated in fold order (a table with ``obs_<var>``).
        sizes: Rows of each fold's block, in the same order.

    Returns:
        The record for ``calibration.json`` (empty when switched off).
    """
    if not bool(config.train.get("recalibrate", False)) or not params:
        return {}
    fold = np.repeat(np.arange(len(sizes)), sizes)
    y = {v: held[f"obs_{v}"].to_numpy(dtype="float64") for v in params}
    gated = bool(config.train.get("recalibrate_gate", True))
    return select_maps(heads, params, y, fold, gated)
