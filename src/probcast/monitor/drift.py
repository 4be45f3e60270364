"""Input drift: each feature of new cycles against the training statistics.

Per feature (``fc_*`` and statics of the reference, see :mod:`probcast.monitor.reference`):

- **PSI** (population stability index) over the bins cut at the reference's distinct
  quantile values; the expected mass of each bin follows from the levels (tied values are
  point masses, e.g. dry precipitation), both proportions floored at :data:`EPS`:
  ``sum (o - e) ln(o / e)``.
- **KS**, the largest distance between the sample's empirical CDF and the reference CDF,
  piecewise linear through the (value, level) points (jumps at tied values); both one-sided
  limits are checked at every sample value and knot, so the supremum is exact.
- **Spread ratio**: the sample's interdecile range over the reference's. Far from 1, the
  feature's variance changed: flagged as a *possible NWP model change* (``nwp_variance``).

Values are pooled over every row given (several cycles: a window) and also reported per
cycle (``init_time``). Alert kinds: ``drift_psi``, ``drift_ks``, ``nwp_variance`` (only with
``min_rows`` finite values or more) and ``missing_feature``: a reference feature absent from
the input or without a finite value (the model runs without it). An input holding none of
the monitored features at all is an error (the wrong file, or renamed columns).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from probcast.monitor.config import DriftConfig
from probcast.monitor.reference import quantile_knots

EPS = 1e-4
"""Floor of the observed and expected bin proportions in the PSI (no log of zero)."""


def psi(values: np.ndarray, spec: Mapping[str, Any]) -> float:
    """Population stability index of ``values`` against one reference feature (NaN: none).

    A tied reference value (a point mass, e.g. dry precipitation) is not a bin edge of its
    own: the quantile grid only says its mass lies between the tied levels and the next
    one, so the point mass and the interval after it form one bin.
    """
    x = np.sort(np.asarray(values, dtype="float64"))
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan")
    u, left, right = quantile_knots(spec)
    keep = (left == right) | (np.arange(u.size) == u.size - 1)
    u, right = u[keep], right[keep]
    expected = np.diff(np.concatenate([[0.0], right, [1.0]]))
    observed = np.diff(np.concatenate([[0.0], np.searchsorted(x, u, "right") / x.size, [1.0]]))
    e = np.maximum(expected, EPS)
    o = np.maximum(observed, EPS)
    return float(np.sum((o - e) * np.log(o / e)))


def reference_cdf(spec: Mapping[str, Any], t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The reference CDF at ``t``: ``(F(t-), F(t))`` (left limit, value)."""
    u, left, right = quantile_knots(spec)
    t = np.asarray(t, dtype="float64")
    j = np.searchsorted(u, t, "right") - 1  # last knot <= t
    jc = np.clip(j, 0, u.size - 1)
    nxt = np.clip(j + 1, 0, u.size - 1)
    width = np.where(nxt > jc, u[nxt] - u[jc], 1.0)
    frac = np.clip((t - u[jc]) / width, 0.0, 1.0)
    inside = right[jc] + (left[nxt] - right[jc]) * frac
    at_knot = t == u[jc]
    value = np.where(
        j < 0, 0.0, np.where(at_knot, right[jc], np.where(j >= u.size - 1, 1.0, inside))
    )
    lower = np.where(at_knot & (j >= 0), left[jc], value)
    return lower, value


def ks(values: np.ndarray, spec: Mapping[str, Any]) -> float:
    """Kolmogorov-Smirnov distance of ``values`` to the reference CDF (NaN: no values).

    At a tied reference value the CDF is only known to lie between the tied levels' top and
    the next level: the distance there is to that interval.
    """
    x = np.sort(np.asarray(values, dtype="float64"))
    x = x[np.isfinite(x)]
    if x.size == 0:
        return float("nan")
    u, left, right = quantile_knots(spec)
    t = np.union1d(x, u)
    f_lo, f_hi = reference_cdf(spec, t)
    j = np.clip(np.searchsorted(u, t, "right") - 1, 0, u.size - 1)
    tied = (t == u[j]) & (left[j] < right[j]) & (j < u.size - 1)
    f_top = np.where(tied, left[np.minimum(j + 1, u.size - 1)], f_hi)
    n_lo = np.searchsorted(x, t, "left") / x.size
    n_hi = np.searchsorted(x, t, "right") / x.size
    d_hi = np.maximum(np.maximum(f_hi - n_hi, n_hi - f_top), 0.0)
    return float(max(np.max(d_hi), np.max(np.abs(n_lo - f_lo))))


def spread_ratio(values: np.ndarray, spec: Mapping[str, Any]) -> float:
    """Interdecile range of ``values`` over the reference's (NaN when either is 0 or empty)."""
    x = np.asarray(values, dtype="float64")
    x = x[np.isfinite(x)]
    ref = np.interp([0.1, 0.9], spec["levels"], spec["values"])
    ref_range = float(ref[1] - ref[0])
    if x.size == 0 or not ref_range > 0:
        return float("nan")
    q = np.quantile(x, [0.1, 0.9])
    return float((q[1] - q[0]) / ref_range)


