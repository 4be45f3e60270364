"""Caveats of a verification, said next to its scores (CLI output and report).

- coverage: truth rows a forecast does not cover, and cases it has but could not score
  (``n_dropped``): methods compared on different case sets;
- CRPSS on fewer cases than either forecast scored (``crpss_n``);
- CRPSS of a quantile-form forecast against a reference of another form: the quantile
  CRPS (pinball average over a few levels) is biased low, so the skill is inflated.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

import numpy as np

from probcast.verify import scores


def quantile_crps_ratio(levels: Sequence[float]) -> float:
    """Expected quantile CRPS of a calibrated standard normal over its exact CRPS.

    The bias of the quantile form at these levels (deterministic quadrature): 0.806 for
    the default 7 levels (0.05 ... 0.95, whose outer tails are left out), above 1 for a few
    evenly spread levels ``i/(k+1)`` (1.12 for 7, 1.05 for 19), 1 in the limit.
    """
    nd = statistics.NormalDist()
    y = np.array([nd.inv_cdf((i + 0.5) / 4000) for i in range(4000)])
    lv = np.sort(np.asarray(levels, dtype="float64"))
    q = np.broadcast_to(np.array([nd.inv_cdf(float(a)) for a in lv]), (y.size, lv.size))
    return float(scores.crps_quantiles(y, q, lv).mean() * math.sqrt(math.pi))


def _overall(ver: Any, method: str, variable: str, metric: str) -> float:
    return float(ver.value(method, variable, metric))


def coverage_lines(ver: Any) -> list[str]:
    """One line per method: cases scored, truth rows without forecast, cases dropped."""
    m = ver.meta
    lines = []
    for name, counts in m.get("matching", {}).items():
        no_fc = int(counts.get("truth_rows_without_forecast", 0))
        for var, d in m.get("dropped", {}).get(name, {}).items():
            n = _overall(ver, name, var, "n")
            dropped = int(d.get("missing_observation", 0) + d.get("missing_forecast", 0))
            dropped += int(d.get("score_not_finite", 0))
            lines.append(
                f"{name} {var}: {n:.0f} cases scored; {no_fc} truth rows without forecast; "
                f"{dropped} matched cases dropped ({d.get('missing_observation', 0)} without "
                f"observation, {d.get('missing_forecast', 0)} without forecast, "
                f"{d.get('score_not_finite', 0)} with a score not finite)"
            )
    return lines


def warnings_lines(ver: Any) -> list[str]:
    """Comparisons that are not like with like (empty when every method shares its cases)."""
    m = ver.meta
    out: list[str] = []
    ref = m.get("reference")
    forms = m.get("forms", {})
    ns: dict[str, set[float]] = {}
    for name, by_var in m.get("dropped", {}).items():
        for var in by_var:
            ns.setdefault(var, set()).add(_overall(ver, name, var, "n"))
    for var, values in sorted(ns.items()):
        if len(values) > 1:
            out.append(
                f"WARNING {var}: the methods are scored on different case sets (n from "
                f"{min(values):.0f} to {max(values):.0f}); their scores are not comparable "
                "as they stand (CRPSS uses only the cases both forecasts scored: crpss_n)"
            )
    if ref is None:
        return out
    for name, by_var in forms.items():
        for var, form in by_var.items():
            ref_form = forms.get(ref, {}).get(var)
            if name == ref or ref_form is None:
                continue
            if (form["kind"] == "quantiles") != (ref_form["kind"] == "quantiles"):
                q = form if form["kind"] == "quantiles" else ref_form
                ratio = quantile_crps_ratio(q.get("levels") or [0.5])
                which = "inflated" if (form["kind"] == "quantiles") == (ratio < 1) else "deflated"
                out.append(
                    f"WARNING {name} {var}: CRPSS compares a {form['kind']} forecast with a "
                    f"{ref_form['kind']} reference; the quantile CRPS at these levels is about "
                    f"{ratio:.3g} x the exact CRPS of a calibrated normal, so this CRPSS is "
                    f"{which} (docs/verification.md)"
                )
            crpss_n = _overall(ver, name, var, "crpss_n")
            n_fc, n_ref = _overall(ver, name, var, "n"), _overall(ver, ref, var, "n")
            if crpss_n == crpss_n and crpss_n < max(n_fc, n_ref):
                out.append(
                    f"WARNING {name} {var}: CRPSS on the {crpss_n:.0f} cases both it "
                    f"({n_fc:.0f}) and {ref} ({n_ref:.0f}) scored"
                )
    return out
