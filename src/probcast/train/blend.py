"""Blending with local EMOS, weighted on validation data: the fallback where data is thin.

On small or shifting data a network can lose to per-station EMOS (Gneiting et al. 2005)
fitted on the same rows. Rather than choosing by hand, training fits local EMOS on the fit
part of the training period and picks, per target, the weight ``w`` in [0, 1] of EMOS in a
Vincentized (quantile-averaged) pool of the two predictive distributions that minimises the
mean CRPS on the validation rows. For two members of one location-scale family (censored and
truncated ones included, in their latent space) quantile averaging is the weighted mean of
``loc`` and ``scale``, so the pool stays in the family and keeps its closed-form CRPS.
``w = 0`` is the network alone, ``w = 1`` the classical model alone. The test period is never
looked at; the weights and the EMOS coefficients are saved in ``blend.json``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from probcast import dists
from probcast.baselines.emos import EmosModel, fit_emos
from probcast.baselines.emos_fit import bucket
from probcast.baselines.emos_layout import BLOCK
from probcast.train.calibrate import calibratable

log = logging.getLogger(__name__)

WEIGHTS = np.round(np.linspace(0.0, 1.0, 21), 2)
"""Candidate EMOS weights."""
MIN_VAL_ROWS = 30
EMOS_MAX_ROWS = 1_000_000
"""Default cap on the rows local EMOS is fitted on (``train.emos_max_rows``)."""


PAD_MAX_ROWS = 1 << 18
"""Largest row count up to which every EMOS fit of a training is padded alike (:func:`pad_for`)."""


def pad_for(*tables: pd.DataFrame) -> int | None:
    """Rows every blend EMOS fit on subsets of ``tables`` (together) is padded to, or ``None``.

    The blend fits EMOS on subsets of the training rows (the fit part, each
    cross-validation fold's, then all of them), and each fit's kernels compile for its padded
    row count: padded alike, the fits share one compiled kernel per family instead of
    compiling again (0.3-1.2 s each on a 2-core CPU) for a row count a fifth smaller. The
    size leaves room for the local fit's layout (each station's rows fill whole blocks of
    :data:`~probcast.baselines.emos_layout.BLOCK`). The padded rows cost kernel time in
    proportion, so above :data:`PAD_MAX_ROWS` rows (``None``) each fit keeps its own size.
    The fitted coefficients do not depend on it.
    """
    rows = sum(len(t) for t in tables)
    if not 0 < rows <= PAD_MAX_ROWS:
        return None
    ids = [t["station"].astype(str).to_numpy() for t in tables if "station" in t.columns]
    stations = len(pd.unique(np.concatenate(ids))) if ids else 1
    n = rows + (BLOCK - 1) * stations
    return bucket(n) if n <= PAD_MAX_ROWS else None


def emos_rows(table: pd.DataFrame, max_rows: int = EMOS_MAX_ROWS, seed: int = 0) -> pd.DataFrame:
    """``table``, or a station-stratified random subset of about ``max_rows`` rows.

    Local EMOS has a handful of coefficients per station: a few thousand rows per station
    determine them, and on a national network (tens of millions of rows) fitting on all of
    them would cost more than training the network. Every station keeps the same fraction
    of its rows (at least one), so the per-station fits see the same mix of lead times and
    seasons; the subset is fixed by ``seed``.
    """
    if max_rows <= 0 or len(table) <= max_rows:
        return table
    frac = max_rows / len(table)
    subset = table.groupby("station", observed=True, sort=False, group_keys=False).sample(
        frac=frac, random_state=seed
    )
    log.info("local EMOS fitted on %d of %d rows (train.emos_max_rows)", len(subset), len(table))
    return subset.sort_index()


def choose_weight(
    family: str, net: Mapping[str, np.ndarray], emos: Mapping[str, np.ndarray], y: np.ndarray
) -> float:
    """The candidate weight with the lowest mean validation CRPS (ties: less EMOS).

    Every candidate is scored in one compiled call (:func:`weight_scores`); the pool is
    that of :func:`probcast.dists.pooling.blend_params`.
    """
    return float(WEIGHTS[int(np.nanargmin(weight_scores(family, net, emos, y)))])


def weight_scores(
    family: str, net: Mapping[str, np.ndarray], emos: Mapping[str, np.ndarray], y: np.ndarray
) -> np.ndarray:
    """Mean CRPS over the observed rows of the blend with each of :data:`WEIGHTS`."""
    obs = np.isfinite(y)
    both = obs & np.logical_and.reduce([np.isfinite(np.asarray(emos[k])) for k in net])
    a = {k: np.asarray(v, dtype=np.float32)[obs] for k, v in net.items()}
    b = {k: np.where(both, np.asarray(emos[k], dtype=np.float32), 0.0)[obs] for k in net}
    y32 = np.asarray(y[obs], dtype=np.float32)
    return np.asarray(_weight_scores(family, a, b, both[obs], y32, WEIGHTS.astype(np.float32)))


@functools.partial(jax.jit, static_argnums=0)
def _weight_scores(
    family: str,
    net: dict[str, jax.Array],
    emos: dict[str, jax.Array],
    both: jax.Array,
    y: jax.Array,
    weights: jax.Array,
) -> jax.Array:
    dist = dists.get(family)

    def score(w: jax.Array) -> jax.Array:
        mixed = {k: jnp.where(both, (1.0 - w) * v + w * emos[k], v) for k, v in net.items()}
        return jnp.mean(dist.crps(mixed, y))

    return jax.lax.map(score, weights)  # one weight at a time: memory of one blend


def fit_blend(
    model: Any,
    fit_table: pd.DataFrame,
    val_table: pd.DataFrame,
    max_rows: int = EMOS_MAX_ROWS,
    pad_rows: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Choose per target the EMOS weight on validation rows.

    Args:
        model: The trained :class:`probcast.model.predictor.TrainedModel` (no blend yet).
        fit_table: Rows the network was fitted on (EMOS is fitted on the same rows, or on
            a station-stratified subset of ``max_rows`` of them: :func:`emos_rows`).
        val_table: Validation rows.
        max_rows: Cap on the EMOS fitting rows (0: no cap).
        pad_rows: Rows the EMOS fits are padded to (:func:`pad_for`).

    Returns:
        ``{var: {"weight": w, "emos": coefficients}}`` for targets with ``w > 0``.
    """
    out: dict[str, dict[str, Any]] = {}
    if len(val_table) < MIN_VAL_ROWS:
        return out
    net_params = model.params(val_table)
    fit_table = emos_rows(fit_table, max_rows)
    for var, params in net_params.items():
        family = model.heads[var]
        if not calibratable(family):
            continue
        y = val_table[f"obs_{var}"].to_numpy(dtype="float64")
        if int(np.isfinite(y).sum()) < MIN_VAL_ROWS:
            continue
        emos = fit_emos(fit_table, var, family=family, by_station=True, pad_rows=pad_rows)
        weight = choose_weight(family, params, emos.predict(val_table), y)
        log.info("EMOS blend weight of %s chosen on %d validation rows: %.2f", var, len(y), weight)
        if weight > 0:
            out[var] = {"weight": weight, "emos": emos.to_dict()}
    return out


def refit_emos(
    blend: Mapping[str, Mapping[str, Any]], table: pd.DataFrame, max_rows: int = EMOS_MAX_ROWS
) -> dict[str, Any]:
    """The same blend with EMOS refitted on ``table`` (all training rows, for the refit).

    Each fit starts from the selection's (fitted on most of these rows): the same optimum
    as a cold fit, in a few Newton steps on all rows instead of warm-up stages.
    """
    out: dict[str, Any] = {}
    table = emos_rows(table, max_rows) if blend else table
    pad = pad_for(table)
    for var, b in blend.items():
        old = EmosModel.from_dict(dict(b["emos"]))
        emos = fit_emos(  # from the selection's fit: most of these rows, a few Newton steps
            table,
            var,
            family=old.family,
            by_station=True,
            min_rows=old.min_rows,
            pad_rows=pad,
            start=old,
        )
        out[var] = {"weight": float(b["weight"]), "emos": emos.to_dict()}
    return out
