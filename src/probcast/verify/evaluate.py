"""Verify several forecasts of the same truth: the one function behind ``probcast verify``.

:func:`verify` joins each forecast table to the truth table on the key columns, turns each
variable into a :class:`~probcast.dists.Predictive`, scores every case
(:mod:`~probcast.verify.pointwise`), averages over the groupings
(:mod:`~probcast.verify.aggregate`) and adds the CRPSS against the reference with
block-bootstrap intervals (:mod:`~probcast.verify.skill`).

Nothing is scored silently wrong: a forecast that matches no case of the truth, a
verification with no variable or no valid case, probabilities outside [0, 1], crossing
quantiles and infinite forecast values raise ``ValueError``. A case whose observation or
forecast (any member, quantile or parameter) is missing (NaN) is dropped and counted in
``meta["dropped"]`` and the ``n_dropped`` scores.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from typing import Any

import numpy as np
import pandas as pd

from probcast import defaults, progress
from probcast.dists import Predictive
from probcast.products.table import (
    detect_variables,
    normalise_keys,
    to_predictive,
)
from probcast.schema import KEY_COLUMNS, OBS_PREFIX
from probcast.verify import aggregate, matching, skill
from probcast.verify.checks import check_forecast
from probcast.verify.evaluate_args import check_arguments
from probcast.verify.multivariate import tidy_multivariate
from probcast.verify.pointwise import COVERAGES, case_scores

MAX_VECTORS = 5000
"""Vectors per dimension scored by the multivariate scores (evenly spaced beyond)."""


@dataclass
class Verification:
    """Everything ``probcast verify`` computes.

    Attributes:
        scores: Tidy table (see :mod:`probcast.verify.aggregate`).
        diagnostics: ``{method: {variable: {pit_hist, rank_hist, reliability}}}``.
        stations: ``station``, ``latitude``, ``longitude`` (empty without coordinates).
        meta: Settings and bookkeeping (reference, groupings, thresholds, seed, forms).
        cases: ``{(method, variable): per-case table}`` (not written to disk).
    """

    scores: pd.DataFrame
    diagnostics: dict[str, dict[str, dict[str, Any]]]
    stations: pd.DataFrame
    meta: dict[str, Any]
    cases: dict[tuple[str, str], pd.DataFrame] = field(default_factory=dict, repr=False)

    def value(
        self, method: str, variable: str, metric: str, by: str = "all", key: str = "all"
    ) -> float:
        """One value of the tidy table (NaN when absent)."""
        s = self.scores
        hit = s[
            (s["method"] == method)
            & (s["variable"] == variable)
            & (s["by"] == by)
            & (s["key"] == key)
            & (s["metric"] == metric)
        ]
        return float(hit["value"].iloc[0]) if len(hit) else float("nan")


def _rng(seed: int, method: str, variable: str) -> np.random.Generator:
    """A generator per (method, variable), independent of the order of the methods."""
    return np.random.default_rng([seed, zlib.crc32(f"{method}/{variable}".encode())])


_TRUTH_VT = "__truth_valid_time"


def _merge(
    truth: pd.DataFrame,
    fc: pd.DataFrame,
    name: str,
    group_cols: Sequence[str],
    truth_name: str = "truth",
    label: str | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Inner join on the keys; counts of unmatched rows.

    From the truth only observations, coordinates and grouping columns are taken, so a
    forecast form is never picked up from the truth's own ``fc_`` columns. Where both
    tables have ``valid_time`` it must agree on every matched case, and within the forecast
    be ``init_time + lead_time`` (:mod:`probcast.verify.matching`).
    """
    what = label or f"forecast {name!r}"
    matching.check_valid_times(fc, what)
    for what, df in (("truth", truth), (name, fc)):
        dup = df.duplicated(list(KEY_COLUMNS))
        if dup.any():
            first = df.loc[dup, list(KEY_COLUMNS)].iloc[0].to_dict()
            raise ValueError(f"{what}: {int(dup.sum())} duplicated cases, first {first}")
    fc_cols = [c for c in fc.columns if c not in KEY_COLUMNS and not c.startswith(OBS_PREFIX)]
    keep = {*KEY_COLUMNS, "latitude", "longitude", "altitude", *group_cols}
    tr_cols = [
        c for c in truth.columns if c not in fc_cols and (c in keep or c.startswith(OBS_PREFIX))
    ]
    both_vt = "valid_time" in truth.columns and "valid_time" in fc_cols
    if both_vt:
        tr_cols.append(_TRUTH_VT)
        truth = truth.assign(**{_TRUTH_VT: truth["valid_time"]})
    merged = truth[tr_cols].merge(fc[[*KEY_COLUMNS, *fc_cols]], on=list(KEY_COLUMNS))
    if not len(merged):
        raise ValueError(matching.no_overlap_message(fc, truth, name, truth_name, KEY_COLUMNS))
    if both_vt:
        matching.compare_valid_times(merged, _TRUTH_VT, what, truth_name)
        merged = merged.drop(columns=_TRUTH_VT)
    counts = {
        "cases": len(merged),
        "forecast_rows_without_truth": len(fc) - len(merged),
        "truth_rows_without_forecast": len(truth) - len(merged),
    }
    return merged, counts


