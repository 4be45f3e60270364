"""Streaming sums of per-case scores, so a grid of any size is scored block by block.

:class:`LeadStats` keeps, per lead time, the sums and counts every metric of
:mod:`probcast.verify.aggregate` is computed from (means of the per-case columns of
:func:`probcast.verify.pointwise.case_scores`, PIT and rank histograms, and per
probability bin the counts and sums of the Brier decomposition). Adding blocks in any order
gives the metrics :func:`probcast.verify.aggregate.summarise` gives on all cases at once
(cases with a missing observation or forecast dropped and counted: ``skipna=True``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from probcast.verify import calibration as cal
from probcast.verify import scores
from probcast.verify.pointwise import coverage_label, threshold_label

MEAN_COLUMNS = ("crps", "crps_fair", "ae", "se", "err", "var")
"""Per-case columns averaged over the valid cases (NaN values skipped)."""
N_BINS = 10
"""Probability bins of the Brier decomposition and the reliability diagrams."""


class LeadStats:
    """Sufficient statistics of one forecast of one variable, per lead time.

    Args:
        n_leads: Number of lead times (cases carry a lead index ``0..n_leads-1``).
        thresholds: Event thresholds of the ``p_<t>``/``o_<t>`` columns.
        coverages: Nominal coverages of the ``cov_<c>`` columns.
        n_members: Ensemble size (rank histogram, spread-skill correction), or None.
    """

    def __init__(
        self,
        n_leads: int,
        thresholds: Sequence[float],
        coverages: Sequence[float],
        n_members: int | None = None,
    ) -> None:
        self.n_leads = n_leads
        self.thresholds = [float(t) for t in thresholds]
        self.coverages = [float(c) for c in coverages]
        self.n_members = n_members
        cols = [*MEAN_COLUMNS, *(f"cov_{coverage_label(c)}" for c in self.coverages)]
        self.sums = {c: np.zeros(n_leads) for c in cols}
        self.counts = {c: np.zeros(n_leads) for c in cols}
        self.n = np.zeros(n_leads)
        self.n_dropped = np.zeros(n_leads)
        self.pit = np.zeros((n_leads, cal.PIT_BINS))
        self.rank = np.zeros((n_leads, n_members + 1)) if n_members else None
        labels = [threshold_label(t) for t in self.thresholds]
        self.rel = {lab: np.zeros((3, n_leads, N_BINS)) for lab in labels}  # n, sum p, sum o
        self.brier = {lab: np.zeros((2, n_leads)) for lab in labels}  # sum (p-o)^2, n

    def _bincount(self, lead: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        return np.bincount(lead, weights=weights, minlength=self.n_leads)[: self.n_leads]

    def _hist2(self, lead: np.ndarray, bins: np.ndarray, n_bins: int) -> np.ndarray:
        flat = np.bincount(lead * n_bins + bins, minlength=self.n_leads * n_bins)
        return flat.reshape(self.n_leads, n_bins)

    def add(self, cols: dict[str, np.ndarray], lead: np.ndarray) -> None:
        """Add a block of cases.

        Args:
            cols: Per-case columns (``valid`` and any of the scored columns), shape ``(n,)``.
            lead: Lead index of each case, shape ``(n,)``.
        """
        valid = np.asarray(cols["valid"], bool)
        lead = np.asarray(lead, "int64")
        lv = lead[valid]
        self.n += self._bincount(lv)
        self.n_dropped += self._bincount(lead[~valid])
        for col in self.sums:
            if col not in cols:
                continue
            x = np.asarray(cols[col], "float64")[valid]
            ok = np.isfinite(x)
            self.sums[col] += self._bincount(lv[ok], x[ok])
            self.counts[col] += self._bincount(lv[ok])
        if "pit" in cols:
            pit = np.asarray(cols["pit"], "float64")[valid]
            ok = np.isfinite(pit)
            bins = scores.probability_bins(pit[ok], cal.PIT_BINS)
            self.pit += self._hist2(lv[ok], bins, cal.PIT_BINS)
        if self.rank is not None and "rank" in cols:
            r = np.asarray(cols["rank"], "int64")[valid] - 1
            self.rank += self._hist2(lv, r, self.rank.shape[1])
        for t in self.thresholds:
            lab = threshold_label(t)
            p = np.asarray(cols.get(f"p_{lab}", np.full(valid.shape, np.nan)), "float64")[valid]
            o = np.asarray(cols[f"o_{lab}"], "float64")[valid]
            ok = np.isfinite(p) & np.isfinite(o)
            p, o, lk = np.clip(p[ok], 0.0, 1.0), o[ok], lv[ok]
            b = scores.probability_bins(p, N_BINS)
            idx = lk * N_BINS + b
            size = self.n_leads * N_BINS
            for i, w in enumerate((None, p, o)):
                self.rel[lab][i] += np.bincount(idx, weights=w, minlength=size).reshape(
                    self.n_leads, N_BINS
                )
            self.brier[lab][0] += self._bincount(lk, (p - o) ** 2)
            self.brier[lab][1] += self._bincount(lk)

    def _mean(self, col: str, sel: slice) -> float:
        n = float(self.counts[col][sel].sum())
        return float(self.sums[col][sel].sum()) / n if n > 0 else float("nan")

    def metrics(self, lead: int | None = None) -> dict[str, float]:
        """The metrics of :mod:`probcast.verify.aggregate` over all leads, or one lead."""
        sel = slice(None) if lead is None else slice(lead, lead + 1)
        out = {"n": float(self.n[sel].sum()), "n_dropped": float(self.n_dropped[sel].sum())}
        out["crps"], out["crps_fair"] = self._mean("crps", sel), self._mean("crps_fair", sel)
        out["mae"] = self._mean("ae", sel)
        mse, var = self._mean("se", sel), self._mean("var", sel)
        out["rmse"] = math.sqrt(mse) if np.isfinite(mse) else float("nan")
        out["bias"] = self._mean("err", sel)
        out["spread"] = math.sqrt(var) if np.isfinite(var) else float("nan")
        out["spread_skill"] = cal.spread_skill_ratio(var, mse, self.n_members)
        for c in self.coverages:
            lab = coverage_label(c)
            out[f"coverage_{lab}"] = self._mean(f"cov_{lab}", sel)
        flat = cal.flatness(self.pit[sel].sum(axis=0))
        out["pit_max_dev"], out["pit_ri"] = flat.max_dev, flat.reliability_index
        out["pit_chi2"], out["pit_chi2_pvalue"] = flat.chi2, flat.chi2_pvalue
        for t in self.thresholds:
            lab = threshold_label(t)
            bs, rel, res, unc = self._brier(lab, sel)
            out[f"brier_{lab}"], out[f"brier_rel_{lab}"] = bs, rel
            out[f"brier_res_{lab}"], out[f"brier_unc_{lab}"] = res, unc
        return out

    def _brier(self, lab: str, sel: slice) -> tuple[float, float, float, float]:
        """Brier score and its Murphy decomposition (as scores.brier_decomposition)."""
        sq, n = (float(x) for x in self.brier[lab][:, sel].sum(axis=-1))
        if n == 0:
            return (float("nan"),) * 4
        nk, sp, so = self.rel[lab][:, sel].sum(axis=1)
        used = nk > 0
        pbar, obar_k = sp[used] / nk[used], so[used] / nk[used]
        obar = so.sum() / n
        rel = float(np.sum(nk[used] * (pbar - obar_k) ** 2) / n)
        res = float(np.sum(nk[used] * (obar_k - obar) ** 2) / n)
        return sq / n, rel, res, float(obar * (1.0 - obar))

    def diagnostics(self) -> dict[str, Any]:
        """PIT and rank histograms and reliability tables over all leads.

        The same layout as :func:`probcast.verify.aggregate.diagnostics`.
        """
        edges = np.linspace(0.0, 1.0, N_BINS + 1)
        rel = {}
        for lab, arr in self.rel.items():
            nk, sp, so = arr.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                fc, ob = sp / nk, so / nk
            rel[lab] = {
                "bin_lower": edges[:-1].tolist(),
                "bin_upper": edges[1:].tolist(),
                "forecast": fc.tolist(),
                "observed": ob.tolist(),
                "count": nk.astype("int64").tolist(),
            }
        rank = None if self.rank is None else self.rank.sum(axis=0).astype("int64").tolist()
        pit = self.pit.sum(axis=0).astype("int64").tolist()
        return {"pit_hist": pit, "rank_hist": rank, "reliability": rel}
