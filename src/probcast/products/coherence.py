"""Coherent members: restore the dependence structure that per-row distributions lose.

Members drawn row by row are correct marginally but independent across lead times,
stations and variables, so a member is no usable scenario (a daily sum of its 6-hourly
precipitation, or its map, is nonsense). Reordering each row's members with the ranks of a
*template* keeps every marginal distribution exactly and gives the members the template's
dependence (an empirical copula):

* **Schaake shuffle** (Clark et al. 2004, J. Hydrometeor. 5): the template is ``M`` past
  observed trajectories: the observations of ``M`` earlier dates at the same (station, lead
  time, variable) slots (their PIT under the model's forecast of them where the template
  has it, else their errors against the raw forecast: the members are already conditional
  on the forecast), so member ``j`` follows the
  space-time-variable pattern of date ``j``. For deterministic input. The dates are those
  whose raw forecasts were most like this run's where the template has them (Schefzik
  2016), else the same season.
* **Ensemble copula coupling** (ECC-Q, Schefzik et al. 2013, Stat. Sci. 28): the template is
  the raw ensemble's members at the same slots, where the input is an ensemble.

Template values that are missing (a station or date without observation) and ties are
ranked at random (seeded), so those slots stay independent rather than biased.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from probcast.schema import FC_PREFIX, OBS_PREFIX

SLOT = ("station", "lead_time")


def reorder(
    members: np.ndarray,
    template: np.ndarray,
    rng: np.random.Generator,
    groups: np.ndarray | None = None,
) -> np.ndarray:
    """Reorder each row's members to follow the ranks of the template row.

    Args:
        members: ``(rows, M)`` members (any order).
        template: ``(rows, M)`` template values (NaN allowed: ranked at random).
        rng: Random generator for NaN and tie breaking.
        groups: ``(M,)`` group of each template column (its date). Ties between columns of
            one group (a date used twice) are broken in one fixed order in every row, so
            such members stay distinct scenarios; other ties at random, row by row.

    Returns:
        ``(rows, M)``: row ``i`` holds the sorted members of row ``i`` placed so that their
        ranks equal the ranks of ``template[i]``.
    """
    members = np.asarray(members)
    template = np.asarray(template, dtype=np.float64)
    if members.shape != template.shape:
        raise ValueError(
            f"members {members.shape} and template {template.shape} must have equal shapes"
        )
    m = members.shape[1]
    groups = np.arange(m) if groups is None else np.unique(groups, return_inverse=True)[1]
    nan = np.isnan(template)
    # Rank 1..m (ties share the lowest); missing values at a random rank.
    tied = rankdata(np.where(nan, np.inf, template), method="min", axis=1).astype(np.float64)
    key = np.where(nan, rng.uniform(0.5, m + 0.5, template.shape), tied)
    by_group = rng.uniform(size=(len(template), int(groups.max(initial=0)) + 1))[:, groups]
    within = np.broadcast_to(rng.permutation(m).astype(np.float64), template.shape)
    order = np.lexsort((within, by_group, key), axis=1)
    ranks = np.argsort(order, axis=1, kind="stable")
    return np.take_along_axis(np.sort(members, axis=1), ranks, axis=1)


def template_dates(
    template: pd.DataFrame,
    init: pd.Timestamp,
    m: int,
    rng: np.random.Generator,
    distance: pd.Series | None = None,
    coverage: pd.Series | None = None,
) -> pd.DatetimeIndex:
    """``m`` dates of the template (past init times) for the members of run ``init``.

    Only dates before ``init`` (no look-ahead when the template is the training archive;
    none when the template holds no earlier date: the run's members stay unshuffled). The
    ``m`` whose forecasts were most similar to this run's (``distance`` by date; the
    "similarity Schaake shuffle", Schefzik 2016, Q. J. R. Meteorol. Soc. 142), else the
    closest in day of year; dates whose template observes under half of the run's slots
    (``coverage`` by date) only after every other. With fewer than ``m`` dates every date
    is used once and the rest drawn again (those members then share a date:
    :func:`reorder` keeps them apart in one fixed order).
    """
    dates = pd.DatetimeIndex(template["init_time"].unique()).sort_values()
    if not len(dates):
        raise ValueError("the template holds no dates")
    pool = dates[dates < pd.Timestamp(init)]
    if not len(pool):
        return pool
    if distance is not None:
        dist = distance.reindex(pool).fillna(np.inf).to_numpy(dtype=np.float64)
    else:
        doy = np.abs(pool.day_of_year.to_numpy() - pd.Timestamp(init).day_of_year)
        dist = np.minimum(doy, 366 - doy).astype(np.float64)
    thin = np.zeros(len(pool), bool)
    if coverage is not None:
        thin = coverage.reindex(pool).fillna(0.0).to_numpy(dtype=np.float64) < 0.5
    order = np.lexsort((dist + rng.uniform(0, 1e-3, dist.shape), thin))
    if len(pool) >= m:
        return pool[rng.permutation(order[:m])]
    extra = rng.integers(0, len(pool), m - len(pool))
    return pool[rng.permutation(np.concatenate([np.arange(len(pool)), extra]))]


def _wide(template: pd.DataFrame, var: str, prefix: str = OBS_PREFIX) -> pd.DataFrame | None:
    """Column ``<prefix><var>`` as (station, lead time) x init time."""
    col = f"{prefix}{var}"
    if col not in template:
        return None
    return template.pivot_table(index=list(SLOT), columns="init_time", values=col, aggfunc="mean")


def forecast_distance(forecasts: dict[str, pd.DataFrame], rows: pd.DataFrame) -> pd.Series | None:
    """Distance of this run's raw forecasts to each template date's.

    Args:
        forecasts: Variable -> the template's ``fc_<var>`` as (station, lead) x init time.
        rows: This run's rows with ``fc_<var>``.

    Returns:
        Mean squared standardised difference by template date (``None`` without forecasts).
    """
    parts = []
    keys = pd.MultiIndex.from_frame(rows[list(SLOT)])
    for var, wide in forecasts.items():
        past = wide.reindex(keys).to_numpy(dtype=np.float64)
        now = rows[f"{FC_PREFIX}{var}"].to_numpy(dtype=np.float64)[:, None]
        scale = float(np.nanstd(past)) or 1.0
        with np.errstate(all="ignore"):
            dist = np.nanmean(((past - now) / scale) ** 2, axis=0)
        parts.append(pd.Series(dist, wide.columns))
    if not parts:
        return None
    return pd.concat(parts, axis=1).mean(axis=1)


def observed_share(observed: dict[str, pd.DataFrame], rows: pd.DataFrame) -> pd.Series | None:
    """Share of this run's (slot, variable) values each template date observes.

    Args:
        observed: Variable -> the template's ``obs_<var>`` as (station, lead) x init time.
        rows: This run's rows.

    Returns:
        The share by template date (``None`` without observations).
    """
    keys = pd.MultiIndex.from_frame(rows[list(SLOT)])
    parts = [wide.reindex(keys).notna().mean(axis=0) for wide in observed.values()]
    return pd.concat(parts, axis=1).fillna(0.0).mean(axis=1) if parts else None


PIT_PREFIX = "pit_"
"""Template columns ``pit_<var>``: the PIT of each past observation under the model's own
forecast of it (:func:`probcast.predict.copula.with_template_pit`), ranked in preference to
the errors against the raw forecast."""


def _anomalies(template: pd.DataFrame, var: str) -> pd.DataFrame:
    """The template's values to rank, as ``obs_<var>``: PIT, else error, else observation.

    The members are conditional on the forecast, so the dependence they lack is that of
    what the forecast leaves unexplained across slots, weaker than that of the observations
    themselves (which also carries the forecast's own, already in the members). The PIT of
    past observations under the model (``pit_<var>``) is exactly that (the empirical copula
    of the model's PIT); the error against the raw forecast approximates it where the model
    mostly shifts the forecast, less well where it also rescales it (precipitation).
    """
    obs, fc, pit = f"{OBS_PREFIX}{var}", f"{FC_PREFIX}{var}", f"{PIT_PREFIX}{var}"
    if pit in template:
        return template.assign(**{obs: template[pit]})
    if obs in template and fc in template:
        return template.assign(**{obs: template[obs] - template[fc]})
    return template


def _template_values(
    wide: pd.DataFrame | None, rows: pd.DataFrame, dates: pd.DatetimeIndex
) -> np.ndarray:
    if wide is None:
        return np.full((len(rows), len(dates)), np.nan)
    keys = pd.MultiIndex.from_frame(rows[list(SLOT)])
    return wide.reindex(index=keys, columns=dates).to_numpy(dtype=np.float64)


def schaake_shuffle(
    rows: pd.DataFrame,
    members: Mapping[str, np.ndarray],
    template: pd.DataFrame,
    *,
    seed: int = 0,
    runs: Sequence[ShuffleRun] | None = None,
) -> dict[str, np.ndarray]:
    """Schaake-shuffle the members of every run in ``rows`` with past observations.

    Args:
        rows: The prediction rows (``station``, ``init_time``, ``lead_time``).
        members: Variable -> ``(rows, M)`` members, row order of ``rows``.
        template: A station table with ``obs_<var>`` of past dates (the training table),
            and ``pit_<var>`` where known (see :func:`_anomalies`).
        seed: Seed of the date choice and of the random ranks.
        runs: The runs' dates as :func:`shuffle_runs` chose them for these rows, template
            and seed (``None``: chosen here).

    Returns:
        Variable -> reordered members (same marginals per row).
    """
    if not members:
        return {}
    m = next(iter(members.values())).shape[1]
    if runs is None:
        runs = shuffle_runs(rows, template, list(members), m, seed)
    if any(len(run.dates) not in (0, m) for run in runs):
        raise ValueError(f"the shuffle's runs were chosen for another member count than {m}")
    out = {v: np.array(a, copy=True) for v, a in members.items()}
    tmpl, rows = _slots(template), _slots(rows)
    wides = {v: _wide(_anomalies(tmpl, v), v) for v in members}
    for run in runs:
        if not len(run.dates):
            continue  # no earlier date: left as drawn (see :func:`template_dates`)
        rng, sub = run.rng(), rows.iloc[run.index]
        groups = np.unique(run.dates.asi8, return_inverse=True)[1]
        for var, values in members.items():
            t = _template_values(wides[var], sub, run.dates)
            out[var][run.index] = reorder(values[run.index], t, rng, groups)
    return out


@dataclass(frozen=True)
class ShuffleRun:
    """One run of the shuffle: its rows, its template dates and its generator.

    Attributes:
        index: Positions of the run's rows.
        dates: The ``M`` template dates whose ranks its members take.
        generator: The run's generator as the date choice left it (the random ranks draw
            on a copy, so a run replays alike).
    """

    index: np.ndarray
    dates: pd.DatetimeIndex
    generator: np.random.Generator

    def rng(self) -> np.random.Generator:
        """A copy of :attr:`generator`."""
        return copy.deepcopy(self.generator)


def shuffle_runs(
    rows: pd.DataFrame, template: pd.DataFrame, variables: Sequence[str], m: int, seed: int = 0
) -> list[ShuffleRun]:
    """Per run (init time) of ``rows``, the ``m`` template dates :func:`schaake_shuffle` uses.

    The choice depends on the template's forecasts only, so a caller can compute the
    template's ``pit_<var>`` on these dates alone and pass the runs on to the shuffle.
    """
    tmpl, rows = _slots(template), _slots(rows)
    fcs = {
        v: w
        for v in variables
        if f"{FC_PREFIX}{v}" in rows and (w := _wide(tmpl, v, FC_PREFIX)) is not None
    }
    obs = {v: w for v in variables if (w := _wide(tmpl, v)) is not None}
    runs = []
    for key, index in rows.groupby(rows["init_time"]).indices.items():
        init = pd.Timestamp(str(key))
        rng = np.random.default_rng([seed, int(init.value // 10**9)])
        run = rows.iloc[index]
        dates = template_dates(
            tmpl, init, m, rng, forecast_distance(fcs, run), observed_share(obs, run)
        )
        runs.append(ShuffleRun(np.asarray(index), dates, rng))
    return runs


def _slots(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with its keys in one form: station text, UTC init times, float lead times."""
    return table.assign(
        station=table["station"].astype(str),
        init_time=pd.to_datetime(table["init_time"], utc=True),
        lead_time=table["lead_time"].astype("float64"),
    )


def ecc(members: np.ndarray, raw_ensemble: np.ndarray, seed: int = 0) -> np.ndarray:
    """Ensemble copula coupling: members ordered like the raw ensemble (same member count)."""
    return reorder(members, raw_ensemble, np.random.default_rng(seed))


CONSTRAINTS: tuple[tuple[str, str], ...] = (("td2m", "t2m"), ("tmin", "tmax"))
"""Pairs ``(low, high)`` whose members must satisfy ``low <= high`` member-wise."""


@dataclass(frozen=True)
class Constrained:
    """What :func:`enforce_constraints` changed for one pair.

    Attributes:
        repaired: Rows whose ``low`` members took the ranks of ``high``'s (marginals kept).
        clipped: Values set to ``high`` where the two distributions themselves cross.
    """

    repaired: int
    clipped: int


def enforce_constraints(
    members: dict[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], dict[str, Constrained]]:
    """Physical constraints across variables (:data:`CONSTRAINTS`), member-wise.

    In a row where some member of ``low`` exceeds its ``high`` (dew point above
    temperature, after a shuffle that ranked the two by their own templates), ``low``'s
    members are re-paired in ``high``'s rank order: both marginals stay exactly as they are,
    and no member crosses unless the distributions themselves do (``low``'s k-th smallest
    member above ``high``'s): only those values are clipped to ``high``, and counted. Rows
    where either variable is missing are left as they are. (Bounds of one variable, such
    as non-negative precipitation and cloud cover in [0, 1], are the predictive families'
    own: censored at the bound.)

    Args:
        members: Variable -> ``(rows, M)`` members; changed in place.

    Returns:
        The members, and per ``low`` variable changed what was done.
    """
    done: dict[str, Constrained] = {}
    for low, high in CONSTRAINTS:
        if low not in members or high not in members:
            continue
        lo, hi = np.asarray(members[low]), np.asarray(members[high])
        with np.errstate(invalid="ignore"):
            rows = np.flatnonzero((lo > hi).any(axis=1))
        if not len(rows):
            continue
        ranks = np.argsort(np.argsort(hi[rows], axis=1, kind="stable"), axis=1, kind="stable")
        lo = lo.copy()
        lo[rows] = np.take_along_axis(np.sort(lo[rows], axis=1), ranks, axis=1)
        with np.errstate(invalid="ignore"):
            cross = lo > hi
        members[low] = np.where(cross, hi, lo)
        done[low] = Constrained(repaired=len(rows), clipped=int(cross.sum()))
    return members, done