def _thresholds(
    variable: str, given: Mapping[str, Sequence[float]] | None, forecasts: list[Predictive]
) -> list[float]:
    base = given.get(variable) if given and variable in given else None
    matching.check_thresholds(variable, base or ())
    ts = set(defaults.EVENT_THRESHOLDS.get(variable, ()) if base is None else base)
    for fc in forecasts:
        ts.update(fc.probabilities)
    return sorted(float(t) for t in ts)


def _describe(fc: Predictive) -> dict[str, Any]:
    levels = None if fc.levels is None else [float(a) for a in fc.levels]
    return {"kind": fc.kind, "family": fc.family, "n_members": fc.n_members, "levels": levels}


def verify(
    truth: pd.DataFrame | str | PathLike[str],
    forecasts: Mapping[str, pd.DataFrame | str | PathLike[str]],
    *,
    reference: str | None = None,
    families: Mapping[str, Mapping[str, str]] | Mapping[str, str] | None = None,
    by: Sequence[str] | str = ("lead_time",),
    thresholds: Mapping[str, Sequence[float] | float] | None = None,
    coverages: Sequence[float] = COVERAGES,
    variables: Sequence[str] | str | None = None,
    seed: int = 0,
    n_boot: int = skill.N_BOOT,
    skipna: bool = True,
    truth_name: str = "truth",
    multivariate: bool = True,
    sources: Mapping[str, str] | None = None,
    units: Mapping[str, Mapping[str, str]] | Mapping[str, str] | None = None,
) -> Verification:
    """Score forecasts against a truth table.

    Scored in canonical units (:mod:`probcast.schema`): thresholds are taken to be
    canonical; the truth and the forecasts are converted first from the units their
    metadata records (a file's, or a DataFrame's ``attrs["probcast_units"]``), a forecast
    also by ``units``; a truth's observations outside their physical range are refused
    (:mod:`probcast.verify.truth`). The arguments are checked first
    (:mod:`probcast.verify.evaluate_args`).

    Args:
        truth: Canonical station table with ``obs_<var>`` columns (optionally latitude,
            longitude and any grouping columns), or the path of one (CSV, Parquet,
            station NetCDF).
        forecasts: ``{name: prediction table}`` (forms in :mod:`probcast.products.table`);
            a table may be the path of a prediction file (read as ``probcast verify`` reads
            it, with its families).
        reference: Name of the forecast the CRPSS is computed against (None: no CRPSS).
        families: ``{name: {variable: family}}`` for params forms; with one forecast also
            the flat ``{variable: family}`` that :func:`probcast.read_predictions` returns.
        by: Groupings besides ``all`` (case columns, combined with ``+``); one string
            (``"station"``, commas between several) or a sequence of them.
        thresholds: ``{variable: thresholds}`` (one number or a sequence, canonical units);
            default :data:`probcast.defaults.EVENT_THRESHOLDS` plus every ``p_gt`` column of
            the tables.
        coverages: Nominal central-interval coverages.
        variables: Variables to verify (a sequence, or one string); default every
            ``obs_<var>`` of the truth that some forecast has.
        seed: Seed of the randomised PIT and of the bootstrap.
        n_boot: Bootstrap replicates for the CRPSS intervals.
        skipna: Drop (True) or propagate (False) cases with NaN observation or forecast.
        truth_name: How error messages name the truth (e.g. its path).
        sources: ``{name: file}``: how error messages name each forecast's file.
        multivariate: Also score forecasts with members as vectors (energy and variogram
            scores over lead times and stations, CRPS of lead-time sums, PIT correlation:
            :mod:`probcast.verify.multivariate`; at most :data:`MAX_VECTORS` per dimension).
        units: ``{name: {variable: units}}`` of forecasts whose values are not canonical
            (``{"model": {"tp": "cm"}}``: a ``PredictResult.table`` of a request with
            ``units``); with one forecast also a flat ``{variable: units}``. Parameters: in
            those units where their family has a form in them (as ``probcast predict
            --units`` writes them). A file that records other units is refused.

    Returns:
        The :class:`Verification` (``meta["units"]``: the ``units`` converted from).

    Raises:
        TypeError: An argument of the wrong type (the message names it and what it takes).
        ValueError: If nothing can be verified (no case matched, no variable, no valid
            case), a forecast is invalid (see the module docstring), or ``families`` or
            ``units`` name no forecast, unknown units or a variable the forecast lacks.
    """
    a = check_arguments(
        truth, forecasts, reference=reference, families=families, by=by, thresholds=thresholds,
        variables=variables, units=units, sources=sources, truth_name=truth_name,
    )  # fmt: skip
    truth, forecasts, sources, truth_name = a.truth, a.forecasts, a.sources, a.truth_name
    by, thresholds, variables = a.by, a.thresholds, a.variables
    if not forecasts:
        raise ValueError("no forecasts to verify")
    if reference is not None and reference not in forecasts:
        raise ValueError(f"reference {reference!r} is not one of the forecasts {list(forecasts)}")
    truth = normalise_keys(truth, "truth")
    matching.check_valid_times(truth, str(truth_name))
    group_cols = sorted({c for b in by if b != "all" for c in b.split("+")})
    merged: dict[str, pd.DataFrame] = {}
    unmatched: dict[str, dict] = {}
    for name, df in forecasts.items():
        label = f"forecast {name!r}" + (
            f" ({sources[name]})" if sources and name in sources else ""
        )
        merged[name], unmatched[name] = _merge(
            truth, normalise_keys(df, name), name, group_cols, truth_name, label
        )
        matching.check_groupings(by, list(merged[name].columns), f"{truth_name} or {label}")
    obs_vars = [c[len(OBS_PREFIX) :] for c in truth.columns if c.startswith(OBS_PREFIX)]
    if variables is None:
        have = {v for df in forecasts.values() for v in detect_variables(df.columns)}
        variables = [v for v in obs_vars if v in have]
    missing = [v for v in variables if v not in obs_vars]
    if missing:
        raise ValueError(f"truth has no observations {[OBS_PREFIX + v for v in missing]}")
    idle = sorted(set(thresholds or {}) - set(variables))
    if idle:
        raise ValueError(f"thresholds of {idle}, which no forecast and observation share")
    if not variables:
        raise ValueError(
            f"nothing to verify: no forecast has a column of an observed variable of the "
            f"{truth_name} ({', '.join(OBS_PREFIX + v for v in obs_vars) or 'no obs_ columns'})"
        )
    fams = a.families
    extra = [c for c in group_cols if c not in KEY_COLUMNS]
    tables: list[pd.DataFrame] = []
    diags: dict[str, dict[str, dict[str, Any]]] = {}
    forms: dict[str, dict[str, dict[str, Any]]] = {}
    cases: dict[tuple[str, str], pd.DataFrame] = {}
    thr_used: dict[str, list[float]] = {}
    dropped: dict[str, dict[str, dict[str, int]]] = {}
    for var in progress.track(variables, "verify", label=lambda v: f"verify {v}"):
        fcs = {
            name: to_predictive(df, var, family=fams.get(name, {}).get(var), source=name)
            for name, df in merged.items()
            if var in detect_variables(forecasts[name].columns)
        }
        thr_used[var] = ts = _thresholds(var, thresholds, list(fcs.values()))
        for name, fc in fcs.items():
            df = merged[name]
            check_forecast(fc, df, name)
            obs = df[f"{OBS_PREFIX}{var}"].to_numpy("float64")
            cols = case_scores(
                fc, obs, thresholds=ts, coverages=coverages, rng=_rng(seed, name, var)
            )
            dropped.setdefault(name, {})[var] = _dropped(
                name, var, obs, cols["valid"], cols["score_failed"]
            )
            frame = pd.concat(
                [df[[*KEY_COLUMNS, *extra]].reset_index(drop=True), pd.DataFrame(cols)], axis=1
            )
            cases[(name, var)] = frame
            forms.setdefault(name, {})[var] = _describe(fc)
            tables.append(
                aggregate.tidy_scores(
                    frame,
                    method=name,
                    variable=var,
                    by=by,
                    n_members=fc.n_members,
                    thresholds=ts,
                    coverages=coverages,
                    skipna=skipna,
                )
            )
            diags.setdefault(name, {})[var] = aggregate.diagnostics(
                frame, n_members=fc.n_members, thresholds=ts
            )
    multi = tidy_multivariate(merged, variables, max_vectors=MAX_VECTORS) if multivariate else None
    if multi is not None and len(multi):  # an empty frame would make the values objects
        tables.append(multi)
    if reference is not None:
        tables.append(
            _crpss_rows(cases, reference, by, extra, seed=seed, n_boot=n_boot, skipna=skipna)
        )
    meta = {
        "reference": reference,
        "by": ["all", *[b for b in by if b != "all"]],
        "variables": list(variables),
        "thresholds": thr_used,
        "coverages": list(coverages),
        "seed": seed,
        "n_boot": n_boot,
        "confidence": skill.CONFIDENCE,
        "skipna": skipna,
        "forms": forms,
        "matching": unmatched,
        "dropped": dropped,
    }
    if a.units:
        meta["units"] = a.units
    table = (
        pd.concat(tables, ignore_index=True)
        if tables
        else pd.DataFrame(columns=list(aggregate.TIDY_COLUMNS))
    )
    return Verification(table, diags, _stations(truth), meta, cases)


