"""Met Office IMPROVER's EMOS fit vs probcast's on the same data (issue 15).

Runs IMPROVER's own estimator,
``improver.calibration.emos_calibration.EstimateCoefficientsForEnsembleCalibration``, on the
training split of ``verif-norway-precip`` (147 Norwegian stations, 6-h precipitation, one
deterministic forecast per row) and probcast's :func:`probcast.baselines.emos.fit_emos` with
the same family on the same rows, interleaved in one session (the machine is shared and
noisy: only ratios from the same run mean anything). It prints, per family and mode
(``global`` / ``local`` = IMPROVER's ``point_by_point=True``), the fit times and the mean CRPS
on the test split, every model scored by the same closed-form CRPS (:mod:`probcast.dists`).

Two Python environments: this script runs in the project's venv and starts IMPROVER in a
separate one (``--improver-python``; IMPROVER is on conda-forge only and pins numpy 2.2 /
scipy 1.15 / iris 3.12). The IMPROVER part is a worker script written to a temporary folder:
it builds IMPROVER site cubes once (not timed), then fits on request; only
``plugin.process(historic_forecasts, truths)`` is timed. How IMPROVER is fed:

- IMPROVER fits one forecast period at a time (``forecast_period`` must be unique), so a
  "fit" is six calls, one per lead time (6..36 h), times summed. The closest probcast
  configuration is ``lead_bins=6`` (one coefficient set per lead, and per station when local);
  probcast's usual ``lead_bins=1`` (lead time as a predictor) is timed too.
- The forecast is deterministic: IMPROVER computes the ensemble variance with ``ddof=1``, so one
  member gives NaN everywhere (a NaN loss, nothing fitted); two equal members give variance 0,
  hence ``scale = |gamma|`` (``delta`` is undetermined) and ``loc = alpha + beta * fc``.
- Missing (station, init) rows: truth NaN (IMPROVER's nanmean skips them), forecast 0 (a NaN
  forecast turns IMPROVER's whole loss into its ``BAD_VALUE``).
- IMPROVER's defaults otherwise: Nelder-Mead, ``tolerance=0.02``, ``max_iterations=1000``,
  its initial guess (OLS, or ``[0, 1, 0, 1]`` where a truth is missing).
- Two stations (18700, 18701) share their coordinates; IMPROVER's ``point_by_point`` finds a
  site's rows by latitude/longitude, so the second is moved 0.001 degree north.

Usage::

    python3.11 -m venv /tmp/improver-venv
    uv pip install --python /tmp/improver-venv/bin/python "scitools-iris==3.12.*" \\
        "numpy==2.2.*" "scipy==1.15.*" "pandas<3" cf-units statsmodels joblib
    git clone https://github.com/metoppv/improver /tmp/improver   # source on PYTHONPATH
    PROBCAST_DATA_MIRROR=../shared/data .venv/bin/python benchmarks/improver_emos.py \\
        --improver-python /tmp/improver-venv/bin/python --improver-src /tmp/improver
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from probcast.baselines import emos, emos_fit
from probcast.dists import Predictive

FAMILIES = {"norm": "normal", "truncnorm": "truncated_normal"}
"""IMPROVER distribution -> probcast family of the same law (latent loc/scale)."""
IMPROVER = "IMPROVER (6 fits, one per lead)"
MIN_SCALE = 1e-6
"""Floor (mm) on IMPROVER's fitted scale ``|gamma|`` when scoring (it can stay at 0)."""

