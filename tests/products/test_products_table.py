"""Prediction-table columns -> Predictive objects, and per-case scores of every form."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from probcast.products import table as forms
from probcast.products import table_files
from probcast.testing import verification as syn
from probcast.verify.pointwise import case_scores


@pytest.fixture(scope="module")
def data():
    truth, mu, sigma = syn.truth_table(n_stations=3, n_inits=10)
    return truth, mu, sigma


def test_parse_columns_sorts_forms():
    cols = [
        "station",
        "tp_m010",
        "tp_m002",
        "tp_q0.9",
        "tp_q0.1",
        "tp_p_gt_0.1",
        "tp_p_gt_5",
        "tp_loc",
        "fc_tp",
        "t2m_m000",
    ]
    cs = forms.parse_columns(cols, "tp")
    assert cs.members == ["tp_m002", "tp_m010"]
    assert cs.quantiles == {0.1: "tp_q0.1", 0.9: "tp_q0.9"}
    assert cs.probabilities == {0.1: "tp_p_gt_0.1", 5.0: "tp_p_gt_5"}
    assert cs.other == {"loc": "tp_loc"} and cs.point == "fc_tp"
    assert forms.detect_variables(cols) == ["t2m", "tp"]


def test_to_predictive_picks_most_informative_form(data):
    truth, mu, sigma = data
    df = syn.members_table(truth, mu, sigma, n_members=5).merge(
        syn.quantiles_table(truth, mu, sigma), on=["station", "init_time", "lead_time"]
    )
    df["fc_t2m"] = mu
    assert forms.to_predictive(df, "t2m").kind == "members"
    q = forms.to_predictive(df, "t2m", kind="quantiles")
    assert q.values.shape == (len(df), 19) and np.all(np.diff(q.levels) > 0)
    p = syn.normal_params_table(truth, mu, sigma)
    fp = forms.to_predictive(p, "t2m", family="normal")
    assert fp.kind == "params" and fp.param_names == ("loc", "scale")
    np.testing.assert_array_equal(fp.params["scale"], sigma)
    with pytest.raises(ValueError, match="no family was given"):
        forms.to_predictive(p, "t2m")
    with pytest.raises(ValueError, match="no forecast of 'tp'"):
        forms.to_predictive(df, "tp")


def test_sidecar_and_key_normalisation(tmp_path, data):
    truth, mu, sigma = data
    p = syn.normal_params_table(truth, mu, sigma)
    p["lead_time"] = pd.to_timedelta(p["lead_time"], unit="h")
    path = tmp_path / "pred.parquet"
    p.to_parquet(path)
    (tmp_path / "pred.json").write_text(json.dumps({"families": {"t2m": "normal"}}))
    df, fams = table_files.read_predictions(path)
    assert fams == {"t2m": "normal"}
    assert df["lead_time"].dtype == "float64" and str(df["init_time"].dt.tz) == "UTC"
    with pytest.raises(ValueError, match="missing key columns"):
        forms.normalise_keys(p.drop(columns="station"))


@pytest.mark.parametrize("kind", ["members", "quantiles", "params", "point"])
def test_case_scores_of_every_form(data, kind):
    truth, mu, sigma = data
    tables = {
        "members": syn.members_table(truth, mu, sigma, n_members=8),
        "quantiles": syn.quantiles_table(truth, mu, sigma),
        "params": syn.normal_params_table(truth, mu, sigma),
        "point": truth,
    }
    fc = forms.to_predictive(tables[kind], "t2m", family="normal" if kind == "params" else None)
    obs = truth["obs_t2m"].to_numpy().copy()
    obs[0] = np.nan
    cols = case_scores(fc, obs, thresholds=[280.0], rng=np.random.default_rng(0))
    assert not cols["valid"][0] and cols["valid"][1:].all()
    assert np.isnan(cols["crps"][0]) and np.isfinite(cols["crps"][1:]).all()
    assert set(np.unique(cols["o_280"][1:])) <= {0.0, 1.0}
    p = cols["p_280"][1:]
    assert np.all((p >= 0) & (p <= 1))
    if kind == "point":
        np.testing.assert_allclose(cols["crps"][1:], np.abs(mu + 0.5 - obs)[1:])
        assert np.isnan(cols["pit"]).all()
    else:
        assert np.all((cols["pit"][1:] >= 0) & (cols["pit"][1:] <= 1))
        assert np.isfinite(cols["cov_80"][1:]).all()


def test_forms_agree_on_calibrated_forecast():
    truth, mu, sigma = syn.truth_table(n_stations=5, n_inits=40)
    obs = truth["obs_t2m"].to_numpy()
    rng = np.random.default_rng(0)
    q = case_scores(forms.to_predictive(syn.quantiles_table(truth, mu, sigma), "t2m"), obs, rng=rng)
    prm = forms.to_predictive(syn.normal_params_table(truth, mu, sigma), "t2m", family="normal")
    p = case_scores(prm, obs, thresholds=[280.0], rng=rng)
    # 19 levels 0.05..0.95: the pinball approximation is ~5 % above the exact CRPS.
    ratio = np.nanmean(q["crps"]) / np.nanmean(p["crps"])
    assert 1.0 < ratio < 1.07
    assert np.nanmean(p["var"]) == pytest.approx(np.mean(sigma**2), rel=0.02)
    np.testing.assert_allclose(p["ae"], np.abs(mu - obs), atol=1e-3)
    for c, nominal in (("cov_50", 0.5), ("cov_90", 0.9)):
        assert np.mean(q[c]) == pytest.approx(nominal, abs=0.05)


def test_member_scores_independent_of_threads_and_chunks(data, monkeypatch):
    from probcast.verify import scores

    truth, mu, sigma = data
    fc = forms.to_predictive(syn.members_table(truth, mu, sigma, n_members=7), "t2m")
    obs = truth["obs_t2m"].to_numpy()

    def run():
        return case_scores(fc, obs, thresholds=[280.0], rng=np.random.default_rng(3))

    monkeypatch.setenv("PROBCAST_VERIFY_THREADS", "1")
    one = run()
    monkeypatch.setenv("PROBCAST_VERIFY_THREADS", "3")
    monkeypatch.setattr(scores, "CHUNK_ELEMENTS", 50)
    many = run()
    for k, v in one.items():
        np.testing.assert_array_equal(v, many[k], err_msg=k)


def test_a_corrupt_sidecar_is_named(tmp_path):
    # audit: a truncated sidecar gave "Expecting value: line 1 column 1 (char 0)"
    from probcast.products.table_files import read_sidecar

    (tmp_path / "pred.csv").write_text("station\n")
    (tmp_path / "pred.csv.json").write_text("")
    with pytest.raises(ValueError, match=r"pred.csv.json: sidecar is not valid JSON"):
        read_sidecar(tmp_path / "pred.csv")


def test_bad_key_columns_name_the_file_and_column():
    # audit: "could not convert string to float: '6h'" named neither
    bad = pd.DataFrame({"station": ["a"], "init_time": ["2021-01-01"], "lead_time": ["6h"]})
    with pytest.raises(ValueError, match=r"x.csv: column 'lead_time': expected hours"):
        forms.normalise_keys(bad, "x.csv")
    bad = bad.assign(lead_time=6.0, init_time="yesterday")
    with pytest.raises(ValueError, match=r"x.csv: column 'init_time': expected times"):
        forms.normalise_keys(bad, "x.csv")
