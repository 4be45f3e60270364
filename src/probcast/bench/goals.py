"""The skill goals every benchmark row is checked against (issue 12), and how close it is.

For each dataset and target of ``probcast demo --all`` (test split, default configuration):

1. never worse than the best classical method fitted on the same training split
   (dressing, EMOS global, EMOS per station): CRPSS >= 0 against it;
2. CRPS at least :data:`BAR_CRPS_GAIN` below it, on at least two thirds of the targets and
   on every target with :data:`LONG_TRAINING_DAYS` or more of training data;
3. calibrated: PIT max-bin deviation <= :data:`BAR_PIT_MAX_DEV` (10 bins) and spread-skill in
   :data:`BAR_SPREAD_SKILL`.

"Best" is the classical method with the lowest mean test CRPS. Its comparison with probcast
is paired (the cases both scored) and carries a 95 % block-bootstrap interval over init
dates (:func:`versus_best_classical`), so a loss or gain can be told from sampling noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from probcast.schema import KEY_COLUMNS
from probcast.verify import aggregate, skill

METHODS = ("raw", "dressing", "emos-global", "emos-local", "probcast")
CLASSICAL = ("dressing", "emos-global", "emos-local")
BAR_CRPS_GAIN = 0.05  # probcast CRPS at least 5 % below the best classical baseline
BAR_PIT_MAX_DEV = 0.03  # max-bin deviation of the 10-bin PIT histogram
BAR_SPREAD_SKILL = (0.9, 1.1)
LONG_TRAINING_DAYS = 365
"""Training span (first to last init date) from which goal 2 holds for every target."""
VERSUS = "crpss_best_classical"
"""Metric of probcast's paired CRPSS against the best classical method (``_lo``/``_hi``)."""


def value(scores: pd.DataFrame, method: str, var: str, metric: str) -> float:
    """One overall (``by == "all"``) score, NaN when absent."""
    hit = scores[
        (scores["by"] == "all")
        & (scores["method"] == method)
        & (scores["variable"] == var)
        & (scores["metric"] == metric)
    ]["value"]
    return float(hit.iloc[0]) if len(hit) else float("nan")


def best_classical(scores: pd.DataFrame, var: str) -> str:
    """The classical method with the lowest mean test CRPS of ``var``."""
    crps = {m: value(scores, m, var, "crps") for m in CLASSICAL}
    return min(CLASSICAL, key=lambda m: crps[m] if math.isfinite(crps[m]) else math.inf)


def versus_best_classical(
    cases: Mapping[tuple[str, str], pd.DataFrame],
    scores: pd.DataFrame,
    *,
    seed: int = 0,
    n_boot: int = skill.N_BOOT,
) -> pd.DataFrame:
    """The CRPSS of probcast against the best classical method per target, with its CI.

    Args:
        cases: Per-case scores by ``(method, variable)``
            (:attr:`probcast.verify.evaluate.Verification.cases`).
        scores: The verification's tidy scores (to find the best classical method).
        seed: Seed of the block bootstrap.
        n_boot: Bootstrap replicates.

    Returns:
        Tidy rows (method ``probcast``, by ``all``) of :data:`VERSUS`, ``_lo`` and ``_hi``
        per target both were scored on.
    """
    rows = []
    for (name, var), frame in cases.items():
        if name != "probcast":
            continue
        best = best_classical(scores, var)
        if (best, var) not in cases:
            continue
        paired = skill.paired_cases(frame, cases[(best, var)], KEY_COLUMNS)
        sk = skill.paired_skill(paired, seed=seed, n_boot=n_boot)
        for metric, v in ((VERSUS, sk.value), (f"{VERSUS}_lo", sk.lo), (f"{VERSUS}_hi", sk.hi)):
            rows.append(("probcast", var, "all", "all", metric, v))
    return pd.DataFrame(rows, columns=list(aggregate.TIDY_COLUMNS))


def bar_check(scores: pd.DataFrame, var: str, train_days: float = math.nan) -> dict[str, Any]:
    """The goals of one target: gain over the best classical method, PIT, spread-skill."""
    best = best_classical(scores, var)
    gain = value(scores, "probcast", var, VERSUS)  # paired: the cases both scored
    paired = math.isfinite(gain)
    if not paired:  # scores without the paired rows: each method's mean over its own cases
        gain = 1.0 - value(scores, "probcast", var, "crps") / value(scores, best, var, "crps")
    pit = value(scores, "probcast", var, "pit_max_dev")
    ssr = value(scores, "probcast", var, "spread_skill")
    checks = {
        "crps": gain >= BAR_CRPS_GAIN,
        "pit": pit <= BAR_PIT_MAX_DEV,
        "ssr": BAR_SPREAD_SKILL[0] <= ssr <= BAR_SPREAD_SKILL[1],
    }
    return {
        "best": best,
        "gain": gain,
        "paired": paired,
        "gain_lo": value(scores, "probcast", var, f"{VERSUS}_lo"),
        "gain_hi": value(scores, "probcast", var, f"{VERSUS}_hi"),
        "never_worse": gain >= 0,
        "long": train_days >= LONG_TRAINING_DAYS,
        "pit": pit,
        "pit_noise": value(scores, "probcast", var, "pit_noise"),
        "ssr": ssr,
        "ssr_lo": value(scores, "probcast", var, "spread_skill_lo"),
        "ssr_hi": value(scores, "probcast", var, "spread_skill_hi"),
        "checks": checks,
    }


def summary(checked: Sequence[Mapping[str, Any]]) -> list[str]:
    """Markdown lines: each goal met on how many targets, against what it asks."""
    n = len(checked)
    if not n:
        return []
    worse = sum(not c["never_worse"] for c in checked)
    gain = sum(c["checks"]["crps"] for c in checked)
    long = [c for c in checked if c["long"]]
    long_gain = sum(c["checks"]["crps"] for c in long)
    need = math.ceil(2 * n / 3)
    pit = sum(c["checks"]["pit"] for c in checked)
    ssr = sum(c["checks"]["ssr"] for c in checked)
    testable = sum(c["pit_noise"] <= BAR_PIT_MAX_DEV for c in checked)
    lo, hi = BAR_SPREAD_SKILL
    # the interval reaches the bar: the ratio is not shown to miss it beyond sampling noise
    within = sum(c["ssr_lo"] <= hi and c["ssr_hi"] >= lo for c in checked)
    ok = "met" if worse == 0 else "not met"
    lines = [f"- Goal 1, never worse than the best classical method: {n - worse} of {n} ({ok})."]
    ok = "met" if gain >= need and long_gain == len(long) else "not met"
    lines.append(
        f"- Goal 2, CRPS >= {BAR_CRPS_GAIN:.0%} below it: {gain} of {n} (needs {need}); on the "
        f"{len(long)} targets with >= {LONG_TRAINING_DAYS} days of training: {long_gain} of "
        f"{len(long)} ({ok})."
    )
    ok = "met" if pit == ssr == n else "not met"
    lines.append(
        f"- Goal 3, calibrated: PIT max-bin deviation <= {BAR_PIT_MAX_DEV} on {pit} of {n} "
        f"(verifiable, PIT noise <= {BAR_PIT_MAX_DEV}, on {testable}); spread-skill "
        f"{lo}-{hi} on {ssr} of {n}, its 95 % interval reaching {lo}-{hi} on {within} "
        f"({ok})."
    )
    return lines
