"""Station predictions: a trained model and a station table -> a prediction table.

Output columns (the contract of :mod:`probcast.products.table`): the key columns
(``station``, ``init_time``, ``lead_time``, ``valid_time``) and, per target ``<var>``:
the distribution parameters ``<var>_<param>`` (e.g. ``tp_loc``, ``tp_scale``), members
``<var>_m000 ...``, quantiles ``<var>_q0.05 ...``, exceedance probabilities
``<var>_p_gt_<thr> ...`` and the flag ``<var>_source``; then ``applicability`` (when the
model has a training domain and the policy is not ``warn``) and any ``obs_*`` columns of the
input.

Every input row gets an output row: rows the network cannot predict (a missing or invalid
input) get the fallbacks of :mod:`probcast.model.fallback` (``emos``, ``raw_dressed``, or NaN
forecasts for ``missing``), flagged in ``<var>_source``; rows outside the training domain
are flagged in ``applicability`` (:mod:`probcast.model.applicability`). Members and quantiles
are limited to the variable's physical bounds
(:func:`probcast.products.table.clip_physical`). One log line counts the sources, one the
out-of-domain rows, one the clipped values.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from probcast import defaults, station_ids
from probcast.dists import Predictive
from probcast.model import applicability as domain_check
from probcast.model.fallback import plan_rows, summary
from probcast.model.predictor import TrainedModel
from probcast.predict.copula import with_template_pit
from probcast.products import table as product_table
from probcast.products.coherence import (
    PIT_PREFIX,
    ShuffleRun,
    enforce_constraints,
    schaake_shuffle,
    shuffle_runs,
)

log = logging.getLogger(__name__)


def _copula_template(
    model: TrainedModel,
    template: pd.DataFrame,
    runs: list[ShuffleRun],
    targets: list[str],
    seed: int,
) -> pd.DataFrame:
    """The template with the model's PIT of its observations on the dates the shuffle uses.

    The shuffle's runs took their dates from the template's forecasts alone
    (:func:`~probcast.products.coherence.shuffle_runs`), as many as they have members, so
    the model predicts those dates' rows only; other rows' ``pit_<var>`` stay NaN.
    """
    dates = pd.DatetimeIndex([], tz="UTC").append([run.dates for run in runs]).unique()
    used = pd.to_datetime(template["init_time"], utc=True).isin(dates).to_numpy()

    def sample(rows: pd.DataFrame, n: int) -> dict[str, np.ndarray]:
        pred = predict_stations(
            model,
            rows,
            members=n,
            seed=seed + 1,
            params=False,
            policy=domain_check.DomainPolicy(mode="warn"),
            constraints=False,
        )
        table = pred.table
        return {
            v: table[product_table.parse_columns(table.columns, v).members].to_numpy()
            for v in targets
        }

    log.info(
        "coherent members: PIT of the template's %d past rows on the %d dates the shuffle "
        "uses (of %d rows)",
        int(used.sum()),
        len(dates),
        len(template),
    )
    pits = with_template_pit(template[used], targets, sample, seed=seed)
    cols = [c for v in targets if (c := f"{PIT_PREFIX}{v}") in pits.columns]
    return template.assign(**{c: pits[c].reindex(template.index) for c in cols})


@dataclass
class StationPrediction:
    """What a station prediction produced.

    Attributes:
        table: The prediction table (one row per input row, in input order).
        families: Variable -> family of its parameter columns (only where the parameters
            are the predictive distribution).
        forecasts: Variable -> the most informative :class:`~probcast.dists.Predictive`
            among what was computed.
        sources: Variable -> source of each row's forecast (``<var>_source``).
    """

    table: pd.DataFrame
    families: dict[str, str]
    forecasts: dict[str, Predictive]
    sources: dict[str, np.ndarray] | None = None


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
    policy: domain_check.DomainPolicy | None = None,
    constraints: bool = True,
) -> StationPrediction:
    """Predict every target of ``model`` for each row of ``table``.

    Args:
        model: Loaded model (:func:`probcast.model.artefact.load`), with its options.
        table: Canonical station table with the training predictors (obs columns are
            copied to the output when present).
        members: Number of coherent members per row (0: none, except that a target whose
            parameters are not its predictive distribution, a generative head, a mixture of
            networks or a recalibrated target
            (:meth:`~probcast.model.predictor.TrainedModel.pooled_params_are_predictive`),
            gets :data:`probcast.defaults.MEMBERS` when neither members nor quantiles are
            asked for: its only scoreable form).
        quantiles: Quantile levels in (0, 1).
        thresholds: Per target, thresholds of the exceedance probabilities.
        seed: Seed of the member draws.
        params: Include the distribution parameters of parametric heads.
        template: Past observations for the Schaake shuffle of the members
            (:mod:`probcast.products.coherence`), ranked by their PIT under this model
            (:mod:`probcast.predict.copula`); ``None`` keeps them independent across rows.
        policy: Treatment of rows outside the training domain (default: flag them).
        constraints: Members obey the constraints across variables (td2m <= t2m, tmin <=
            tmax: :func:`~probcast.products.coherence.enforce_constraints`); off for the
            copula template's PIT draws, which must follow the model's marginals.

    Returns:
        The table, the families of its parameters and one ``Predictive`` per target.

    Raises:
        ValueError: An input column is absent, no row has the inputs the network needs
            (:class:`~probcast.model.fallback.UnusableTableError`), or rows lie outside the
            training domain as the policy refuses
            (:class:`~probcast.model.applicability.ExtrapolationError`).
    """
    spec = model.spec
    # recent errors from the observations of the table and of the template, if any
    table = spec.derive(table, history=template)
    plan = plan_rows(table, spec, model.heads, model.blend)
    for col, k in plan.check.clipped.items():
        log.info("%s: clipped %d value(s) outside the physical range by float noise", col, k)
    table, sources = plan.table, plan.sources
    flags = _applicability(model, table, policy or domain_check.DomainPolicy())
    n = len(table)
    keys = table[[c for c in product_table.KEYS if c in table.columns]].copy()
    thresholds = dict(thresholds or {})
    # validated and transformed once for every product below, on the rows the network can use
    rows = model.inputs(plan.network_rows)
    fill = plan.filler()
    pooled = model.params(rows) if model.parametric else {}
    pooled = {v: fill.params(v, p) for v, p in pooled.items()}
    # A target without parameters that are its forecast (a generative head, a mixture of
    # networks, a recalibrated target): with nothing else asked for, it gets members.
    unfit = [v for v in model.heads if not model.pooled_params_are_predictive(v)]
    bare = bool(unfit) and not (members or quantiles)
    n_members = members or (defaults.MEMBERS if bare else 0)
    sampled = model.sample(rows, n_members, seed) if n_members else {}
    if not members:
        sampled = {v: m for v, m in sampled.items() if v in unfit}
    sampled = {v: fill(v, m, "members", n_members, seed) for v, m in sampled.items()}
    if sampled and template is not None:
        # recent errors from the whole template, before its rows on the shuffle's dates
        template = spec.derive(template.reset_index(drop=True))
        runs = shuffle_runs(table, template, list(sampled), n_members, seed=seed)
        template = _copula_template(model, template, runs, list(sampled), seed)
        sampled = schaake_shuffle(table, sampled, template, seed=seed, runs=runs)
    if constraints:
        sampled = _constrained(sampled)
    qs = model.quantiles(rows, quantiles) if quantiles else {}
    qs = {v: fill(v, q, "quantiles", quantiles) for v, q in qs.items()}
    probs = model.exceedance(rows, thresholds) if thresholds else {}
    probs = {v: fill(v, p, "exceedance", thresholds[v]) for v, p in probs.items()}
    sampled, qs = _bounded(sampled, qs)
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
        cols[product_table.source_column(var)] = sources[var]
        fc = _most_informative(var, head, pooled, sampled, qs, quantiles, exact)
        if fc is not None:
            if var in probs:
                fc = fc.with_probabilities(dict(zip(thresholds[var], probs[var].T, strict=True)))
            forecasts[var] = fc
    if flags is not None:
        cols[product_table.APPLICABILITY] = flags
    _log_sources(sources, n)
    obs = {c: table[c].to_numpy() for c in table.columns if c.startswith("obs_")}
    frame = pd.DataFrame({**cols, **obs}, index=keys.index)
    return StationPrediction(pd.concat([keys, frame], axis=1), families, forecasts, sources)


def _applicability(
    model: TrainedModel, table: pd.DataFrame, policy: domain_check.DomainPolicy
) -> np.ndarray | None:
    """Per-row domain labels (``None`` without a training domain, or with ``warn``).

    Padding rows (:data:`PAD_MARK` in the station id) are labelled but left out of the
    warning line, which counts the rows asked for.
    """
    if model.domain is None:
        return None
    result = domain_check.check_rows(model.domain, table, policy, stations=model.spec.stations)
    pad = station_ids.pad_rows(table["station"])
    asked = result
    if pad.any():
        real = table[~pad]
        asked = domain_check.check_rows(model.domain, real, policy, stations=model.spec.stations)
    line = domain_check.report(asked, int((~pad).sum()))
    if line:
        log.warning("%s", line)
    return None if policy.mode == "warn" else result.labels


def _constrained(sampled: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Members obeying the constraints across variables (one log line when any changed)."""
    sampled, done = enforce_constraints(sampled)
    for var, what in done.items():
        log.info(
            "%s: members re-paired in rank order with their upper bound in %d row(s) "
            "(marginals kept); %d value(s) clipped where the distributions cross",
            var,
            what.repaired,
            what.clipped,
        )
    return sampled


def _bounded(
    sampled: dict[str, np.ndarray], qs: dict[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Members and quantiles limited to each variable's physical bounds (one log line)."""
    counts: dict[str, int] = {}
    out = []
    for form in (sampled, qs):
        bounded = {}
        for var, values in form.items():
            bounded[var], k = product_table.clip_physical(var, values)
            counts[var] = counts.get(var, 0) + k
        out.append(bounded)
    if any(counts.values()):
        text = ", ".join(f"{v} {k}" for v, k in counts.items() if k)
        log.info("clipped member/quantile values to the physical bounds: %s", text)
    return out[0], out[1]


def _log_sources(sources: Mapping[str, np.ndarray], n: int) -> None:
    fallback = any((labels != "model").any() for labels in sources.values())
    level = logging.WARNING if fallback else logging.INFO
    log.log(level, "forecast sources of %d rows: %s", n, summary(sources))


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
