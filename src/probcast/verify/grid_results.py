"""From the running sums of a gridded verification to tidy scores, meta and maps.

The tidy table has the station layout (:mod:`probcast.verify.aggregate`), grouped ``all``
(the domain mean over every point, run and lead time) and ``lead_time``. The CRPSS
interval is the block bootstrap of :mod:`probcast.verify.skill` over whole init dates,
run on the per-run sums of the paired CRPS (the same skill as on the cases: the sums of
the resampled blocks are the same); so are the spread-skill interval (per-run sums of the
predictive variance and squared error) and the PIT noise (per-run PIT histograms).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from probcast.schema import VARIABLES
from probcast.verify import aggregate, scores, skill
from probcast.verify import calibration as cal
from probcast.verify.evaluate import Verification
from probcast.verify.grid_inputs import FP, GridField, grid_dims
from probcast.verify.grid_stats import LeadStats


@dataclass
class Sums:
    """Everything a gridded verification of one variable accumulated.

    Attributes:
        variable: Canonical variable name.
        frts: Runs scored (common to every forecast).
        fps: Lead times scored.
        tidx: Analysis time index of each (run, lead) (-1: no analysis).
        methods: ``(name, distribution field or None, probabilities field or None)``.
        thresholds: Event thresholds scored.
        stats: Per method, the :class:`~probcast.verify.grid_stats.LeadStats`.
        crps_sum: Per method, the CRPS summed over runs, ``(lead, *grid)``.
        crps_n: Per method, the cases in ``crps_sum``.
        pair: Per method but the reference, CRPS sums of it and of the reference on the
            cases both scored, ``(lead, *grid)`` each.
        runs: The same pair summed per ``(run, lead)``.
        spread: Per method, the predictive variance, the squared error of the mean and
            the count of the cases where both are finite, summed per ``(run, lead)``:
            ``(3, runs, leads)``.
        pit: Per method, the PIT histogram per ``(run, lead)``.
        no_obs: Cases without an analysis value.
        n_points: Grid points.
    """

    variable: str
    frts: np.ndarray
    fps: np.ndarray
    tidx: np.ndarray
    methods: list[tuple[str, GridField | None, GridField | None]]
    thresholds: list[float]
    stats: dict[str, LeadStats]
    crps_sum: dict[str, np.ndarray]
    crps_n: dict[str, np.ndarray]
    pair: dict[str, tuple[np.ndarray, np.ndarray]]
    runs: dict[str, tuple[np.ndarray, np.ndarray]]
    spread: dict[str, np.ndarray]
    pit: dict[str, np.ndarray]
    no_obs: int
    n_points: int = 0

    @classmethod
    def empty(
        cls,
        variable: str,
        frts: np.ndarray,
        fps: np.ndarray,
        tidx: np.ndarray,
        shape: tuple[int, ...],
        thresholds: list[float],
        coverages: Sequence[float],
        methods: list[tuple[str, GridField | None, GridField | None]],
        reference: str | None,
    ) -> Sums:
        """Zero sums for ``methods`` on a grid of ``shape``."""
        nr, nfp = tidx.shape
        stats = {
            n: LeadStats(nfp, thresholds, coverages, _n_members(form)) for n, form, _ in methods
        }
        scored = [n for n, form, _ in methods if form is not None]
        zeros = np.zeros((nfp, *shape))
        paired = [n for n in scored if reference is not None and n != reference]
        return cls(
            variable, frts, fps, tidx, methods, thresholds, stats,
            {n: zeros.copy() for n in scored}, {n: zeros.copy() for n in scored},
            {n: (zeros.copy(), zeros.copy()) for n in paired},
            {n: (np.zeros((nr, nfp)), np.zeros((nr, nfp))) for n in paired},
            {n: np.zeros((3, nr, nfp)) for n in scored},
            {n: np.zeros((nr, nfp, cal.PIT_BINS)) for n in scored},
            no_obs=0, n_points=int(np.prod(shape)),
        )  # fmt: skip

    def add(
        self,
        name: str,
        cols: dict[str, np.ndarray],
        band: tuple[int, ...],
        rows: slice,
        runs: slice,
    ) -> None:
        """Add one block's case columns of forecast ``name`` (cases in ``band`` order).

        ``band``: ``(runs, leads, *grid rows and columns)`` of the block; ``rows`` its grid
        rows, ``runs`` its runs.
        """
        nfp = band[1]
        points = int(np.prod(band[2:]))
        lead = np.broadcast_to(np.arange(nfp)[None, :, None], (band[0], nfp, points))
        self.stats[name].add(cols, lead.ravel())
        if name in self.crps_sum:
            c = cols["crps"].reshape(band)
            self.crps_sum[name][:, rows] += np.nansum(c, axis=0)
            self.crps_n[name][:, rows] += np.isfinite(c).sum(axis=0)
            self._add_per_run(name, cols, (band[0], nfp, points), runs)

    def _add_per_run(
        self, name: str, cols: dict[str, np.ndarray], shape: tuple[int, int, int], runs: slice
    ) -> None:
        """The per-run sums of the spread-skill interval and the PIT noise."""
        valid = np.asarray(cols["valid"], bool).reshape(shape)
        if "var" in cols and "se" in cols:
            var, se = (np.asarray(cols[c], "float64").reshape(shape) for c in ("var", "se"))
            both = valid & np.isfinite(var) & np.isfinite(se)
            self.spread[name][0][runs] += np.where(both, var, 0.0).sum(axis=2)
            self.spread[name][1][runs] += np.where(both, se, 0.0).sum(axis=2)
            self.spread[name][2][runs] += both.sum(axis=2)
        if "pit" in cols:
            pit = np.asarray(cols["pit"], "float64").reshape(shape)
            ok = valid & np.isfinite(pit)
            k = scores.probability_bins(np.where(ok, pit, 0.0), cal.PIT_BINS)
            cell = np.arange(shape[0] * shape[1]).reshape(shape[:2])[..., None]
            flat = np.bincount(
                (cell * cal.PIT_BINS + k)[ok], minlength=shape[0] * shape[1] * cal.PIT_BINS
            )
            self.pit[name][runs] += flat.reshape(shape[0], shape[1], cal.PIT_BINS)

    def add_pairs(
        self, crps: dict[str, np.ndarray], reference: str | None, runs: slice, rows: slice
    ) -> None:
        """Add the CRPS of each forecast and of the reference on the cases both scored."""
        ref = crps.get(reference) if reference is not None else None
        if ref is None:
            return
        for name, (ps, pr) in self.pair.items():
            c = crps[name]
            both = np.isfinite(c) & np.isfinite(ref)
            cs, rs = np.where(both, c, 0.0), np.where(both, ref, 0.0)
            ps[:, rows] += cs.sum(axis=0)
            pr[:, rows] += rs.sum(axis=0)
            grid_axes = tuple(range(2, cs.ndim))
            self.runs[name][0][runs] += cs.sum(axis=grid_axes)
            self.runs[name][1][runs] += rs.sum(axis=grid_axes)

    @property
    def n_cases(self) -> int:
        """Cases per forecast: runs x lead times x grid points."""
        return int(self.tidx.size * self.n_points)

    @functools.cached_property
    def blocks(self) -> np.ndarray:
        """Bootstrap block of every run: its init date (:func:`skill.init_date_blocks`)."""
        return skill.init_date_blocks(self.frts)

    def lead_keys(self) -> list[str]:
        """Lead times in hours as group keys (``6``, ``24``)."""
        return [f"{pd.Timedelta(p) / pd.Timedelta(hours=1):g}" for p in self.fps]


def _n_members(form: GridField | None) -> int | None:
    return int(form.data.shape[-1]) if form is not None and form.kind == "members" else None


def describe(form: GridField | None, probs: GridField | None) -> dict[str, Any]:
    """The ``meta.forms`` entry of a forecast (the form scored, its files)."""
    files = [f.path for f in (form, probs) if f is not None]
    thresholds = list(probs.thresholds) if probs is not None else []
    if form is None:
        return {"kind": "probabilities", "family": None, "n_members": None, "levels": None,
                "thresholds": thresholds, "files": files}  # fmt: skip
    n_members = int(form.data.shape[-1]) if form.kind == "members" else None
    levels = [float(a) for a in form.levels] if form.levels is not None else None
    return {"kind": form.kind, "family": form.family, "n_members": n_members,
            "levels": levels, "thresholds": thresholds, "files": files}  # fmt: skip


def _dropped(s: Sums, name: str, truth_cases: int) -> dict[str, int]:
    st = s.stats[name]
    n_bad = int(st.n_dropped.sum())
    counts = {
        "cases": s.n_cases,
        "missing_observation": s.no_obs,
        "missing_forecast": max(0, n_bad - s.no_obs),
    }
    if st.n.sum() == 0:
        raise ValueError(
            f"nothing verified: forecast {name!r}, {s.variable}: none of its {s.n_cases} "
            f"cases has both an analysis and a forecast value ({s.no_obs} without analysis)"
        )
    return counts


def _rows(s: Sums, name: str) -> list[tuple[str, str, str, str, str, float]]:
    st = s.stats[name]
    groups = [("all", "all", st.metrics(), slice(None))]
    groups += [
        ("lead_time", k, st.metrics(i), slice(i, i + 1)) for i, k in enumerate(s.lead_keys())
    ]
    rows = []
    for by, key, metrics, leads in groups:
        if name in s.spread:
            metrics.update(_noise(s, name, leads))
        rows += [(name, s.variable, by, key, m, v) for m, v in metrics.items()]
    return rows


def _noise(s: Sums, name: str, leads: slice) -> dict[str, float]:
    """PIT noise and spread-skill interval of the ``leads`` from the per-run sums.

    Runs of one init date are one block, as the cases of station verification are.
    """
    by_date = np.zeros((int(s.blocks.max(initial=-1)) + 1, cal.PIT_BINS))
    np.add.at(by_date, s.blocks, s.pit[name][:, leads].sum(axis=1))
    var, se, n = s.spread[name][:, :, leads].sum(axis=2)
    var, se = np.where(n > 0, var, np.nan), np.where(n > 0, se, np.nan)  # runs without a case
    lo, hi = cal.spread_skill_interval(var, se, s.blocks, s.stats[name].n_members)
    noise = cal.pit_noise_of_counts(by_date)
    return {"spread_skill_lo": lo, "spread_skill_hi": hi, "pit_noise": noise}


def _crpss_rows(
    s: Sums, reference: str, *, seed: int, n_boot: int
) -> list[tuple[str, str, str, str, str, float]]:
    rows = []
    for name, (rs, rr) in s.runs.items():
        groups = [("all", "all", rs.sum(axis=1), rr.sum(axis=1))]
        groups += [("lead_time", k, rs[:, i], rr[:, i]) for i, k in enumerate(s.lead_keys())]
        for by, key, a, b in groups:
            if b.sum() <= 0:
                continue
            sk = skill.bootstrap_skill(a, b, s.blocks, n_boot=n_boot, seed=seed)
            for metric, v in (("crpss", sk.value), ("crpss_lo", sk.lo), ("crpss_hi", sk.hi)):
                rows.append((name, s.variable, by, key, metric, v))
    return rows


_MATCHING = ("cases", "forecast_rows_without_truth", "truth_rows_without_forecast")
"""Case counts of ``meta.matching`` (cases: runs x leads x points; without truth: cases
whose valid time the analysis lacks)."""


def verification(
    sums: Sequence[Sums], *, reference: str | None, seed: int, n_boot: int
) -> Verification:
    """The tidy scores, diagnostics and meta of every variable."""
    rows: list[tuple[str, str, str, str, str, float]] = []
    diags: dict[str, dict[str, Any]] = {}
    forms: dict[str, dict[str, Any]] = {}
    matching: dict[str, dict[str, int]] = {}
    dropped: dict[str, dict[str, Any]] = {}
    for s in sums:
        for name, form, probs in s.methods:
            rows += _rows(s, name)
            diags.setdefault(name, {})[s.variable] = s.stats[name].diagnostics()
            forms.setdefault(name, {})[s.variable] = describe(form, probs)
            dropped.setdefault(name, {})[s.variable] = _dropped(s, name, s.n_cases)
            m = matching.setdefault(name, dict.fromkeys(_MATCHING, 0))
            m["cases"] += s.n_cases
            m["forecast_rows_without_truth"] += int((s.tidx < 0).sum()) * s.n_points
        if reference is not None:
            rows += _crpss_rows(s, reference, seed=seed, n_boot=n_boot)
    table = pd.DataFrame(rows, columns=list(aggregate.TIDY_COLUMNS))
    meta = {
        "kind": "grid",
        "reference": reference,
        "by": ["all", "lead_time"],
        "variables": [s.variable for s in sums],
        "thresholds": {s.variable: s.thresholds for s in sums},
        "seed": seed,
        "n_boot": n_boot,
        "confidence": skill.CONFIDENCE,
        "skipna": True,
        "forms": forms,
        "matching": matching,
        "dropped": dropped,
        "runs": {s.variable: len(s.frts) for s in sums},
        "lead_times": {s.variable: [float(k) for k in s.lead_keys()] for s in sums},
    }
    stations = pd.DataFrame(columns=["station", "latitude", "longitude"])
    return Verification(table, diags, stations, meta)


MAP_DIM = "forecast"
"""Dimension of the maps along the forecasts (their names as coordinate)."""


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)


def _variable_maps(s: Sums, names: Sequence[str], grid: Sequence[str]) -> xr.Dataset:
    if not s.crps_sum:  # probabilities only: Brier scores, no CRPS to map
        return xr.Dataset(coords={MAP_DIM: list(names), FP: s.fps})
    units = VARIABLES[s.variable].units
    shape = next(iter(s.crps_sum.values())).shape
    nan = np.full(shape, np.nan)
    zero = np.zeros(shape)
    total = np.stack([s.crps_sum.get(n, nan) for n in names])
    count = np.stack([s.crps_n.get(n, zero) for n in names])
    dims = (MAP_DIM, FP, *grid)
    v = s.variable
    crps_attrs = {"long_name": f"mean CRPS of {v}", "units": units}
    out = {
        f"{v}_crps": (dims, _ratio(total, count), crps_attrs),
        f"{v}_n": (dims, count.astype("int32"), {"long_name": f"cases of {v}", "units": "1"}),
        f"{v}_crps_all": (dims[:1] + dims[2:], _ratio(total.sum(1), count.sum(1)), crps_attrs),
    }
    if s.pair:
        ps = np.stack([s.pair[n][0] if n in s.pair else nan for n in names])
        pr = np.stack([s.pair[n][1] if n in s.pair else nan for n in names])
        attrs = {"long_name": f"CRPSS of {v} against the reference", "units": "1"}
        out[f"{v}_crpss"] = (dims, 1.0 - _ratio(ps, pr), attrs)
        out[f"{v}_crpss_all"] = (dims[:1] + dims[2:], 1.0 - _ratio(ps.sum(1), pr.sum(1)), attrs)
    return xr.Dataset(out, coords={MAP_DIM: list(names), FP: s.fps})


def maps_dataset(
    truth: xr.Dataset, sums: Sequence[Sums], names: Sequence[str], reference: str | None
) -> xr.Dataset:
    """Per-point maps of every variable (see :class:`~probcast.verify.gridded.GridVerification`)."""
    grid = grid_dims(truth)
    coords = {
        str(c): truth[c].load()
        for c in truth.coords
        if c != "time" and set(truth[c].dims) <= set(grid)
    }
    parts = [_variable_maps(s, names, grid) for s in sums]
    ds = xr.merge(parts, join="outer", combine_attrs="override").assign_coords(coords)
    ds.attrs.update(
        title="probcast gridded verification maps",
        reference=str(reference) if reference else "",
        Conventions="CF-1.8",
    )
    return ds
