"""Average per-case scores over groups into a tidy table; diagnostics; output files.

Tidy schema (``scores.csv`` and the ``scores`` list of ``scores.json``), one row per
(method, variable, grouping, group, metric):

==========  ==============================================================================
column      meaning
==========  ==============================================================================
method      forecast name given on the command line (``--forecast NAME=FILE``)
variable    canonical variable name
by          grouping: ``all``, a case column (``lead_time``, ``station``), or columns
            joined by ``+`` (``lead_time+station``)
key         the group's value as text (``all``; ``6`` for lead time 6 h; ``6|OSLO``)
metric      one of :data:`METRICS` (``<t>``: threshold, ``<c>``: coverage in %)
value       float (NaN, JSON null, where undefined)
==========  ==============================================================================
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probcast import io
from probcast.verify import calibration as cal
from probcast.verify import scores
from probcast.verify.pointwise import coverage_label, threshold_label
from probcast.verify.skill import init_date_blocks

SCHEMA = "probcast.verify.scores/1"
TIDY_COLUMNS = ("method", "variable", "by", "key", "metric", "value")
METRICS = (
    "n",  # cases used
    "n_dropped",  # cases with a NaN observation or forecast
    "crps",  # mean CRPS (members: standard estimator)
    "crps_fair",  # mean fair CRPS (members only)
    "mae",  # mean absolute error of the median
    "rmse",  # root mean squared error of the mean
    "bias",  # mean error of the mean (forecast - obs)
    "spread",  # sqrt(mean predictive variance)
    "spread_skill",  # spread / rmse, with the (M+1)/M ensemble correction
    "spread_skill_lo",  # its 95 % interval (init-date block bootstrap)
    "spread_skill_hi",
    "coverage_<c>",  # fraction of obs inside the central c % interval
    "pit_max_dev",  # max |bin frequency - 1/10| of the 10-bin PIT histogram
    "pit_noise",  # the max-bin deviation sampling alone gives (init-date block bootstrap)
    "pit_ri",  # reliability index sum |f_k - 1/10|
    "pit_chi2",  # Pearson chi-square of the PIT histogram against uniform
    "pit_chi2_pvalue",
    "brier_<t>",  # Brier score of Y > t
    "brier_rel_<t>",  # its Murphy reliability (10 bins)
    "brier_res_<t>",  # resolution
    "brier_unc_<t>",  # uncertainty
    "brier_n_<t>",  # cases in the Brier score of Y > t (probability and outcome finite)
    "crpss",  # 1 - CRPS / CRPS(reference) on common cases (see skill.py)
    "crpss_lo",  # bootstrap percentile interval
    "crpss_hi",
    "crpss_n",  # cases the CRPSS is computed on: those both it and the reference scored
)


def summarise(
    cases: pd.DataFrame,
    *,
    n_members: int | None,
    thresholds: Sequence[float] = (),
    coverages: Sequence[float] = (),
    skipna: bool = True,
    blocks: np.ndarray | None = None,
) -> dict[str, float]:
    """All metrics of one group of cases.

    Args:
        cases: Per-case columns from :func:`probcast.verify.pointwise.case_scores`.
        n_members: Ensemble size for the spread-skill correction (None: no correction).
        thresholds: Thresholds of the ``p_<t>``/``o_<t>`` columns.
        coverages: Nominal coverages of the ``cov_<c>`` columns.
        skipna: True drops invalid cases (counted in ``n_dropped``); False makes every
            score NaN when any case of the group is invalid.
        blocks: Block label per case for ``pit_noise`` and the spread-skill interval
            (default: the init dates of an ``init_time`` column; none: NaN).

    Returns:
        Metric name -> value.
    """
    valid = cases["valid"].to_numpy(bool)
    n_bad = int((~valid).sum())
    out: dict[str, float] = {"n": float(valid.sum()), "n_dropped": float(n_bad)}
    c = cases if n_bad == 0 else cases[valid]
    if blocks is None and "init_time" in cases.columns:
        blocks = init_date_blocks(cases["init_time"])
    metrics = _metrics(c, n_members, thresholds, coverages)
    pit = c["pit"].to_numpy("float64")
    nan = float("nan")
    metrics["pit_noise"] = (
        cal.pit_noise(pit, np.asarray(blocks)[valid]) if blocks is not None else nan
    )
    lo_hi = (nan, nan)
    if blocks is not None and "var" in c and "se" in c:
        var, se = (c[col].to_numpy("float64") for col in ("var", "se"))
        lo_hi = cal.spread_skill_interval(var, se, np.asarray(blocks)[valid], n_members)
    metrics["spread_skill_lo"], metrics["spread_skill_hi"] = lo_hi
    if not skipna and n_bad:
        metrics = dict.fromkeys(metrics, float("nan"))
    out.update(metrics)
    return out


def _mean(c: pd.DataFrame, col: str) -> float:
    return scores.mean_score(c[col].to_numpy("float64")).value if col in c else float("nan")


def _metrics(
    c: pd.DataFrame, n_members: int | None, thresholds: Sequence[float], covs: Sequence[float]
) -> dict[str, float]:
    out = {"crps": _mean(c, "crps"), "crps_fair": _mean(c, "crps_fair"), "mae": _mean(c, "ae")}
    mse, var = _mean(c, "se"), _mean(c, "var")
    out["rmse"] = math.sqrt(mse) if np.isfinite(mse) else float("nan")
    out["bias"] = _mean(c, "err")
    out["spread"] = math.sqrt(var) if np.isfinite(var) else float("nan")
    out["spread_skill"] = cal.spread_skill_ratio(var, mse, n_members)
    for cv in covs:
        out[f"coverage_{coverage_label(cv)}"] = _mean(c, f"cov_{coverage_label(cv)}")
    flat = cal.flatness(cal.histogram(c["pit"].to_numpy("float64")))
    out["pit_max_dev"], out["pit_ri"] = flat.max_dev, flat.reliability_index
    out["pit_chi2"], out["pit_chi2_pvalue"] = flat.chi2, flat.chi2_pvalue
    for t in thresholds:
        lab = threshold_label(t)
        d = scores.brier_decomposition(c[f"o_{lab}"].to_numpy(), c[f"p_{lab}"].to_numpy())
        out[f"brier_{lab}"], out[f"brier_rel_{lab}"] = d.bs, d.rel
        out[f"brier_res_{lab}"], out[f"brier_unc_{lab}"] = d.res, d.unc
        out[f"brier_n_{lab}"] = float(d.n)
    return out


def group_keys(cases: pd.DataFrame, by: str) -> list[tuple[str, np.ndarray]]:
    """``(key, row positions)`` of each group of grouping ``by`` (``all`` or ``a+b``)."""
    if by == "all":
        return [("all", np.arange(len(cases)))]
    cols = by.split("+")
    missing = [col for col in cols if col not in cases.columns]
    if missing:
        raise ValueError(f"cannot group by {by!r}: no column {missing} in the cases")
    out = []
    for vals, idx in cases.groupby(cols, sort=True).indices.items():
        vals = vals if isinstance(vals, tuple) else (vals,)
        out.append(("|".join(_key_text(v) for v in vals), np.asarray(idx)))
    return out


def _key_text(v: Any) -> str:
    if isinstance(v, float | np.floating):
        return f"{float(v):g}"
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return str(v)


def tidy_scores(
    cases: pd.DataFrame,
    *,
    method: str,
    variable: str,
    by: Sequence[str],
    n_members: int | None,
    thresholds: Sequence[float],
    coverages: Sequence[float],
    skipna: bool = True,
) -> pd.DataFrame:
    """Tidy rows (see the module docstring) for ``all`` and every grouping in ``by``."""
    rows = []
    blocks = init_date_blocks(cases["init_time"]) if "init_time" in cases.columns else None
    for grouping in ("all", *[b for b in by if b != "all"]):
        for key, idx in group_keys(cases, grouping):
            summ = summarise(
                cases if grouping == "all" else cases.iloc[idx],
                n_members=n_members,
                thresholds=thresholds,
                coverages=coverages,
                skipna=skipna,
                blocks=None if blocks is None else blocks[idx],
            )
            rows += [(method, variable, grouping, key, m, v) for m, v in summ.items()]
    return pd.DataFrame(rows, columns=list(TIDY_COLUMNS))


def diagnostics(
    cases: pd.DataFrame, *, n_members: int | None, thresholds: Sequence[float]
) -> dict[str, Any]:
    """Histogram and reliability-diagram data over all valid cases.

    Returns:
        ``pit_hist`` (10 counts), ``rank_hist`` (M+1 counts, members only, else None) and
        ``reliability`` (``{threshold label: reliability_table}``).
    """
    valid = cases["valid"].to_numpy(bool)
    c = cases if valid.all() else cases[valid]
    rank_hist = None
    if n_members:
        ranks = c["rank"].to_numpy("int64")
        rank_hist = np.bincount(ranks - 1, minlength=n_members + 1).tolist()
    rel = {
        threshold_label(t): cal.reliability_table(
            c[f"o_{threshold_label(t)}"].to_numpy(), c[f"p_{threshold_label(t)}"].to_numpy()
        )
        for t in thresholds
    }
    pit_hist = cal.histogram(c["pit"].to_numpy("float64")).tolist()
    return {"pit_hist": pit_hist, "rank_hist": rank_hist, "reliability": rel}


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def write_scores(
    table: pd.DataFrame,
    out_dir: str | Path,
    *,
    meta: dict[str, Any],
    extra: dict[str, Any],
    report: str | None = None,
) -> dict[str, Path]:
    """Write ``scores.csv`` (tidy), ``scores.json`` and the report as one set.

    ``scores.json`` holds ``{"schema", "meta", "scores": [tidy rows], **extra}`` with NaN
    written as null. The files are written as one set (:func:`probcast.fileset.write_set`):
    all are staged first, then the previous run's outputs (``report.html``, ``maps.nc``,
    ``scores.json``, ``scores.csv``) are removed and the new ones moved in, ``report.html``
    last, so that ``out_dir`` never holds scores of one run beside a report of another.
    A failed write leaves the previous outputs as they were; an interrupted move leaves
    part of the new set (no ``report.html``), nothing of the previous run.

    Args:
        table: The tidy scores.
        out_dir: The folder (created).
        meta: ``scores.json``'s ``meta``.
        extra: Further entries of ``scores.json``.
        report: The HTML report (``report.html``); None: none is written, and the previous
            run's ``report.html`` and ``maps.nc`` are removed with its scores (the caller
            writes its own after these).

    Returns:
        ``{"csv": path, "json": path}`` (and ``"report": path`` with a ``report``).
    """
    from probcast.fileset import write_set

    doc = {"schema": SCHEMA, "meta": meta, "scores": table.to_dict(orient="records"), **extra}
    texts = {
        "scores.csv": table.to_csv(index=False, float_format="%.8g"),
        "scores.json": json.dumps(_json_safe(doc), indent=1, allow_nan=False),
    }
    if report is not None:
        texts["report.html"] = report
    writers = {name: partial(_write_text, text) for name, text in texts.items()}
    written = write_set(out_dir, writers, stale=OUTPUTS)
    keys = {"scores.csv": "csv", "scores.json": "json", "report.html": "report"}
    return {keys[name]: path for name, path in written.items()}


OUTPUTS = ("report.html", "maps.nc")
"""The outputs beside the scores that a verification into a folder replaces."""


def _write_text(text: str, path: Path) -> None:
    io.write_text(path, text)
