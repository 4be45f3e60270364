"""Tidy tables: groupings, NaN policy, metric consistency, files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from probcast.testing import verification as syn
from probcast.verify import aggregate
from probcast.verify.evaluate import verify


@pytest.fixture(scope="module")
def tables():
    truth, mu, sigma = syn.truth_table(n_stations=4, n_inits=12)
    ens = syn.members_table(truth, mu, sigma, n_members=6)
    return truth, ens


def test_tidy_schema_and_groupings(tables):
    truth, ens = tables
    v = verify(truth, {"ens": ens}, by=["lead_time", "station", "lead_time+station"])
    s = v.scores
    assert tuple(s.columns) == aggregate.TIDY_COLUMNS
    assert list(dict.fromkeys(s["by"])) == ["all", "lead_time", "station", "lead_time+station"]
    assert set(s.loc[s["by"] == "lead_time", "key"]) == {"6", "12", "24"}
    assert "6|ST000" in set(s.loc[s["by"] == "lead_time+station", "key"])
    assert not s.duplicated(["method", "variable", "by", "key", "metric"]).any()
    # Group means recombine to the overall mean (equal-size groups).
    per_lead = s[(s["by"] == "lead_time") & (s["metric"] == "crps")]["value"]
    assert per_lead.mean() == pytest.approx(v.value("ens", "t2m", "crps"))
    assert v.value("ens", "t2m", "n") == len(truth)
    assert v.value("ens", "t2m", "rmse") >= v.value("ens", "t2m", "mae") - 1e-12


def test_nan_cases_dropped_or_propagated(tables):
    truth, ens = tables
    truth = truth.copy()
    ens = ens.copy()
    truth.loc[0, "obs_t2m"] = np.nan
    ens.loc[5, "t2m_m003"] = np.nan
    v = verify(truth, {"ens": ens}, by=["lead_time"])
    assert v.value("ens", "t2m", "n_dropped") == 2
    assert v.value("ens", "t2m", "n") == len(truth) - 2
    assert np.isfinite(v.value("ens", "t2m", "crps"))
    k = verify(truth, {"ens": ens}, by=["lead_time"], skipna=False)
    assert np.isnan(k.value("ens", "t2m", "crps"))
    assert k.value("ens", "t2m", "n_dropped") == 2
    bad = {f"{truth.loc[i, 'lead_time']:g}" for i in (0, 5)}
    leads = k.scores[(k.scores["by"] == "lead_time") & (k.scores["metric"] == "crps")]
    for key, value in zip(leads["key"], leads["value"], strict=True):
        assert np.isnan(value) == (key in bad)


def test_unmatched_rows_counted_and_duplicates_rejected(tables):
    truth, ens = tables
    v = verify(truth, {"ens": ens.iloc[:-10]})
    assert v.meta["matching"]["ens"]["truth_rows_without_forecast"] == 10
    with pytest.raises(ValueError, match="duplicated cases"):
        verify(truth, {"ens": pd.concat([ens, ens.iloc[:1]])})
    with pytest.raises(ValueError, match="reference"):
        verify(truth, {"ens": ens}, reference="nope")


def test_brier_metrics_and_thresholds(tables):
    truth, ens = tables
    ens = ens.copy()
    ens["t2m_p_gt_281"] = 0.5
    v = verify(truth, {"ens": ens}, thresholds={"t2m": [279.0]})
    assert v.meta["thresholds"]["t2m"] == [279.0, 281.0]
    o = (truth["obs_t2m"] > 281).to_numpy(float)
    assert v.value("ens", "t2m", "brier_281") == pytest.approx(np.mean((0.5 - o) ** 2))
    rel, res, unc = (v.value("ens", "t2m", f"brier_{m}_279") for m in ("rel", "res", "unc"))
    assert rel - res + unc == pytest.approx(v.value("ens", "t2m", "brier_279"), abs=0.02)
    rel_tab = v.diagnostics["ens"]["t2m"]["reliability"]["279"]
    assert sum(rel_tab["count"]) == len(truth)
    assert sum(v.diagnostics["ens"]["t2m"]["rank_hist"]) == len(truth)


def test_write_scores_json_and_csv(tmp_path, tables):
    truth, ens = tables
    v = verify(truth, {"ens": ens})
    paths = aggregate.write_scores(v.scores, tmp_path, meta=v.meta, extra={"x": [np.nan]})
    doc = json.loads(paths["json"].read_text())
    assert doc["schema"] == aggregate.SCHEMA and doc["x"] == [None]
    assert set(doc["scores"][0]) == set(aggregate.TIDY_COLUMNS)
    csv = pd.read_csv(paths["csv"], dtype={"key": str})
    assert len(csv) == len(v.scores)
    assert not list(tmp_path.glob("*.tmp"))
