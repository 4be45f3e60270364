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
and without it. The map (fitted on all OOF PITs) is kept when the mean held-out CRPS
falls by at least :data:`MIN_GAIN` and most folds improve, or when validation shows
miscalibration that the map corrects at a negligible cost: the held-out PIT histogram's
max-bin deviation exceeds what sampling alone gives on those rows (a block bootstrap of
their init dates, :func:`probcast.verify.calibration.pit_noise`), the maps fitted on the
other folds bring it within that noise or halve it, and the mean held-out CRPS does not rise
(by more than ``train.recalibrate_max_cost``, :data:`MAX_COST` by default): of two forecasts
with the same CRPS, the calibrated one, whose probabilities mean what they say. Otherwise the
target keeps its parametric forecast. The CRPS of both is computed from the same grid of
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
import pandas as pd

from probcast import dists
from probcast.dists import pit as dists_pit
from probcast.dists.recalibration import PitMap
from probcast.verify import calibration

log = logging.getLogger(__name__)

KNOTS = 101
"""Knots of the map (equally spaced on ``[0, 1]``)."""
PRIOR_ROWS = 100
"""Pseudo-observations of a uniform PIT mixed into the empirical CDF."""
MIN_ROWS = 500
"""Fewest observed OOF rows for a target to be considered."""
MIN_GAIN = 0.005
"""Least relative fall of the mean held-out CRPS for the map to be applied on CRPS alone."""
MAX_COST = 0.0
"""Largest relative rise of the mean held-out CRPS at which a map that corrects a
miscalibration seen on the held-out folds is still applied (``train.recalibrate_max_cost``:
0, the map must not cost CRPS)."""
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
        pit_before: Max-bin deviation of the held-out rows' 10-bin PIT histogram.
        pit_after: The same through the maps fitted on the other folds.
        pit_noise: The deviation sampling alone gives on those rows (95th percentile over a
            block bootstrap of their init dates; NaN without blocks).
        reason: Why the map is kept: ``"crps"``, ``"calibration"``, or ``""``.
    """

    apply: bool
    before: float
    after: float
    improved: int
    folds: int
    rows: int
    pit_before: float = float("nan")
    pit_after: float = float("nan")
    pit_noise: float = float("nan")
    reason: str = ""

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
    blocks: np.ndarray | None = None,
    min_gain: float = MIN_GAIN,
    max_cost: float = MAX_COST,
) -> GateResult:
    """Nested-CV test of the map: fit on all folds but one, score the one left out.

    Above :data:`MAX_SCORED_ROWS` observed rows only a seeded random subset of them is
    scored for the CRPS (each fold's map is still fitted on all the other folds' PITs, and
    the PIT histograms take every held-out row).

    Args:
        family: Distribution family name.
        params: OOF parameters ``(n,)`` per name (the final blended, spread-scaled ones).
        y: Observations ``(n,)`` (NaN: not observed).
        fold: Fold index ``(n,)`` of every row.
        blocks: Block label ``(n,)`` of every row for the PIT's sampling noise (its init
            date: cases of one date share their weather); ``None``: the map is kept on the
            CRPS alone.
        min_gain: Least relative fall of the mean held-out CRPS to keep the map on CRPS.
        max_cost: Largest relative rise of it at which a map that corrects a held-out
            miscalibration beyond noise is kept.
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
    mapped = np.empty_like(u)  # the held-out PITs through the other folds' maps
    for i in ids:
        g = fit_map(u[ff != i])
        mapped[ff == i] = np.asarray(g(u[ff == i]))
        held = (ff == i) & scored
        part = {k: v[held] for k, v in sub.items()}
        c0.append(grid_crps(family, part, yy[held]))
        c1.append(grid_crps(family, part, yy[held], g))
    before, after = float(np.mean(c0)), float(np.mean(c1))
    improved = int(sum(b < a for a, b in zip(c0, c1, strict=True)))
    dev0 = calibration.flatness(calibration.histogram(u)).max_dev
    dev1 = calibration.flatness(calibration.histogram(mapped)).max_dev
    noise = float("nan") if blocks is None else calibration.pit_noise(u, np.asarray(blocks)[ok])
    reason = verdict(before, after, improved / len(ids), dev0, dev1, noise, min_gain, max_cost)
    return GateResult(bool(reason), before, after, improved, len(ids), n, dev0, dev1, noise, reason)


def verdict(
    before: float,
    after: float,
    improved: float,
    pit_before: float,
    pit_after: float,
    pit_noise: float,
    min_gain: float = MIN_GAIN,
    max_cost: float = MAX_COST,
) -> str:
    """Why the map is kept (``"crps"``, ``"calibration"``), or ``""`` when it is not.

    Args:
        before: Mean held-out CRPS without the map.
        after: The same with the maps fitted on the other folds.
        improved: Fraction of folds whose CRPS fell.
        pit_before: Held-out PIT max-bin deviation without the map.
        pit_after: The same with the maps.
        pit_noise: The deviation sampling alone gives (NaN: unknown, no calibration rule).
        min_gain: Least relative fall of the CRPS to keep the map on the CRPS alone.
        max_cost: Largest relative rise of the CRPS for a map that corrects a miscalibration.
    """
    if after < before * (1.0 - min_gain) and improved > 0.5:
        return "crps"
    miscalibrated = pit_before > pit_noise  # False for a NaN noise
    corrected = pit_after <= max(pit_noise, pit_before / 2)
    if miscalibrated and corrected and after <= before * (1.0 + max_cost):
        return "calibration"
    return ""


def select_maps(
    heads: Mapping[str, str],
    params: Mapping[str, Mapping[str, np.ndarray]],
    y: Mapping[str, np.ndarray],
    fold: np.ndarray,
    gated: bool = True,
    blocks: np.ndarray | None = None,
    max_cost: float = MAX_COST,
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
        blocks: Init date of every row (the PIT's sampling noise; see :func:`gate`).
        max_cost: See :func:`gate`.

    Returns:
        ``{"recalibration": {target: knots}, "recalibration_gate": {target: record}}`` for
        ``calibration.json``; the first is empty when no target passes the gate.
    """
    maps: dict[str, list[float]] = {}
    records: dict[str, dict[str, Any]] = {}
    for var, p in params.items():
        family = heads[var]
        result = gate(family, p, y[var], fold, blocks, max_cost=max_cost)
        records[var] = result.to_dict()
        kept = result.apply or (not gated and result.scored)
        log.info(
            "recalibration gate of %s: held-out CRPS %.5g -> %.5g (%+.2f %%), %d/%d folds "
            "better, PIT max-bin deviation %.3f -> %.3f (noise %.3f): %s",
            var,
            result.before,
            result.after,
            100 * result.gain,
            result.improved,
            result.folds,
            result.pit_before,
            result.pit_after,
            result.pit_noise,
            f"apply ({result.reason})"
            if result.apply
            else "skip, applied ungated"
            if kept
            else "skip",
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
    dates = (
        pd.to_datetime(held["init_time"]).dt.floor("D").to_numpy() if "init_time" in held else None
    )
    cost = float(config.train.get("recalibrate_max_cost", MAX_COST))
    if not 0.0 <= cost < 1.0:
        raise ValueError(f"train.recalibrate_max_cost must be in [0, 1), got {cost}")
    return select_maps(heads, params, y, fold, gated, dates, cost)
