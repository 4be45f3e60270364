"""EMOS / NGR: distribution parameters linear in the forecast, fitted by minimum CRPS.

Gneiting et al. (2005, Mon. Wea. Rev. 133) with the families of
:mod:`probcast.dists`: every unconstrained parameter is linear in the
standardised predictors ``x = [1, (fc - m)/s, (lead - m)/s, extras...]``, and
``Distribution.constrain(raw, center=fc, scale=spread)`` maps it to the family's parameters
(``loc = fc + spread * (a0 + a1 x1 + ...)``, ``scale = spread * softplus(b0 + b1 x1 + ...)``
for the location-scale families). All-zero coefficients give the raw forecast with the
training error spread, the starting point of the fit.

Coefficients are fitted globally (optionally one set per lead-time bin) or per station
("local"), a station with fewer than ``min_rows`` training rows in a bin falling back to the
global coefficients of that bin; local fits are shrunk towards the global ones. All groups
are fitted together by a batched Newton method, one small system per group, around a
per-row kernel compiled once per family and padded shape
(:mod:`probcast.baselines.emos_fit`), so repeated fits do not recompile.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from probcast import dists, progress
from probcast.baselines.base import assign_bins, lead_edges, target_columns, training_values
from probcast.baselines.emos_fit import fit_groups
from probcast.dists import Predictive


@dataclass
class EmosModel:
    """Fitted EMOS coefficients; everything needed to predict (JSON via to_dict/from_dict).

    Attributes:
        var: Target variable.
        family: Distribution family name.
        spread: Scale passed to ``constrain`` (training std of ``obs - fc``).
        features: Predictor columns (the first is ``fc_<var>``).
        feature_mean: Standardisation means of ``features``.
        feature_std: Standardisation stds of ``features``.
        edges: Inner lead-time bin edges (empty: one bin).
        global_coefs: ``(n_bins, n_params, 1 + n_features)``.
        station_coefs: Station -> per bin ``(n_params, 1 + n_features)`` or ``None``
            (fall back to global).
        min_rows: Fewest training rows for a station's own coefficients.
    """

    var: str
    family: str
    spread: float
    features: list[str]
    feature_mean: list[float]
    feature_std: list[float]
    edges: list[float]
    global_coefs: list[Any]
    station_coefs: dict[str, list[Any]] = field(default_factory=dict)
    min_rows: int = 50

    def design(self, table: pd.DataFrame) -> np.ndarray:
        """Standardised predictors with an intercept column: ``(rows, 1 + n_features)``."""
        missing = [c for c in self.features if c not in table.columns]
        if missing:
            raise KeyError(f"EMOS for {self.var!r} needs column(s) {missing}; table lacks them")
        return self.standardise(table[self.features].to_numpy(dtype=np.float64))

    def standardise(self, f: np.ndarray) -> np.ndarray:
        """:meth:`design` of the predictor values ``f (rows, n_features)``."""
        x = (f - np.asarray(self.feature_mean)) / np.asarray(self.feature_std)
        return np.concatenate([np.ones((len(x), 1)), x], axis=1).astype(np.float32)

    def row_coefs(self, table: pd.DataFrame) -> np.ndarray:
        """Coefficients of every row ``(rows, n_params, 1 + n_features)``."""
        bins = assign_bins(table["lead_time"].to_numpy(dtype=np.float64), np.asarray(self.edges))
        glob = np.asarray(self.global_coefs, dtype=np.float32)
        coefs = glob[bins]
        if self.station_coefs and "station" in table.columns:
            # Group rows by station with one sort (O(n log n)), not one mask per station:
            # gridded tables have as many stations as grid points.
            codes, uniq = pd.factorize(table["station"].astype(str))
            order = np.argsort(codes, kind="stable")
            bounds = np.searchsorted(codes[order], np.arange(len(uniq) + 1))
            for i, st in enumerate(uniq):
                per_bin = self.station_coefs.get(str(st))
                if per_bin is None:
                    continue
                rows = order[bounds[i] : bounds[i + 1]]
                for b, c in enumerate(per_bin):
                    sel = rows[bins[rows] == b]
                    if c is not None and sel.size:
                        coefs[sel] = np.asarray(c, dtype=np.float32)
        return coefs

    def predict(self, table: pd.DataFrame) -> dict[str, np.ndarray]:
        """Distribution parameters per row (NaN where a predictor is missing)."""
        fc, _ = target_columns(table, self.var, need_obs=False)
        raw = np.einsum("rf,rpf->rp", self.design(table), self.row_coefs(table))
        dist = dists.get(self.family)
        center = table[fc].to_numpy(dtype=np.float32)
        spread = jnp.asarray(self.spread)
        params = dist.constrain(jnp.asarray(raw), jnp.asarray(center), spread)
        return {k: np.asarray(v) for k, v in params.items()}

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict."""
        return {"kind": "emos", **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EmosModel:
        """Inverse of :meth:`to_dict`."""
        return cls(**{k: v for k, v in d.items() if k != "kind"})


def fit_emos(
    train: pd.DataFrame,
    var: str,
    *,
    family: str | None = None,
    by_station: bool = False,
    min_rows: int = 50,
    lead_bins: int = 1,
    extra_predictors: Sequence[str] = (),
    shrinkage: float = 1e-3,
    start: EmosModel | None = None,
    pad_rows: int | None = None,
) -> EmosModel:
    """Fit EMOS coefficients by minimum CRPS.

    Args:
        train: Canonical training table.
        var: Target variable.
        family: Distribution family; default ``dists.default_for(var)``.
        by_station: Fit one coefficient set per station (local EMOS).
        min_rows: Fewest rows of a station (per lead bin) for its own coefficients.
        lead_bins: Number of lead-time bins with their own coefficients (1: none).
        extra_predictors: Further numeric columns used as predictors (e.g. other models).
        shrinkage: Ridge weight towards the global fit for local coefficients (a tenth of it
            ties the global fit to the bias-corrected raw forecast).
        start: A model fitted on data that mostly overlap ``train`` (cross-validation
            folds and all their rows): its coefficients start the minimisation where they
            fit this one (same variable, family, predictors and bins), which then needs a
            few Newton steps on all rows instead of warm-up stages on subsamples. The
            optimum is this data's own.
        pad_rows: Rows the fit's kernels are padded to (default: a bucket of the rows,
            :func:`~probcast.baselines.emos_fit.bucket`); fits of several subsets of one
            table padded alike share their compiled kernels. The result does not depend
            on it.

    Returns:
        The fitted model.
    """
    family = family or dists.default_for(var)
    dists.get(family)
    fc, obs = target_columns(train, var, need_obs=True)
    features = [fc, "lead_time", *extra_predictors]
    ok, values = training_values(train, [*features, obs], var)  # arrays: no frame copies
    ft = np.stack([values[c] for c in features])  # (features, rows): contiguous columns
    std = ft.std(axis=1)
    lead = values["lead_time"]
    edges = lead_edges(lead, lead_bins)
    bins = assign_bins(lead, edges)
    # a predictor constant within every lead bin (the lead time itself, with one lead a
    # bin) is the bins' intercepts again: it adds only directions the ridge alone decides
    keep = varies_within(ft.T, bins)
    keep[0] = True
    features = [c for c, k in zip(features, keep, strict=True) if k]
    spread = float(np.std(values[obs] - values[fc]))
    if not spread > 0:
        raise ValueError(f"training errors of {var!r} have zero spread; cannot scale EMOS")
    model = EmosModel(
        var=var,
        family=family,
        spread=spread,
        features=features,
        feature_mean=ft[keep].mean(axis=1).tolist(),
        feature_std=np.where(std[keep] > 0, std[keep], 1.0).tolist(),
        edges=edges.tolist(),
        global_coefs=[],
        min_rows=min_rows,
    )
    x = model.standardise(ft[keep].T)
    center = values[fc].astype(np.float32)
    y = values[obs].astype(np.float32)
    n_params = len(dists.get(family).param_names)
    n_bins = len(model.edges) + 1
    prior = np.zeros((n_bins, n_params, x.shape[1]))
    # start from (and shrink towards) the bias-corrected raw forecast: the loc intercept
    # absorbs the mean error, in spread units
    prior[:, 0, 0] = float(np.mean(y - center)) / spread
    local = _LocalGroups.of(train, ok, bins, n_bins, min_rows) if by_station else None
    with on_host(), progress.bar(f"EMOS fit {var} (global)", 2 if by_station else 1) as shown:
        near = _compatible(start, model)
        first = np.asarray(near.global_coefs, dtype=np.float64) if near else None
        glob = fit_groups(
            family,
            x,
            center,
            y,
            bins,
            prior,
            spread,
            shrinkage * 0.1,
            pad_rows=pad_rows,
            start=first,
            # on the local fit's group slots: the two share their kernels (all rows, and
            # the local fit's slow groups with the first warm-start stage)
            slots=max(local.kept.size, n_bins) if local is not None and local.kept.size else None,
        )
        model.global_coefs = glob.tolist()
        if local is not None:
            shown.advance(1, f"EMOS fit {var} (per station)")
            model.station_coefs = _fit_local(
                model,
                local,
                x,
                center,
                y,
                glob,
                shrinkage,
                near.station_coefs if near else None,
                pad_rows,
            )
        shown.advance()
    return model


def varies_within(f: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Whether each column of ``f`` ``(rows, columns)`` takes two values in some group."""
    first = np.zeros(int(groups.max(initial=0)) + 1, np.int64)
    first[groups[::-1]] = np.arange(len(groups))[::-1]  # each group's first row (last wins)
    at = first[groups]
    return np.array([np.any(c != c[at]) for c in np.asarray(f).T], dtype=bool)


def on_host() -> contextlib.AbstractContextManager[Any]:
    """The host CPU as JAX's default device where it is an accelerator (a no-op elsewhere).

    A fit is a few tens of small float64 kernel calls with host work between them (the
    per-group Newton systems) and kernels compiled per family and padded size: latency and
    compile bound, not arithmetic bound. On an H200 (jax 0.11, cold compile cache) the
    selection phase of a gridded training (42 local fits over 3,072 grid points) took 91 s,
    against 30 s on a 2-core CPU.
    """
    if jax.default_backend() == "cpu":
        return contextlib.nullcontext()
    try:
        return jax.default_device(jax.devices("cpu")[0])
    except RuntimeError:  # JAX_PLATFORMS without cpu
        return contextlib.nullcontext()


@dataclass(frozen=True)
class _LocalGroups:
    """The (station, lead bin) groups of local EMOS: those with at least ``min_rows`` rows."""

    names: np.ndarray  # station names
    key: np.ndarray  # (station, bin) number of every row
    kept: np.ndarray  # the keys of the groups fitted

    @classmethod
    def of(
        cls, table: pd.DataFrame, ok: np.ndarray, bins: np.ndarray, n_bins: int, min_rows: int
    ) -> _LocalGroups:
        """The groups of ``table``'s rows ``ok`` (a mask), in lead bins ``bins``."""
        if "station" not in table.columns:
            raise KeyError("local EMOS (by_station=True) needs a 'station' column")
        codes, names = pd.factorize(table["station"].to_numpy()[ok].astype(str))
        key = codes.astype(np.int64) * n_bins + np.asarray(bins, dtype=np.int64)
        kept = np.flatnonzero(np.bincount(key, minlength=len(names) * n_bins) >= min_rows)
        return cls(np.asarray(names), key, kept)


def _fit_local(
    model: EmosModel,
    local: _LocalGroups,
    x: np.ndarray,
    center: np.ndarray,
    y: np.ndarray,
    glob: np.ndarray,
    shrinkage: float,
    near: dict[str, list[Any]] | None = None,
    pad_rows: int | None = None,
) -> dict[str, list[Any]]:
    """Per-(station, bin) coefficients for the groups ``local`` keeps.

    ``near``: station coefficients of a model fitted on overlapping data, where they exist
    the start of their group (the others start from the global fit).
    """
    n_bins = glob.shape[0]
    names, key, kept = local.names, local.key, local.kept
    out: dict[str, list[Any]] = {}
    if not kept.size:
        return out
    fitted = [(str(names[k // n_bins]), int(k % n_bins)) for k in kept]
    number = np.full(len(names) * n_bins, -1, dtype=np.int64)
    number[kept] = np.arange(kept.size)
    sel = number[key] >= 0
    g = number[key][sel]
    prior = np.stack([glob[b] for _, b in fitted])
    first = None
    if near is not None:  # a group the start model did not fit starts from the global fit
        starts = [(near.get(st) or [None] * n_bins)[b] for st, b in fitted]
        first = np.stack(
            [glob[b] if c is None else c for c, (_, b) in zip(starts, fitted, strict=True)]
        )
    theta = fit_groups(
        model.family,
        x[sel],
        center[sel],
        y[sel],
        g,
        prior,
        model.spread,
        shrinkage,
        pad_rows=pad_rows,
        start=first,
    )
    for (st, b), coef in zip(fitted, theta, strict=True):
        out.setdefault(st, [None] * n_bins)[int(b)] = coef.tolist()
    return out


def _compatible(start: EmosModel | None, model: EmosModel) -> EmosModel | None:
    """``start`` where its coefficients can start ``model``'s fit, else ``None``."""
    if start is None:
        return None
    same = (start.var, start.family, start.features) == (model.var, model.family, model.features)
    if not same or len(start.edges) != len(model.edges):
        return None
    return start


class EmosBaseline:
    """EMOS as a :class:`~probcast.baselines.base.Baseline` (``emos-global`` / ``emos-local``)."""

    def __init__(
        self,
        var: str,
        *,
        family: str | None = None,
        by_station: bool = False,
        min_rows: int = 50,
        lead_bins: int = 1,
        extra_predictors: Sequence[str] = (),
    ) -> None:
        self.var = var
        self.name = "emos-local" if by_station else "emos-global"
        self.family = family
        self.kwargs: dict[str, Any] = {
            "by_station": by_station,
            "min_rows": min_rows,
            "lead_bins": lead_bins,
            "extra_predictors": tuple(extra_predictors),
        }
        self.model: EmosModel | None = None

    def fit(self, train: pd.DataFrame) -> EmosBaseline:
        """Fit the coefficients."""
        self.model = fit_emos(train, self.var, family=self.family, **self.kwargs)
        return self

    def predict(self, table: pd.DataFrame) -> Predictive:
        """Family parameters per row."""
        if self.model is None:
            raise RuntimeError("EmosBaseline.predict called before fit")
        return Predictive.from_params(self.var, self.model.family, self.model.predict(table))
