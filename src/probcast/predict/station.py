"""Station predictions: a trained model and a station table -> a prediction table.

Output columns (the contract of :mod:`probcast.products.table`): the key columns
(``station``, ``init_time``, ``lead_time``, ``valid_time``) and, per target ``<var>``:
members ``<var>_m000 ...``, quantiles ``<var>_q0.05 ...``, exceedance probabilities
``<var>_p_gt_<thr> ...`` and the distribution parameters ``<var>_<param>`` (e.g. ``tp_loc``,
``tp_scale``), plus any ``obs_*`` columns of the input.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from probcast import defaults
from probcast.dists import Predictive, is_generative
from probcast.model.predictor import TrainedModel
from probcast.products import table as product_table
from probcast.products.coherence import enforce_constraints, schaake_shuffle


@dataclass
class StationPrediction:
    """What a station prediction produced.

    Attributes:
        table: The prediction table (one row per input row, in input order).
        families: Variable -> family of its parameter columns (only where the parameters
            are the predictive distribution).
        forecasts: Variable -> the most informative :class:`~probcast.dists.Predictive`
            among what was computed.
    """

    table: pd.DataFrame
    families: dict[str, str]
    forecasts: dict[str, Predictive]


def predict_stations(
    model: TrainedModel,
    table: pd.DataFrame,
    *,
    members: int = 0,
    quantiles: Sequence[float] = (),
    thresholds: Mapping[str, Sequence[float]] | None = None,
    seed: int = 0,
    params: bool = True,
    template: pd.DataFrame | None = None,
) -> StationPrediction:
    """Predict every target of ``model`` for each row of ``table``.

    Args:
        model: Loaded model (:func:`probcast.model.artefact.load`), with its options.
        table: Canonical station table with the training predictors (obs columns are
            copied to the output when present).
        members: Number of coherent members per row (0: none, except that a generative
            head with neither members nor quantiles asked for gets
            :data:`probcast.defaults.MEMBERS`, its only scoreable form).
        quantiles: Quantile levels in (0, 1).
        thresholds: Per target, thresholds of the exceedance probabilities.
        seed: Seed of the member draws.
        params: Include the distribution parameters of parametric heads.
        template: Past observations for the Schaake shuffle of the members
            (:mod:`probcast.products.coherence`); ``None`` keeps them independent across rows.

    Returns:
        The table, the families of its parameters and one ``Predictive`` per target.
    """
    keys = table[[c for c in product_table.KEYS if c in table.columns]].copy()
    thresholds = dict(thresholds or {})
    rows = model.inputs(table)  # validated and transformed once for every product below
    pooled = model.params(rows) if model.parametric else {}
    # A generative head has no parameters: with nothing else asked for, it gets members.
    bare = any(is_generative(h) for h in model.heads.values()) and not (members or quantiles)
    n_members = members or (defaults.MEMBERS if bare else 0)
    sampled = model.sample(rows, n_members, seed) if n_members else {}
    if not members:
        sampled = {v: m for v, m in sampled.items() if is_generative(model.heads[v])}
    if sampled and template is not None:
        sampled = schaake_shuffle(table, sampled, template, seed=seed)
    sampled = enforce_constraints(sampled)
    qs = model.quantiles(rows, quantiles) if quantiles else {}
    probs = model.exceedance(rows, thresholds) if thresholds else {}
    cols: dict[str, np.ndarray] = {}
    families: dict[str, str] = {}
    forecasts: dict[str, Predictive] = {}
    for var, head in model.heads.items():
        exact = var in pooled and model.pooled_params_are_predictive(var)
        if params and var in pooled:
            cols.update(product_table.param_columns(var, pooled[var]))
            if exact:
                families[var] = head
        if var in sampled:
            cols.update(product_table.member_columns(var, sampled[var]))
        if var in qs:
            cols.update(product_table.quantile_columns(var, quantiles, qs[var]))
        if var in probs:
            cols.update(product_table.probability_columns(var, thresholds[var], probs[var]))
        fc = _most_informative(var, head, pooled, sampled, qs, quantiles, exact)
        if fc is not None:
            if var in probs:
                fc = fc.with_probabilities(dict(zip(thresholds[var], probs[var].T, strict=True)))
            forecasts[var] = fc
    obs = {c: table[c].to_numpy() for c in table.columns if c.startswith("obs_")}
    frame = pd.DataFrame({**cols, **obs}, index=keys.index)
    return StationPrediction(pd.concat([keys, frame], axis=1), families, forecasts)


def _most_informative(
    var: str,
    head: str,
    pooled: Mapping[str, Mapping[str, np.ndarray]],
    sampled: Mapping[str, np.ndarray],
    qs: Mapping[str, np.ndarray],
    levels: Sequence[float],
    exact: bool,
) -> Predictive | None:
    if exact:
        return Predictive.from_params(var, head, pooled[var])
    if var in sampled:
        return Predictive.from_members(var, sampled[var])
    if var in qs:
        return Predictive.from_quantiles(var, levels, qs[var])
    return None