WORKER = r"""
import json, sys, time, warnings
import numpy as np

def build(npz_path):
    from iris.coords import AuxCoord, DimCoord
    from improver.spotdata.build_spotdata_cube import build_spotdata_cube
    d = np.load(npz_path)
    lat = d["lat"].astype(np.float64).copy()
    for i in range(len(lat)):  # co-located sites: IMPROVER selects sites by lat/lon
        while np.any(np.isclose(lat[i], lat[:i]) & np.isclose(d["lon"][i], d["lon"][:i])):
            lat[i] += 1e-3
    inits, n_s = np.unique(d["init"]), len(lat)
    ti, si = np.searchsorted(inits, d["init"]), d["site"]
    units = "seconds since 1970-01-01 00:00:00"
    cubes = {}
    for lead in np.unique(d["lead"]):
        sel = d["lead"] == lead
        fc = np.zeros((len(inits), n_s), np.float32)  # missing rows: forecast 0, truth NaN
        ob = np.full((len(inits), n_s), np.nan, np.float32)
        fc[ti[sel], si[sel]] = d["fc"][sel]
        ob[ti[sel], si[sel]] = d["obs"][sel]
        def cube(data, forecast):
            time_c = DimCoord((inits + int(lead) * 3600).astype(np.int64), "time", units=units)
            dims, scal = [time_c], None
            if forecast:  # two equal members: variance 0 (one member: NaN with ddof=1)
                scal = [AuxCoord(np.int32(int(lead) * 3600), "forecast_period", units="s")]
                dims = [DimCoord(np.arange(2, dtype=np.int32), "realization", units="1"), time_c]
                data = np.stack([data, data])
            c = build_spotdata_cube(
                data, "lwe_thickness_of_precipitation_amount", "mm",
                d["alt"].astype(np.float32), lat.astype(np.float32),
                d["lon"].astype(np.float32), [f"{i:05d}" for i in range(n_s)],
                scalar_coords=scal, additional_dims=dims)
            frt = AuxCoord(inits.astype(np.int64), "forecast_reference_time", units=units)
            c.add_aux_coord(frt, c.coord_dims("time"))
            return c
        cubes[float(lead)] = (cube(fc, True), cube(ob, False))
    return cubes

def fit(cubes, dist, local, out_path):
    from improver.calibration.emos_calibration import (
        EstimateCoefficientsForEnsembleCalibration)
    coefs, total, retried = {}, 0.0, []
    for lead in sorted(cubes):
        for default_guess in (False, True):  # IMPROVER's default first
            hf, truth = cubes[lead][0].copy(), cubes[lead][1].copy()
            plugin = EstimateCoefficientsForEnsembleCalibration(
                dist, point_by_point=local, use_default_initial_guess=default_guess)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                try:
                    result = plugin.process(hf, truth)
                except ValueError as err:  # failed attempt: not timed, retried
                    retried.append([float(lead), str(err)])
                    continue
                total += time.perf_counter() - t0
            break
        else:
            return None, retried  # IMPROVER failed on this lead with both initial guesses
        for c in result:
            coefs[c.name().rsplit("_", 1)[-1] + f"_{lead:g}"] = np.asarray(c.data, np.float64)
    np.savez(out_path, **coefs)
    return total, retried

def main():
    import cf_units, iris, numpy, scipy, statsmodels
    cubes = build(sys.argv[1])
    print(json.dumps({"ready": True, "iris": iris.__version__, "numpy": numpy.__version__,
                      "scipy": scipy.__version__, "cf_units": cf_units.__version__,
                      "statsmodels": statsmodels.__version__}), flush=True)
    for line in sys.stdin:
        dist, mode, out = line.split()
        seconds, retried = fit(cubes, dist, mode == "local", out)
        print(json.dumps({"seconds": seconds, "retried": retried}), flush=True)

main()
"""


