"""Verify gridded forecasts against a gridded analysis: ``probcast verify`` on grids.

:func:`verify_grid` scores every forecast (:class:`~probcast.verify.grid_inputs.GridForecast`,
read lazily with Dask) against the analysis on the same grid, block by block: a block is a
few runs (or one run and a band of grid rows) with all lead times, small enough that the
memory stays bounded whatever the grid. Each block's values become a
:class:`~probcast.dists.Predictive` and are scored by
:func:`probcast.verify.pointwise.case_scores`, the per-case scores of station verification
(CRPS from members, quantiles or parameters; Brier scores from the products' exceedance
probabilities where given, else from the distribution; PIT and rank histograms). The scores
are then summed per lead time (:class:`~probcast.verify.grid_stats.LeadStats`: the domain
means, the same metrics as for stations) and per grid point (maps of mean CRPS and of the
CRPSS against the reference). Every forecast is scored on the runs and lead times all of
them share; a case with a missing analysis or forecast value (a masked area) is dropped
and counted.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from probcast import defaults
from probcast.dists import Predictive
from probcast.schema import OBS_PREFIX
from probcast.verify import grid_results as results
from probcast.verify import skill
from probcast.verify.checks import FLOAT_NOISE
from probcast.verify.evaluate import Verification
from probcast.verify.grid_inputs import FP, FRT, GridField, GridForecast, grid_dims
from probcast.verify.grid_match import check_same_grid
from probcast.verify.pointwise import COVERAGES, case_scores, threshold_label

BLOCK_VALUES = 1 << 22
"""Forecast values (cases x members, quantiles, parameters) loaded per block."""


@dataclass
class GridVerification:
    """Scores of a gridded verification.

    Attributes:
        ver: Tidy scores (grouped ``all`` and ``lead_time``), diagnostics and meta, as for
            stations (``stations`` is empty).
        maps: Per grid point: ``<var>_crps`` and ``<var>_n`` by method and lead time,
            ``<var>_crps_all`` over all lead times, and with a reference ``<var>_crpss`` and
            ``<var>_crpss_all`` (1 - CRPS / CRPS of the reference on the cases both scored).
    """

    ver: Verification
    maps: xr.Dataset


def _thresholds(var: str, given: Mapping[str, Sequence[float]] | None, fields: list) -> list:
    base = given.get(var) if given and var in given else None
    ts = set(defaults.EVENT_THRESHOLDS.get(var, ()) if base is None else base)
    for f in fields:
        ts.update(f.thresholds if f is not None else ())
    return sorted(float(t) for t in ts)


def _positions(index: pd.Index, wanted: np.ndarray) -> np.ndarray:
    return np.asarray(index.get_indexer(pd.Index(wanted)), "int64")


def _common(fields: list[GridField], dim: str) -> np.ndarray:
    common = pd.Index(fields[0].data[dim].values)
    for f in fields[1:]:
        common = common.intersection(pd.Index(f.data[dim].values))
    return np.sort(common.to_numpy())


def _check(values: np.ndarray, f: GridField) -> None:
    where = f"{f.path}: {f.variable} {f.kind}"
    if np.isinf(values).any():
        raise ValueError(f"{where} has infinite values; missing values must be NaN")
    if f.kind == "probabilities" and ((values < -1e-6) | (values > 1 + 1e-6)).any():
        bad = values[(values < -1e-6) | (values > 1 + 1e-6)]
        raise ValueError(f"{where}: {bad.size} probabilities outside [0, 1] (first {bad[0]:g})")
    if f.kind == "quantiles" and values.shape[-1] > 1:
        tol = FLOAT_NOISE * (1.0 + np.abs(values[..., 1:]))
        if (np.diff(values, axis=-1) < -tol).any():
            raise ValueError(f"{where}: percentiles decrease with the level")


def _read(da: xr.DataArray, path: str) -> np.ndarray:
    """The values of a lazy block as float64; a failing read names the file."""
    try:
        return np.asarray(da.values, "float64")
    except Exception as err:  # a damaged chunk: one clear message, not a traceback
        raise ValueError(f"{path}: cannot read {da.name} ({type(err).__name__}: {err})") from None


def _predictive(f: GridField, values: np.ndarray) -> Predictive:
    if f.kind == "params":
        return Predictive(f.variable, "params", values, param_names=f.param_names, family=f.family)
    if f.kind == "quantiles":
        assert f.levels is not None
        return Predictive.from_quantiles(f.variable, f.levels.tolist(), values)
    if f.kind == "members":
        return Predictive.from_members(f.variable, values)
    return Predictive.from_point(f.variable, values)


def _probability_cols(
    probs: dict[float, np.ndarray], obs: np.ndarray, ts: Sequence[float]
) -> dict[str, np.ndarray]:
    """Case columns of a forecast given as exceedance probabilities only (Brier scores)."""
    valid = np.isfinite(obs)
    for p in probs.values():
        valid &= np.isfinite(p)
    cols: dict[str, np.ndarray] = {"valid": valid}
    for t in ts:
        p = np.clip(probs[t], 0.0, 1.0) if t in probs else np.full(obs.shape, np.nan)
        cols[f"p_{threshold_label(t)}"] = np.where(valid, p, np.nan)
        cols[f"o_{threshold_label(t)}"] = np.where(np.isfinite(obs), (obs > t) * 1.0, np.nan)
    return cols


class _Method:
    """One forecast of one variable: its fields, positions and running sums."""

    def __init__(self, fc: GridForecast, var: str, frts: np.ndarray, fps: np.ndarray) -> None:
        self.name = fc.name
        self.form, self.probs = fc.form(var), fc.probabilities(var)
        self.fields = [f for f in (self.form, self.probs) if f is not None]
        self.pos = [
            (_positions(f.data.indexes[FRT], frts), _positions(f.data.indexes[FP], fps))
            for f in self.fields
        ]

    def width(self) -> int:
        """Values per case (members, quantiles, parameters, thresholds)."""
        return sum(1 if f.kind == "point" else int(f.data.shape[-1]) for f in self.fields)

    def load(self, i: int, runs: slice, dim0: str, rows: slice) -> np.ndarray:
        f, (pr, pf) = self.fields[i], self.pos[i]
        sel = f.data.isel({FRT: pr[runs], FP: pf, dim0: rows})
        values = _read(sel, f.path)
        _check(values, f)
        return values


def verify_grid(
    truth: xr.Dataset,
    forecasts: Sequence[GridForecast],
    *,
    reference: str | None = None,
    thresholds: Mapping[str, Sequence[float]] | None = None,
    variables: Sequence[str] | None = None,
    coverages: Sequence[float] = COVERAGES,
    seed: int = 0,
    n_boot: int = skill.N_BOOT,
    truth_name: str = "analysis",
) -> GridVerification:
    """Score gridded forecasts against a gridded analysis.

    Args:
        truth: The analysis, ``obs_<var>`` on ``(time, *grid)`` in canonical units
            (:func:`probcast.verify.grid_inputs.open_truth`).
        forecasts: The forecasts (:func:`probcast.verify.grid_inputs.open_forecast`).
        reference: Name of the forecast the CRPSS is computed against (None: none).
        thresholds: ``{variable: thresholds}``; default
            :data:`probcast.defaults.EVENT_THRESHOLDS` plus the products' thresholds.
        variables: Variables to verify (default: every analysed variable forecast).
        coverages: Nominal central-interval coverages.
        seed: Seed of the randomised PIT and of the bootstrap.
        n_boot: Bootstrap replicates of the CRPSS intervals (whole init dates).
        truth_name: How messages name the analysis (its path).

    Returns:
        The :class:`GridVerification`.

    Raises:
        ValueError: Grids differ, no common run or valid time, nothing to verify, invalid
            forecast values (each message names the file).
    """
    names = [f.name for f in forecasts]
    if not forecasts or len(set(names)) != len(names):
        raise ValueError(f"forecast names must be given and unique, got {names}")
    if reference is not None and reference not in names:
        raise ValueError(f"reference {reference!r} is not one of the forecasts {names}")
    obs_vars = [str(v)[len(OBS_PREFIX) :] for v in truth.data_vars]
    have = {v for f in forecasts for v in f.fields}
    variables = list(variables) if variables else [v for v in obs_vars if v in have]
    missing = [v for v in variables if v not in obs_vars]
    if missing or not variables:
        raise ValueError(
            f"nothing to verify: the analysis {truth_name} has "
            f"{', '.join(OBS_PREFIX + v for v in obs_vars)}; the forecasts have "
            f"{sorted(have)}" + (f"; no analysis of {missing}" if missing else "")
        )
    sums = [
        _verify_variable(truth, forecasts, var, reference, thresholds, coverages, seed, truth_name)
        for var in variables
    ]
    ver = results.verification(sums, reference=reference, seed=seed, n_boot=n_boot)
    ver.meta.update(
        coverages=list(coverages), grid={d: int(truth.sizes[d]) for d in grid_dims(truth)}
    )
    return GridVerification(ver, results.maps_dataset(truth, sums, names, reference))


def _blocks(nr: int, nfp: int, shape: tuple[int, ...], width: int) -> list[tuple[slice, slice]]:
    """``(runs, rows)`` of each block: whole runs when they fit, else bands of grid rows."""
    per_run = nfp * int(np.prod(shape))
    budget = max(1, BLOCK_VALUES // max(1, width))
    run_step = max(1, budget // per_run)
    row_step = shape[0] if run_step > 1 else max(1, budget // max(1, per_run // shape[0]))
    return [
        (slice(r, min(r + run_step, nr)), slice(y, min(y + row_step, shape[0])))
        for r in range(0, nr, run_step)
        for y in range(0, shape[0], row_step)
    ]


def _verify_variable(
    truth: xr.Dataset,
    forecasts: Sequence[GridForecast],
    var: str,
    reference: str | None,
    thresholds: Mapping[str, Sequence[float]] | None,
    coverages: Sequence[float],
    seed: int,
    truth_name: str,
) -> results.Sums:
    obs_da = truth[OBS_PREFIX + var]
    grid = grid_dims(obs_da)
    fcs = [f for f in forecasts if var in f.fields]
    all_fields = [x for f in fcs for x in f.fields[var].values()]
    for x in all_fields:
        check_same_grid(x, truth, truth_name)
        x.data = x.data.transpose(FRT, FP, *grid, ...)
    frts, fps = _common(all_fields, FRT), _common(all_fields, FP)
    if not frts.size or not fps.size:
        raise ValueError(f"{var}: the forecasts have no run and lead time in common")
    valid = frts[:, None] + fps[None, :]
    tidx = _positions(obs_da.indexes["time"], valid.ravel()).reshape(valid.shape)
    if (tidx < 0).all():
        t = obs_da.indexes["time"]
        raise ValueError(
            f"{var}: no forecast valid time ({valid.min()} .. {valid.max()}) is in the "
            f"analysis {truth_name} ({t.min()} .. {t.max()})"
        )
    methods = [_Method(f, var, frts, fps) for f in fcs]
    if reference is not None:
        ref = next((m for m in methods if m.name == reference), None)
        if ref is None or ref.form is None:
            raise ValueError(
                f"reference {reference!r} has no distribution or point forecast of {var}"
            )
    ts = _thresholds(var, thresholds, [m.probs for m in methods])
    shape = tuple(obs_da.sizes[d] for d in grid)
    forms = [(m.name, m.form, m.probs) for m in methods]
    sums = results.Sums.empty(var, frts, fps, tidx, shape, ts, coverages, forms, reference)
    width = max(m.width() for m in methods) + len(ts)
    for block, (rs, ys) in enumerate(_blocks(len(frts), len(fps), shape, width)):
        take = tidx[rs]
        sel = obs_da.isel({"time": np.maximum(take, 0).ravel(), grid[0]: ys})
        obs = _read(sel, truth_name).reshape(*take.shape, -1)
        obs[take < 0] = np.nan
        sums.no_obs += int((~np.isfinite(obs)).sum())
        band = (*take.shape, *sel.shape[1:])
        crps = {}
        for m in methods:
            rng = np.random.default_rng([seed, zlib.crc32(f"{m.name}/{var}".encode()), block])
            cols = _score(m, rs, grid[0], ys, obs.ravel(), ts, coverages, rng)
            sums.add(m.name, cols, band, ys, rs)
            if "crps" in cols:
                crps[m.name] = cols["crps"].reshape(band)
        sums.add_pairs(crps, reference, rs, ys)
    return sums


def _score(
    m: _Method,
    runs: slice,
    dim0: str,
    rows: slice,
    obs: np.ndarray,
    ts: Sequence[float],
    coverages: Sequence[float],
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Per-case scores of one forecast on one block (flattened run, lead, grid order)."""
    values = [m.load(i, runs, dim0, rows) for i in range(len(m.fields))]
    probs: dict[float, np.ndarray] = {}
    if m.probs is not None:
        pv = values[-1].reshape(obs.size, len(m.probs.thresholds))
        probs = {t: pv[:, k] for k, t in enumerate(m.probs.thresholds)}
    if m.form is None:
        return _probability_cols(probs, obs, ts)
    v = values[0].reshape(obs.size, -1) if m.form.kind != "point" else values[0].ravel()
    fc = _predictive(m.form, v).with_probabilities(probs)
    return case_scores(fc, obs, thresholds=ts, coverages=coverages, rng=rng)
