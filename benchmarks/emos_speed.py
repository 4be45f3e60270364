"""Local EMOS fit time on a real benchmark set: the old fit vs the new one (issue 15).

Fits local EMOS (``fit_emos(..., by_station=True)``: a global fit, then one coefficient set
per station, jointly) on the training part of ``verif-norway-precip`` (147 Norwegian
stations, 6-h precipitation, censored logistic) and prints, per method, the wall time of
the first fit in the process and the median of the following ones, the ratio to the old
fit and the mean CRPS on the test part:

- ``old``: the implementation before issue 15, copied below (``OLD IMPLEMENTATION``): a
  float32 loss built and ``jax.jit``-compiled on every fit, scipy's default L-BFGS-B
  tolerances.
- ``lbfgs``: the first issue-15 fit, kept as :func:`probcast.baselines.emos_fit.fit_lbfgs`
  (the fallback for families without second derivatives): one compiled float64 per-row
  kernel per family and row bucket, host-side sparse reductions, L-BFGS-B with tight
  tolerances (about 190 loss evaluations).
- ``new``: :func:`probcast.baselines.emos_fit.fit_groups`: batched damped Newton with the
  exact per-row Hessian, warm-started on subsamples, the slow groups compacted.
- ``improver-like`` (``--improver``): NOT Met Office IMPROVER. IMPROVER
  (github.com/metoppv/improver) is distributed on conda-forge only, which cannot be
  installed on the development machine, and the ``improver`` package on PyPI is an unrelated
  placeholder. This is a reimplementation of its estimator's strategy (scipy ``minimize``
  with IMPROVER's default method, Nelder-Mead, ``tol=0.02``, ``maxiter=1000``, one station
  at a time as in its ``point_by_point`` mode, CRPS in NumPy) applied to the same family and
  parametrisation as ours (IMPROVER itself offers only normal and truncated normal).

Usage (the data come from the mirror on machines without internet)::

    PROBCAST_DATA_MIRROR=../shared/data .venv/bin/python benchmarks/emos_speed.py
    ... --repeats 3 --improver     # more fits per method; add the IMPROVER-like estimator
    ... --only new                 # one method in a fresh process (time it from outside)
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit

from probcast import dists
from probcast.baselines import emos, emos_fit
from probcast.dists import Predictive
from probcast.dists._common import _SCALE_OFFSET, MIN_REL_SCALE


# ---- OLD IMPLEMENTATION (src/probcast/baselines/emos.py before issue 15), kept verbatim ----
def _old_loss_fn(family: str, n_groups: int, spread: float, shrinkage: float):  # type: ignore[no-untyped-def]
    """Sum over groups of the mean CRPS (in spread units) plus a ridge towards ``prior``."""
    dist = dists.get(family)

    def loss(theta, x, center, y, groups, counts, prior):  # type: ignore[no-untyped-def]
        raw = jnp.einsum("rf,rpf->rp", x, theta[groups])
        crps = dist.crps(dist.constrain(raw, center, jnp.asarray(spread)), y) / spread
        per_group = jax.ops.segment_sum(crps, groups, num_segments=n_groups) / counts
        return jnp.sum(per_group) + shrinkage * jnp.sum((theta - prior) ** 2)

    return jax.jit(jax.value_and_grad(loss))


def old_fit_groups(  # type: ignore[no-untyped-def]
    family, x, center, y, groups, prior, spread, shrinkage, maxiter=500
) -> np.ndarray:
    """Minimise the per-group mean CRPS with L-BFGS; returns ``theta`` like ``prior``."""
    n_groups = prior.shape[0]
    counts = np.maximum(np.bincount(groups, minlength=n_groups), 1).astype(np.float32)
    value_and_grad = _old_loss_fn(family, n_groups, spread, shrinkage)
    data = (x, center.astype(np.float32), y.astype(np.float32), groups, counts)
    args = (*(jnp.asarray(a) for a in data), jnp.asarray(prior, dtype=jnp.float32))

    def fun(flat: np.ndarray) -> tuple[float, np.ndarray]:
        theta = jnp.asarray(flat.reshape(prior.shape), dtype=jnp.float32)
        val, grad = value_and_grad(theta, *args)
        return float(val), np.asarray(grad, dtype=np.float64).ravel()

    res = minimize(fun, prior.ravel().astype(np.float64), jac=True, method="L-BFGS-B",
                   options={"maxiter": maxiter})  # fmt: skip
    theta = res.x.reshape(prior.shape)
    if not np.all(np.isfinite(theta)):
        raise FloatingPointError(f"EMOS fit for family {family!r} diverged: {res.message}")
    return theta


# ---- end of the old implementation ----


def _softplus(v: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, v)


def _clogis_crps(theta: np.ndarray, x: np.ndarray, fc: np.ndarray, y: np.ndarray, spread: float):  # type: ignore[no-untyped-def]
    """Mean CRPS (spread units) of our censored-logistic EMOS, NumPy float64 (lower = 0)."""
    raw = x @ theta.reshape(2, -1).T
    loc = fc + spread * raw[:, 0]
    s = spread / (np.pi / np.sqrt(3.0)) * (_softplus(raw[:, 1] + _SCALE_OFFSET) + MIN_REL_SCALE)
    w, lo = (y - loc) / s, -loc / s
    z = np.maximum(w, lo)
    direct = z + 2 * _softplus(-z) - 1 + expit(lo) - _softplus(lo)
    stable = (z - lo) + 2 * _softplus(-z) - _softplus(-lo) - expit(-lo)
    return float(np.mean(s * (np.abs(w - z) + np.where(lo > 0, stable, direct))) / spread)


def improver_like(train: pd.DataFrame, var: str, model: emos.EmosModel) -> emos.EmosModel:
    """IMPROVER's estimator strategy (reimplemented, NOT IMPROVER): Nelder-Mead per station.

    Uses ``model``'s standardisation and spread; fits the global coefficients, then every
    station with at least ``min_rows`` rows from them (one bin), like IMPROVER's
    ``point_by_point`` mode with its default ``tol=0.02`` and ``maxiter=1000``.
    """
    fc, obs = f"fc_{var}", f"obs_{var}"
    rows = train.dropna(subset=[fc, obs, *model.features])
    x = model.design(rows).astype(np.float64)
    f, y = rows[fc].to_numpy(np.float64), rows[obs].to_numpy(np.float64)

    def nm(sel: np.ndarray, start: np.ndarray) -> np.ndarray:
        args = (x[sel], f[sel], y[sel], model.spread)
        res = minimize(_clogis_crps, start.ravel(), args=args, method="Nelder-Mead",
                       tol=0.02, options={"maxiter": 1000})  # fmt: skip
        return np.asarray(res.x).reshape(start.shape)

    start = np.zeros((2, x.shape[1]))
    start[0, 0] = float(np.mean(y - f)) / model.spread
    glob = nm(np.ones(len(rows), bool), start)
    out = emos.EmosModel(**{**model.__dict__, "global_coefs": [glob.tolist()], "station_coefs": {}})
    stations = rows["station"].astype(str).to_numpy()
    for st in np.unique(stations):
        sel = stations == st
        if sel.sum() >= model.min_rows:
            out.station_coefs[str(st)] = [nm(sel, glob).tolist()]
    return out


def test_crps(model: emos.EmosModel, test: pd.DataFrame) -> float:
    """Mean CRPS over the test rows with a forecast and an observation."""
    test = test.dropna(subset=[f"fc_{model.var}", f"obs_{model.var}"])
    fcst = Predictive.from_params(model.var, model.family, model.predict(test))
    return float(np.mean(np.asarray(fcst.crps(test[f"obs_{model.var}"].to_numpy()))))


def main() -> None:
    """Time the methods alternately and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="fits per method")
    parser.add_argument("--only", choices=("old", "lbfgs", "new"), help="one method only")
    parser.add_argument("--improver", action="store_true", help="add the IMPROVER-like fit")
    args = parser.parse_args()
    mirror = Path(__file__).resolve().parents[2] / "shared" / "data"  # beside the checkout
    if mirror.is_dir():
        os.environ.setdefault("PROBCAST_DATA_MIRROR", str(mirror))
    from probcast.data.prepare import prepare

    prepared = prepare("verif-norway-precip")
    train = pd.read_parquet(prepared.paths["train"])
    test = pd.read_parquet(prepared.paths["test"])
    new_fit_groups = emos.fit_groups
    solvers = {"old": old_fit_groups, "lbfgs": emos_fit.fit_lbfgs, "new": new_fit_groups}

    def fit(kind: str) -> Callable[[], Any]:
        def run() -> emos.EmosModel:
            emos.fit_groups = solvers[kind]  # type: ignore[assignment]
            try:
                return emos.fit_emos(train, "tp", by_station=True)
            finally:
                emos.fit_groups = new_fit_groups

        return run

    jnp.zeros(1).block_until_ready()  # JAX start-up outside every timing
    methods = [args.only] if args.only else ["old", "lbfgs", "new"]
    times: dict[str, list[float]] = {m: [] for m in methods}
    models: dict[str, emos.EmosModel] = {}
    for _ in range(args.repeats):
        for m in methods:  # alternate: old, lbfgs, new, old, ...
            t0 = time.perf_counter()
            models[m] = fit(m)()
            times[m].append(time.perf_counter() - t0)
    if args.improver:
        t0 = time.perf_counter()
        models["improver-like"] = improver_like(train, "tp", models[methods[-1]])
        times["improver-like"] = [time.perf_counter() - t0]
    base = statistics.median(times["old"][1:] or times["old"]) if "old" in times else None
    print(f"verif-norway-precip: {len(train)} training rows, {train['station'].nunique()} "
          f"stations, {len(test)} test rows; local EMOS, censored logistic")  # fmt: skip
    print("| method | fits | first fit s | median later s | old / this | test CRPS mm |")
    print("|---|---|---|---|---|---|")
    for m, ts in times.items():
        later = statistics.median(ts[1:]) if len(ts) > 1 else float("nan")
        ref = later if len(ts) > 1 else ts[0]
        ratio = f"{base / ref:.2f}" if base else "-"
        print(f"| {m} | {len(ts)} | {ts[0]:.2f} | {later:.2f} | {ratio} | "
              f"{test_crps(models[m], test):.5f} |")  # fmt: skip


if __name__ == "__main__":
    main()