@dataclass
class FeatureDrift:
    """Drift of one feature over a set of rows.

    Attributes:
        feature: Column name.
        n: Finite values used.
        psi: Population stability index.
        ks: Kolmogorov-Smirnov distance.
        spread_ratio: Interdecile range over the reference's.
        alerts: Alert kinds raised.
        checked: Alert kinds checked (alerting or clear); the drift kinds need
            ``min_rows`` values, ``missing_feature`` is always checked.
    """

    feature: str
    n: int
    psi: float
    ks: float
    spread_ratio: float
    alerts: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)


def feature_drift(
    feature: str, values: np.ndarray, spec: Mapping[str, Any], cfg: DriftConfig
) -> FeatureDrift:
    """PSI, KS and spread ratio of one feature, with the alerts ``cfg`` raises."""
    x = np.asarray(values, dtype="float64")
    x = x[np.isfinite(x)]
    out = FeatureDrift(feature, int(x.size), psi(x, spec), ks(x, spec), spread_ratio(x, spec))

    def judge(kind: str, fires: bool) -> None:
        out.checked.append(kind)
        if fires:
            out.alerts.append(kind)

    judge("missing_feature", out.n == 0)
    if out.n >= cfg.min_rows:
        judge("drift_psi", out.psi > cfg.psi)
        judge("drift_ks", out.ks > cfg.ks)
        r = out.spread_ratio
        if np.isfinite(r):
            judge("nwp_variance", r > cfg.spread_ratio or r < 1.0 / cfg.spread_ratio)
    return out


@dataclass
class DriftResult:
    """Drift of a set of input rows against a reference.

    Attributes:
        pooled: One :class:`FeatureDrift` per feature over every row.
        cycles: ``{init_time (ISO): [FeatureDrift, ...]}``, one entry per cycle.
        missing: Monitored features absent from the input or without a finite value.
        rows: Number of input rows.
    """

    pooled: list[FeatureDrift]
    cycles: dict[str, list[FeatureDrift]]
    missing: list[str]
    rows: int

    @property
    def alerts(self) -> list[tuple[str, str]]:
        """``(kind, feature)`` of every alert of the pooled values."""
        return [(kind, f.feature) for f in self.pooled for kind in f.alerts]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "rows": self.rows,
            "missing_features": self.missing,
            "pooled": [asdict(f) for f in self.pooled],
            "cycles": {c: [asdict(f) for f in fs] for c, fs in self.cycles.items()},
            "alerts": [{"kind": k, "feature": f} for k, f in self.alerts],
        }


def _values(frame: pd.DataFrame, feature: str) -> np.ndarray:
    """The feature's values (all NaN when the column is absent)."""
    if feature not in frame.columns:
        return np.full(len(frame), np.nan)
    return frame[feature].to_numpy(dtype="float64")


def measure(
    frame: pd.DataFrame,
    reference: Mapping[str, Any],
    cfg: DriftConfig,
    source: str | Sequence[str] = "<input>",
) -> DriftResult:
    """Drift of every monitored feature of ``frame`` (pooled and per ``init_time``).

    A monitored feature absent from ``frame`` or without a finite value raises the
    ``missing_feature`` alert.

    Args:
        frame: Input rows (one or several cycles of a canonical station table).
        reference: The ``domain.json`` dict.
        cfg: Thresholds and the features to monitor.
        source: The input file(s), for error messages.

    Raises:
        ValueError: A feature named in ``cfg.features`` is not in the reference; no input
            rows; none of the monitored features is a column of the input.
    """
    specs = reference["features"]
    unknown = [f for f in cfg.features if f not in specs]
    if unknown:
        raise ValueError(f"monitor.drift.features {unknown} are not in the reference")
    where = source if isinstance(source, str) else ", ".join(source)
    if frame.empty:
        raise ValueError(f"{where}: no input rows")
    wanted = list(cfg.features) or list(specs)
    if not any(f in frame.columns for f in wanted):
        raise ValueError(
            f"{where}: none of the reference features is an input column; expected "
            f"{wanted[:8]}{' ...' if len(wanted) > 8 else ''}, found {list(frame.columns)[:12]}"
        )
    pooled = [feature_drift(f, _values(frame, f), specs[f], cfg) for f in wanted]
    missing = [f.feature for f in pooled if f.n == 0]
    cycles: dict[str, list[FeatureDrift]] = {}
    if "init_time" in frame.columns:
        times = pd.to_datetime(frame["init_time"], utc=True)
        for t, part in frame.groupby(times, sort=True):
            key = pd.Timestamp(t).strftime("%Y-%m-%dT%H:%MZ")  # type: ignore[arg-type]
            cycles[key] = [feature_drift(f, _values(part, f), specs[f], cfg) for f in wanted]
    return DriftResult(pooled, cycles, missing, len(frame))
