"""External probabilistic references a dataset brings, compared in Brier score.

verif-norway-precip ships the CDF of the raw ensemble (``raw.nc``) and of an existing
calibration method (``cal.nc``) at fixed thresholds. They are scored here on the same test
cases as probcast and the baselines (whose Brier scores at those thresholds come from
:func:`probcast.verify.evaluate.verify`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from probcast.verify.pointwise import threshold_label
from probcast.verify.scores import brier_score

REFERENCES: dict[str, dict[str, str]] = {
    "verif-norway-precip": {"raw-ensemble": "raw.nc", "calibrated-ref": "cal.nc"},
}
"""Per dataset: reference name -> file of the dataset holding a verif-layout CDF."""


def reference_thresholds(files: Mapping[str, Path], name: str) -> list[float]:
    """Positive thresholds at which the references of dataset ``name`` give a CDF."""
    from probcast.data.datasets.verif_norway import read_verif_reference

    refs = REFERENCES.get(name, {})
    if not refs:
        return []
    ds = read_verif_reference(files[next(iter(refs.values()))])
    return [float(t) for t in ds["threshold"].values if t > 0]


def reference_probabilities(path: Path) -> pd.DataFrame:
    """Exceedance probabilities ``p_gt_<t>`` per (station, init_time, lead_time)."""
    from probcast.data.datasets.verif_norway import read_verif_reference

    ds = read_verif_reference(path)
    cdf = ds["cdf"].sel(threshold=ds["threshold"] > 0)
    wide = cdf.to_dataframe()["cdf"].unstack("threshold")
    wide.columns = [f"p_gt_{threshold_label(float(t))}" for t in wide.columns]
    out = (1.0 - wide).reset_index()
    out["init_time"] = pd.to_datetime(out["init_time"], utc=True)
    out["station"] = out["station"].astype(str)
    return out


def brier_table(
    name: str,
    files: Mapping[str, Path],
    truth: pd.DataFrame,
    scores: pd.DataFrame,
    var: str = "tp",
) -> pd.DataFrame:
    """Brier score per method and threshold: the dataset's references and every method.

    Args:
        name: Dataset id (a key of :data:`REFERENCES`).
        files: The dataset's fetched files.
        truth: Test table with ``obs_<var>``.
        scores: Tidy scores of the verified methods (``brier_<t>`` metrics).
        var: Target variable.

    Returns:
        Columns ``method``, ``threshold``, ``n``, ``brier``.
    """
    rows = []
    keys = ["station", "init_time", "lead_time"]
    for ref, fname in REFERENCES.get(name, {}).items():
        probs = reference_probabilities(files[fname])
        merged = truth[[*keys, f"obs_{var}"]].merge(probs, on=keys, how="inner")
        for col in [c for c in probs.columns if c.startswith("p_gt_")]:
            t = float(col.removeprefix("p_gt_"))
            obs = merged[f"obs_{var}"].to_numpy(dtype="float64")
            event = np.where(np.isfinite(obs), (obs > t).astype("float64"), np.nan)
            bs = brier_score(event, merged[col].to_numpy(dtype="float64"))
            ok = np.isfinite(bs)
            rows.append({"method": ref, "threshold": t, "n": int(ok.sum()), "brier": bs[ok].mean()})
    thresholds = sorted({r["threshold"] for r in rows})
    overall = scores[(scores["by"] == "all") & (scores["variable"] == var)]
    for method in overall["method"].unique():
        sel = overall[overall["method"] == method].set_index("metric")["value"]
        for t in thresholds:
            key = f"brier_{threshold_label(t)}"
            if key in sel.index:
                rows.append(
                    {"method": method, "threshold": t, "n": int(sel["n"]), "brier": sel[key]}
                )
    return pd.DataFrame(rows, columns=["method", "threshold", "n", "brier"])