class ImproverWorker:
    """The IMPROVER worker process: one JSON line per request on its stdout."""

    def __init__(self, python: str, src: str | None, data: Path, folder: Path) -> None:
        script = folder / "improver_worker.py"
        script.write_text(WORKER)
        env = dict(os.environ)
        if src:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [src, env.get("PYTHONPATH")]))
        self.folder = folder
        self.proc = subprocess.Popen(
            [python, str(script), str(data)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.versions = self._reply()

    def _reply(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"IMPROVER worker exited with code {self.proc.wait()}")
        return dict(json.loads(line))

    def fit(self, dist: str, mode: str) -> tuple[float | None, dict[str, np.ndarray], list[Any]]:
        """Fit IMPROVER's EMOS: summed ``process`` time, coefficients, leads retried.

        A lead whose fit raises ``ValueError`` with IMPROVER's computed initial guess is
        refitted with its default guess ``[0, 1, 0, 1]`` (the failed attempt is not timed).
        """
        out = self.folder / f"coefs_{dist}_{mode}.npz"
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{dist} {mode} {out}\n")
        self.proc.stdin.flush()
        reply = self._reply()
        if reply["seconds"] is None:  # failed: no coefficients
            return None, {}, reply["retried"]
        with np.load(out) as coefs:
            return float(reply["seconds"]), {k: coefs[k] for k in coefs.files}, reply["retried"]

    def close(self) -> None:
        """End the worker (closing its input ends its loop)."""
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def improver_available(python: str, src: str | None) -> str | None:
    """None if ``python`` imports IMPROVER's EMOS module, else the reason it does not."""
    if not Path(python).exists():
        return f"{python} does not exist"
    env = dict(os.environ, PYTHONPATH=src or "")
    probe = "import statsmodels, improver.calibration.emos_calibration"
    done = subprocess.run(
        [python, "-c", probe], capture_output=True, text=True, env=env, check=False
    )
    return None if done.returncode == 0 else done.stderr.strip().splitlines()[-1]


def site_arrays(train: pd.DataFrame) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Training rows as the worker's arrays, and station -> site index."""
    codes, uniq = pd.factorize(train["station"].astype(str), sort=True)
    meta = train.groupby(train["station"].astype(str))[["latitude", "longitude", "altitude"]]
    static = meta.first().loc[uniq]
    arrays = {
        "site": codes,
        "init": train["init_time"].astype("int64").to_numpy() // 10**9,
        "lead": train["lead_time"].to_numpy(np.float64),
        "fc": train["fc_tp"].to_numpy(np.float64),
        "obs": train["obs_tp"].to_numpy(np.float64),
        "lat": static["latitude"].to_numpy(np.float64),
        "lon": static["longitude"].to_numpy(np.float64),
        "alt": static["altitude"].to_numpy(np.float64),
    }
    return arrays, {str(s): i for i, s in enumerate(uniq)}


def improver_crps(coefs: dict[str, np.ndarray], family: str, test: pd.DataFrame,
                  sites: dict[str, int]) -> float:  # fmt: skip
    """Test CRPS of IMPROVER's coefficients: ``loc = a + b fc``, ``scale = |gamma|`` (var 0)."""
    site = test["station"].astype(str).map(sites).to_numpy()
    loc, scale = np.empty(len(test)), np.empty(len(test))
    leads = test["lead_time"].to_numpy(np.float64)
    for lead in np.unique(leads):
        sel = leads == lead
        a, b, g = (np.asarray(coefs[f"{k}_{lead:g}"]) for k in ("alpha", "beta", "gamma"))
        idx = site[sel] if a.ndim else ()  # per site (local) or one value (global)
        a, b, g = (np.broadcast_to(v, a.shape)[idx] for v in (a, b, g))
        loc[sel] = a + b * test["fc_tp"].to_numpy(np.float64)[sel]
        scale[sel] = np.abs(g)
    params = {"loc": loc, "scale": np.maximum(scale, MIN_SCALE)}
    return _mean_crps(family, params, test)


def _mean_crps(family: str, params: dict[str, np.ndarray], test: pd.DataFrame) -> float:
    fcst = Predictive.from_params("tp", family, params)
    return float(np.mean(np.asarray(fcst.crps(test["obs_tp"].to_numpy()))))


def probcast_fit(
    train: pd.DataFrame, family: str, local: bool, bins: int, before: bool = False
) -> emos.EmosModel:
    """probcast's EMOS with ``family``; ``bins`` lead-time bins (6: one per lead).

    ``before``: with the previous solver (float64 L-BFGS-B, ``emos_fit.fit_lbfgs``, now the
    fallback for families without second derivatives) instead of the batched Newton fit.
    """
    newton = emos.fit_groups

    def lbfgs(*args: Any, start: Any = None, slots: Any = None, **kwargs: Any) -> Any:
        return emos_fit.fit_lbfgs(*args, **kwargs)  # from the prior, on its own kernels

    emos.fit_groups = lbfgs if before else newton  # type: ignore[assignment]
    try:
        return emos.fit_emos(train, "tp", family=family, by_station=local, lead_bins=bins)
    finally:
        emos.fit_groups = newton


def _timed(fn: Any, *args: Any) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t0, out


def main() -> int:
    """Interleave IMPROVER and probcast fits; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--improver-python", default="/tmp/improver-venv/bin/python")
    parser.add_argument("--improver-src", default="/tmp/improver",
                        help="IMPROVER checkout put on PYTHONPATH ('' if installed)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=2, help="fits per method")
    parser.add_argument("--dists", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--modes", nargs="+", default=["global", "local"],
                        choices=["global", "local"])  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--before", action="store_true",
                        help="also time the former solver (L-BFGS-B) in the same run")  # fmt: skip
    args = parser.parse_args()
    why = improver_available(args.improver_python, args.improver_src)
    if why:
        print(f"SKIP: IMPROVER is not importable from {args.improver_python} ({why}); "
              "see this script's docstring to set up its venv")  # fmt: skip
        return 0
    mirror = Path(__file__).resolve().parents[2] / "shared" / "data"
    if mirror.is_dir():
        os.environ.setdefault("PROBCAST_DATA_MIRROR", str(mirror))
    from probcast.data.prepare import prepare

    prepared = prepare("verif-norway-precip")
    train = pd.read_parquet(prepared.paths["train"])
    test = pd.read_parquet(prepared.paths["test"])
    arrays, sites = site_arrays(train)
    results: dict[tuple[str, str, str], dict[str, Any]] = {}
    failed: set[tuple[str, str]] = set()

    def record(key: tuple[str, str, str], seconds: float, crps: float) -> None:
        entry = results.setdefault(key, {"times": [], "crps": crps})
        entry["times"].append(seconds)

    with tempfile.TemporaryDirectory(prefix="improver_emos_") as tmp:
        np.savez(Path(tmp) / "train.npz", **arrays)
        worker = ImproverWorker(args.improver_python, args.improver_src or None,
                                Path(tmp) / "train.npz", Path(tmp))  # fmt: skip
        try:
            for _ in range(args.repeats):
                for dist in args.dists:
                    family = FAMILIES[dist]
                    for mode in args.modes:
                        local = mode == "local"
                        seconds, coefs, retried = worker.fit(dist, mode)
                        for lead, err in retried:
                            note = f"lead {lead:g} h failed, refitted from [0, 1, 0, 1]"
                            print(f"IMPROVER {dist} {mode}: {note}: {err[:120]}")
                        if seconds is None:
                            print(f"IMPROVER {dist} {mode}: FAILED (both initial guesses)")
                            failed.add((dist, mode))
                        else:
                            crps = improver_crps(coefs, family, test, sites)
                            record((dist, mode, IMPROVER), seconds, crps)
                        for bins in (6, 1):
                            for before in (False, True) if args.before else (False,):
                                label = f"probcast {'L-BFGS (before) ' * before}lead_bins={bins}"
                                seconds, model = _timed(
                                    probcast_fit, train, family, local, bins, before
                                )
                                crps = _mean_crps(family, model.predict(test), test)
                                record((dist, mode, label), seconds, crps)
        finally:
            worker.close()
    print(f"verif-norway-precip: {len(train)} training rows, {len(sites)} stations, "
          f"{len(test)} test rows; IMPROVER {worker.versions}")  # fmt: skip
    print("| family | mode | method | fits | first s | median s | IMPROVER / this | test CRPS mm |")
    print("|---|---|---|---|---|---|---|---|")
    rows = []
    for (dist, mode, label), entry in results.items():
        ts = entry["times"]
        median = statistics.median(ts[1:] or ts)
        ref = results.get((dist, mode, IMPROVER), {"times": [float("nan")]})["times"]
        ratio = statistics.median(ref[1:] or ref) / median
        rows.append({"dist": dist, "mode": mode, "method": label, "times": ts,
                     "median_s": median, "ratio": ratio, "crps": entry["crps"]})  # fmt: skip
        print(f"| {dist} ({FAMILIES[dist]}) | {mode} | {label} | {len(ts)} | {ts[0]:.2f} | "
              f"{median:.2f} | {ratio:.1f} | {entry['crps']:.5f} |")  # fmt: skip
    for dist, mode in sorted(failed):
        print(f"IMPROVER {dist} {mode}: failed at some lead with both initial guesses")
    if args.json:
        from probcast.io import write_json

        write_json(args.json, {"versions": worker.versions, "rows": rows,
                                "failed": sorted(failed)})  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