def _dropped(
    name: str, var: str, obs: np.ndarray, valid: np.ndarray, failed: np.ndarray
) -> dict[str, int]:
    """Counts of the cases not scored; an error when none is left."""
    no_obs = ~np.isfinite(obs)
    counts = {
        "cases": int(obs.size),
        "missing_observation": int(no_obs.sum()),
        "missing_forecast": int((~valid & ~no_obs & ~failed).sum()),
    }
    if failed.any():  # the key only when it happens
        counts["score_not_finite"] = int(failed.sum())
    if not valid.any():
        raise ValueError(
            f"nothing verified: forecast {name!r}, {var}: none of its {obs.size} matched cases "
            f"has both an observation and a forecast ({counts['missing_observation']} without "
            f"observation)"
        )
    return counts


def _crpss_rows(
    cases: dict[tuple[str, str], pd.DataFrame],
    reference: str,
    by: Sequence[str],
    extra: Sequence[str],
    *,
    seed: int,
    n_boot: int,
    skipna: bool = True,
) -> pd.DataFrame:
    """CRPSS rows of every method against ``reference``, on the cases both scored.

    ``crpss_n`` is the number of those cases; with ``skipna=False`` a group with any case
    either forecast could not score gets NaN, like every other score.
    """
    rows = []
    pairs = progress.track(
        list(cases.items()), "CRPSS bootstrap", label=lambda c: "CRPSS {} {}".format(*c[0])
    )
    for (name, var), frame in pairs:
        ref = cases.get((reference, var))
        if name == reference or ref is None:
            continue
        paired = skill.paired_cases(frame, ref, KEY_COLUMNS)
        if extra:
            paired = paired.merge(frame[[*KEY_COLUMNS, *extra]], on=list(KEY_COLUMNS))
        groupings = ("all", *[b for b in by if b != "all"])
        for grouping in groupings:
            for key, idx in aggregate.group_keys(paired, grouping):
                part = paired.iloc[idx]
                sk = skill.paired_skill(part, seed=seed, n_boot=n_boot)
                vals = (sk.value, sk.lo, sk.hi)
                if not skipna and part[["score", "reference"]].isna().to_numpy().any():
                    vals = (np.nan, np.nan, np.nan)
                for metric, v in zip(("crpss", "crpss_lo", "crpss_hi"), vals, strict=True):
                    rows.append((name, var, grouping, key, metric, v))
                rows.append((name, var, grouping, key, "crpss_n", float(sk.n)))
    return pd.DataFrame(rows, columns=list(aggregate.TIDY_COLUMNS))


def _stations(truth: pd.DataFrame) -> pd.DataFrame:
    if not {"latitude", "longitude"} <= set(truth.columns):
        return pd.DataFrame(columns=["station", "latitude", "longitude"])
    st = truth.groupby("station", sort=True)[["latitude", "longitude"]].first().reset_index()
    return st.dropna()
