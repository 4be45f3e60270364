"""Per-case scores of a :class:`~probcast.dists.Predictive` against observations.

:func:`case_scores` turns a forecast of any form into the same columns, one value per
case, which :mod:`probcast.verify.aggregate` then averages over any grouping:

============  ===================================================================
column        meaning
============  ===================================================================
valid         observation, every forecast value and the CRPS finite (other columns NaN
              if not)
score_failed  forecast and observation finite but the CRPS not (counted as dropped)
crps          CRPS (members: standard estimator; quantiles: pinball approximation;
              params: closed form; point: absolute error)
crps_fair     fair CRPS (members only)
ae            absolute error of the median
se, err       squared error and error (forecast - obs) of the mean
var           predictive variance (members: ddof=1; quantiles: NaN, tails unknown)
pit           randomised PIT value in [0, 1]
rank          randomised rank 1..M+1 (members only, else 0)
cov_<c>       1 if the central ``c`` % interval covers the observation
p_<t>, o_<t>  forecast probability of, and outcome of, ``Y > t`` (a ``p_gt`` column
              of the table where given; where it is NaN, the probability implied by
              the forecast's members, quantiles, parameters or point); ``<t>`` is
              :func:`threshold_label`, distinct for distinct thresholds
============  ===================================================================

Point forecasts get PIT, variance and coverage NaN (undefined); their probability of an
exceedance is 0 or 1.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import special

from probcast.dists import Predictive
from probcast.dists import pit as dists_pit
from probcast.schema import VARIABLES
from probcast.verify import calibration as cal
from probcast.verify import scores

COVERAGES = (0.5, 0.8, 0.9)
"""Nominal coverages of the central intervals checked by default."""


def _variance_rule(n: int = 96, zmax: float = 5.2) -> tuple[np.ndarray, np.ndarray]:
    """Levels and weights of the variance quadrature: Gauss-Legendre in normal scores.

    ``E[g(Y)] = integral of g(Q(Phi(z))) phi(z) dz`` over ``|z| <= zmax`` (the mass beyond,
    2e-7, left out), so the tails get nodes out to the 1e-7 and 1 - 1e-7 quantiles that
    evenly spaced levels never reach. Relative error of the variance, against the exact
    one: normal 6e-6, logistic 2e-5, gamma (shape 0.5) 4e-5, logistic censored at 0
    5e-4 to 7e-4 (the kink at the point mass), where 200 midpoint levels were 0.6 %,
    1.6 %, 3.5 % and 0.9-7.6 % low (7.6 % for mostly dry cases).
    """
    x, w = np.polynomial.legendre.leggauss(n)
    z = x * zmax
    weights = w * np.exp(-0.5 * z**2)
    levels = special.ndtr(z)
    return levels, weights / weights.sum()


_VAR_LEVELS, _VAR_WEIGHTS = _variance_rule()
"""Levels whose quantiles give the variance of a parametric forecast, and their weights."""


LABEL_NOISE = 1e-12
"""Relative difference of a threshold from its six-digit label taken as float noise."""


def threshold_label(t: float) -> str:
    """Text form of a threshold in column and metric names (``p_<t>``, ``brier_<t>``).

    Six significant digits (``%g``: ``0.1``, ``5``, ``273.15``) where they give the
    threshold back to float noise (:data:`LABEL_NOISE`: ``0.1 + 0.2`` is ``0.3``), else the
    fewest digits that give it back exactly (``275.0001``, ``1234567``): two thresholds
    that differ by more than float noise never share a label (``%g`` alone labels
    ``275.0001`` and ``275.0004`` both ``275``, and one's scores would overwrite the
    other's). Labels read back as numbers give the same label.
    """
    t = float(t)
    short = f"{t:g}"
    if not math.isfinite(t) or math.isclose(float(short), t, rel_tol=LABEL_NOISE):
        return short
    for digits in range(7, 18):
        text = f"{t:.{digits}g}"
        if float(text) == t:
            return text
    return repr(t)  # pragma: no cover (17 significant digits give any float back)


def threshold_labels(thresholds: Sequence[float], variable: str = "") -> list[str]:
    """The labels of ``thresholds`` (:func:`threshold_label`), checked to be distinct.

    Raises:
        ValueError: Two thresholds that differ by float noise only, and so would share a
            label (and one's scores overwrite the other's); the message names both.
    """
    seen: dict[str, float] = {}
    labels = []
    for t in thresholds:
        lab = threshold_label(t)
        other = seen.setdefault(lab, float(t))
        if other != float(t):
            of = f" of {variable}" if variable else ""
            raise ValueError(
                f"thresholds{of} {other!r} and {float(t)!r} differ by float noise only "
                f"(relative {LABEL_NOISE:g}) and would share the label {lab!r} "
                f"(brier_{lab}), one's scores overwriting the other's; give the threshold once"
            )
        labels.append(lab)
    return labels


def coverage_label(c: float) -> str:
    """Column suffix of a nominal coverage (``0.8`` -> ``"80"``)."""
    return f"{round(100 * c):d}"


def physical_lower(variable: str) -> float:
    """Lower bound of a variable with a point mass at its minimum (precipitation: 0)."""
    v = VARIABLES.get(variable)
    return 0.0 if v is not None and v.kind in ("nonneg", "fraction") else -np.inf


def case_scores(
    fc: Predictive,
    obs: np.ndarray,
    *,
    thresholds: Sequence[float] = (),
    coverages: Sequence[float] = COVERAGES,
    rng: np.random.Generator | None = None,
) -> dict[str, np.ndarray]:
    """Per-case scores of ``fc`` (see the module docstring for the columns).

    Args:
        fc: The forecast, rows aligned with ``obs``.
        obs: Observations, shape ``(n,)``.
        thresholds: Event thresholds ``Y > t`` for Brier scores; probability columns of
            the table are used where given and not NaN, else the probability implied by
            the form.
        coverages: Nominal central-interval coverages in (0, 1).
        rng: Random generator for randomised PIT and ranks (default seed 0).

    Returns:
        Column name -> array of shape ``(n,)``.
    """
    rng = rng if rng is not None else np.random.default_rng(0)
    labels = threshold_labels(thresholds, fc.variable)  # distinct: no score overwritten
    o = np.asarray(obs, dtype="float64")
    if o.shape != (len(fc),):
        raise ValueError(f"{fc.variable}: {len(fc)} forecasts but obs of shape {o.shape}")
    valid = scores.finite_cases(o, fc.values)
    n, n_ok = o.size, int(valid.sum())
    cols: dict[str, np.ndarray] = {"valid": valid}
    sub = fc.take(valid)
    parts = _FORMS[fc.kind](sub, o[valid], thresholds, coverages, rng)
    for name, vals in parts.items():
        full = np.full(n, 0 if name == "rank" else np.nan, dtype=vals.dtype)
        full[valid] = vals if vals.shape == (n_ok,) else np.broadcast_to(vals, (n_ok,))
        cols[name] = full
    # A score that is not finite on a valid case (parameters at the edge of their domain):
    # dropped from every metric and counted, never averaged over fewer cases silently.
    failed = valid & ~np.isfinite(cols["crps"])
    if failed.any():
        valid = valid & ~failed
        cols["valid"] = valid
        for name in parts:
            cols[name][failed] = 0 if name == "rank" else np.nan
    cols["score_failed"] = failed
    for t, lab in zip(thresholds, labels, strict=True):
        if t in fc.probabilities:  # a probability column of the table wins where given
            p = np.clip(fc.probabilities[t], 0.0, 1.0)
            implied = cols.get(f"p_{lab}")
            if implied is not None:  # NaN in the column: the form's own probability
                p = np.where(np.isnan(p), implied, p)
            p[~valid] = np.nan
            cols[f"p_{lab}"] = p
        cols[f"o_{lab}"] = np.where(np.isfinite(o), (o > t).astype("float64"), np.nan)
    return cols


def _members(
    fc: Predictive, o: np.ndarray, thresholds: Sequence[float], cov: Sequence[float], rng: Any
) -> dict[str, np.ndarray]:
    n, m = fc.values.shape
    out: dict[str, np.ndarray] = {
        k: np.empty(n) for k in ("crps", "crps_fair", "ae", "se", "err", "var", "pit")
    }
    out["rank"] = np.empty(n, dtype="int64")
    for c in cov:
        out[f"cov_{coverage_label(c)}"] = np.empty(n)
    for t in thresholds:
        out[f"p_{threshold_label(t)}"] = np.empty(n)
    levels = np.array([lv for c in cov for lv in cal.central_levels(c)])
    u_all = rng.random(n)  # drawn up front: results do not depend on chunking or threads

    def chunk(sl: slice) -> None:
        x = np.sort(fc.values[sl], axis=-1)
        y = o[sl]
        out["crps"][sl], out["crps_fair"][sl] = scores.crps_ensemble_sorted(y, x)
        mean = x.mean(axis=-1)
        out["err"][sl] = mean - y
        out["var"][sl] = x.var(axis=-1, ddof=1) if m > 1 else np.nan
        out["ae"][sl] = np.abs(cal.member_quantiles(x, np.array([0.5]))[:, 0] - y)
        below, equal = cal.member_counts(y, x)
        u = u_all[sl]
        out["pit"][sl] = (below + u * (equal + 1)) / (m + 1)
        out["rank"][sl] = below + np.floor(u * (equal + 1)).astype("int64") + 1
        bounds = cal.member_quantiles(x, levels)
        for i, c in enumerate(cov):
            lo, hi = bounds[:, 2 * i], bounds[:, 2 * i + 1]
            out[f"cov_{coverage_label(c)}"][sl] = cal.covered(y, lo, hi)
        for t in thresholds:
            out[f"p_{threshold_label(t)}"][sl] = (x > t).mean(axis=-1)

    scores.run_chunks(n, scores.CHUNK_ELEMENTS // m, chunk)
    out["se"] = out["err"] ** 2
    return out


def _quantiles(
    fc: Predictive, o: np.ndarray, thresholds: Sequence[float], cov: Sequence[float], rng: Any
) -> dict[str, np.ndarray]:
    assert fc.levels is not None
    q, lv = np.sort(fc.values, axis=-1), fc.levels
    lower = physical_lower(fc.variable)
    median = cal.interpolate_quantiles(q, lv, np.array([0.5]))[:, 0]
    mean = q.mean(axis=-1)  # exact in the limit of evenly spread levels
    left, right = cal.quantile_cdf(q, lv, o, lower=lower)
    out = {
        "crps": scores.crps_quantiles(o, q, lv),
        "ae": np.abs(median - o),
        "err": mean - o,
        "se": (mean - o) ** 2,
        # The spread of a few quantiles underestimates the variance (tails unresolved).
        "var": np.full(o.shape, np.nan),
        "pit": dists_pit.randomised(left, right, rng),
    }
    for c in cov:
        b = cal.interpolate_quantiles(q, lv, np.array(cal.central_levels(c)))
        out[f"cov_{coverage_label(c)}"] = cal.covered(o, b[:, 0], b[:, 1])
    for t in thresholds:
        _, f = cal.quantile_cdf(q, lv, np.full(o.shape, float(t)), lower=lower)
        # Right-continuous CDF; in an unresolved tail take the middle of its mass.
        f = np.where(q[:, 0] > t, lv[0] / 2, f)
        f = np.where(q[:, -1] < t, (lv[-1] + 1) / 2, f)
        out[f"p_{threshold_label(t)}"] = 1.0 - f
    return out


def _params(
    fc: Predictive, o: np.ndarray, thresholds: Sequence[float], cov: Sequence[float], rng: Any
) -> dict[str, np.ndarray]:
    from probcast import dists

    assert fc.family is not None
    dist = dists.get(fc.family)
    levels = np.array([lv for c in cov for lv in cal.central_levels(c)], dtype="float32")
    kernel = _params_kernel(fc.family, tuple(float(t) for t in thresholds))
    n = o.size
    parts: dict[str, list[np.ndarray]] = {}
    step = max(1, scores.CHUNK_ELEMENTS // _VAR_LEVELS.size)
    for start in range(0, n, step):
        sl = slice(start, start + step)
        res = kernel({k: v[sl] for k, v in fc.params.items()}, o[sl], levels)
        for k, v in res.items():
            parts.setdefault(k, []).append(np.asarray(v, dtype="float64"))
    r = {k: np.concatenate(v) for k, v in parts.items()}
    lower = float(getattr(dist, "lower", physical_lower(fc.variable)))
    upper = float(getattr(dist, "upper", np.inf))
    left = dists_pit.left_limit(o, r["cdf"], lower, upper, r.get("cdf_below_upper"))
    out = {
        "crps": r["crps"],
        "ae": np.abs(r["median"] - o),
        "err": r["mean"] - o,
        "se": (r["mean"] - o) ** 2,
        "var": r["var"],
        "pit": dists_pit.randomised(left, r["cdf"], rng),
    }
    for i, c in enumerate(cov):
        bounds = r["bounds"][:, 2 * i : 2 * i + 2]
        out[f"cov_{coverage_label(c)}"] = cal.covered(o, bounds[:, 0], bounds[:, 1])
    for i, t in enumerate(thresholds):
        out[f"p_{threshold_label(t)}"] = 1.0 - r["cdf_t"][:, i]
    return out


@functools.cache
def _params_kernel(family: str, thresholds: tuple[float, ...]) -> Any:
    """One jitted function computing every per-case quantity of a parametric forecast.

    One compiled program instead of one per JAX operation keeps the start-up short.
    """
    import jax
    import jax.numpy as jnp

    from probcast import dists

    dist = dists.get(family)
    upper = float(getattr(dist, "upper", np.inf))

    def kernel(p: dict[str, Any], y: Any, levels: Any) -> dict[str, Any]:
        n = y.shape[0]
        pe = {k: v[:, None] for k, v in p.items()}
        mean = dist.mean(p)
        qs = dist.quantile(pe, jnp.asarray(_VAR_LEVELS, dtype=jnp.float32))
        thr = jnp.asarray(thresholds, dtype=jnp.float32).reshape(1, -1)
        out = {
            "crps": dist.crps(p, y),
            "mean": mean,
            "var": _variance(family, p, qs, mean),
            "median": dist.quantile(p, jnp.full((n,), 0.5, jnp.float32)),
            "cdf": dist.cdf(p, y),
            "bounds": dist.quantile(pe, levels) if levels.size else jnp.zeros((n, 0)),
            "cdf_t": dist.cdf(pe, thr) if thresholds else jnp.zeros((n, 0)),
        }
        if np.isfinite(upper):
            below = jnp.full((n,), dists_pit.below_upper(upper), jnp.float32)
            out["cdf_below_upper"] = dist.cdf(p, below)
        return out

    return jax.jit(kernel)


_EXACT_VARIANCE = {"normal": 1.0, "logistic": float(np.pi**2 / 3)}
"""Families whose variance is this factor times ``scale**2``."""


def _variance(family: str, p: dict[str, Any], qs: Any, mean: Any) -> Any:
    """Predictive variance: exact where known, else by quadrature of the quantile function.

    ``qs`` are the quantiles at :data:`_VAR_LEVELS`; the centre is the quadrature's own
    mean (so the sum is of squared deviations, no cancellation in float32; ``mean`` is
    unused there, kept for the exact families' signature).
    """
    import jax.numpy as jnp

    if family in _EXACT_VARIANCE:
        return _EXACT_VARIANCE[family] * p["scale"] ** 2
    w = jnp.asarray(_VAR_WEIGHTS, dtype=qs.dtype)
    centre = jnp.sum(w * qs, axis=-1, keepdims=True)
    return jnp.sum(w * (qs - centre) ** 2, axis=-1)


def _point(
    fc: Predictive, o: np.ndarray, thresholds: Sequence[float], cov: Sequence[float], rng: Any
) -> dict[str, np.ndarray]:
    x = fc.values.astype("float64")
    nan = np.full(o.shape, np.nan)
    out = {
        "crps": scores.absolute_error(o, x),
        "ae": scores.absolute_error(o, x),
        "err": x - o,
        "se": scores.squared_error(o, x),
        "var": nan,
        "pit": nan,
    }
    for c in cov:
        out[f"cov_{coverage_label(c)}"] = nan
    for t in thresholds:
        out[f"p_{threshold_label(t)}"] = (x > t).astype("float64")
    return out


_FORMS = {"members": _members, "quantiles": _quantiles, "params": _params, "point": _point}
