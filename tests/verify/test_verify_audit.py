"""Regression tests of the verification audit: no forecast scored silently wrong."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from probcast.products.table import to_predictive
from probcast.products.table_files import read_predictions
from probcast.testing import verification as syn
from probcast.verify import cli
from probcast.verify.evaluate import verify
from probcast.verify.notes import quantile_crps_ratio

NORMAL = {"emos": {"t2m": "normal"}}


@pytest.fixture
def data():
    truth, mu, sigma = syn.truth_table(n_stations=3, n_inits=8)
    return truth, mu, sigma


def _params(truth, mu, sigma):
    return syn.normal_params_table(truth, mu, sigma)


# 1.1 impossible parameters


@pytest.mark.parametrize("bad", [0.0, -1.0])
def test_scale_not_positive_refused(data, bad):
    truth, mu, sigma = data
    fc = _params(truth, mu, sigma)
    fc.loc[7, "t2m_scale"] = bad
    with pytest.raises(ValueError, match=r"'t2m_scale'.*<= 0.*row 7.*scale must be > 0"):
        verify(truth, {"emos": fc}, families=NORMAL, multivariate=False)


def test_gamma_shape_not_positive_refused(data):
    truth, _, _ = data
    tr = truth.rename(columns={"obs_t2m": "obs_tp", "fc_t2m": "fc_tp"})
    tr["obs_tp"] = np.abs(tr["obs_tp"] - 280.0)
    fc = syn.keys_of(tr).assign(tp_shape=2.0, tp_scale=1.0, tp_shift=0.5)
    fc.loc[3, "tp_shape"] = 0.0
    with pytest.raises(ValueError, match=r"'tp_shape'.*row 3"):
        verify(tr, {"g": fc}, families={"g": {"tp": "censored_shifted_gamma"}})


def test_nonfinite_score_counted_as_dropped():
    from probcast.dists import Predictive
    from probcast.verify.pointwise import case_scores

    vals = np.array([[280.0, 1.0], [280.0, 1e-45], [281.0, 2.0]])
    fc = Predictive("t2m", "params", vals, param_names=("loc", "scale"), family="normal")
    cols = case_scores(fc, np.array([280.5, 285.0, 281.0]), thresholds=(281.0,))
    # a subnormal scale underflows in float32: the CRPS is not finite
    assert not cols["valid"][1] and cols["score_failed"][1]
    assert np.isnan(cols["pit"][1]) and np.isnan(cols["p_281"][1])
    assert cols["valid"][[0, 2]].all()


# 1.2 forecasts matched to the wrong observations


def test_lead_time_shifted_forecast_refused(data):
    truth, mu, sigma = data
    fc = _params(truth, mu, sigma).assign(valid_time=truth["valid_time"])
    fc["lead_time"] = fc["lead_time"] - 6.0  # labelled by the start of the period
    fc = fc[fc["lead_time"] > 0]
    with pytest.raises(ValueError, match=r"forecast 'emos'.*valid_time is not init_time"):
        verify(truth, {"emos": fc}, families=NORMAL, multivariate=False)


def test_valid_time_mismatch_after_merge_refused(data):
    truth, mu, sigma = data
    fc = _params(truth, mu, sigma).assign(valid_time=truth["valid_time"])
    fc["valid_time"] = pd.to_datetime(fc["valid_time"], utc=True) + pd.Timedelta(hours=1)
    with pytest.raises(ValueError, match=r"forecast 'emos'.*valid_time is not init_time"):
        verify(truth, {"emos": fc}, families=NORMAL, multivariate=False)


def test_compare_valid_times_names_first_case(data):
    from probcast.verify.matching import compare_valid_times

    truth, _, _ = data
    m = truth.assign(tv=pd.to_datetime(truth["valid_time"], utc=True))
    m["valid_time"] = m["tv"]
    m.loc[4, "tv"] = m.loc[4, "tv"] + pd.Timedelta(hours=6)
    with pytest.raises(ValueError, match=r"1 of \d+ cases .*different valid_time"):
        compare_valid_times(m, "tv", "forecast 'x'", "truth")


# 1.3 NaN in a probability column


def test_nan_probability_falls_back_to_form(data):
    truth, mu, sigma = data
    ens = syn.members_table(truth, mu, sigma, n_members=10)
    t = float(np.median(truth["obs_t2m"]))
    lab = f"{t:g}"
    implied = (ens.filter(like="t2m_m").to_numpy() > t).mean(axis=1)
    ens[f"t2m_p_gt_{lab}"] = implied
    ens.loc[: len(ens) // 2, f"t2m_p_gt_{lab}"] = np.nan
    ver = verify(truth, {"ens": ens}, thresholds={"t2m": [t]}, multivariate=False)
    assert ver.value("ens", "t2m", f"brier_n_{lab}") == len(truth)
    full = ens.assign(**{f"t2m_p_gt_{lab}": implied})
    ref = verify(truth, {"ens": full}, thresholds={"t2m": [t]}, multivariate=False)
    assert ver.value("ens", "t2m", f"brier_{lab}") == pytest.approx(
        ref.value("ens", "t2m", f"brier_{lab}")
    )


# 1.5 parameter-like columns without a family


def test_params_without_family_never_replaced_by_point(data):
    truth, mu, sigma = data
    fc = _params(truth, mu, sigma).assign(fc_t2m=truth["fc_t2m"])
    with pytest.raises(ValueError, match=r"t2m_loc.*no family.*--family NAME:t2m=FAMILY"):
        to_predictive(fc, "t2m", source="f.csv")
    assert to_predictive(fc, "t2m", family="normal").kind == "params"


def test_params_without_family_beside_members_score_members(data):
    truth, mu, sigma = data
    fc = pd.concat(
        [syn.members_table(truth, mu, sigma, n_members=4), _params(truth, mu, sigma).iloc[:, 3:]],
        axis=1,
    )
    assert to_predictive(fc, "t2m").kind == "members"  # predict's mixture: params = mean


# 1.9 --keep-nan


def test_keep_nan_makes_crpss_nan(data):
    truth, mu, sigma = data
    fc = _params(truth, mu, sigma)
    fc.loc[2, "t2m_loc"] = np.nan
    kw = {"families": NORMAL, "reference": "raw", "n_boot": 20, "multivariate": False}
    forecasts = {"raw": truth, "emos": fc}
    drop = verify(truth, forecasts, **kw)
    keep = verify(truth, forecasts, skipna=False, **kw)
    assert np.isfinite(drop.value("emos", "t2m", "crpss"))
    assert drop.value("emos", "t2m", "crpss_n") == len(truth) - 1
    assert np.isnan(keep.value("emos", "t2m", "crpss"))
    assert np.isnan(keep.value("emos", "t2m", "crpss_lo"))


# 1.8 / 1.6 coverage and form warnings in the CLI and the report


def test_cli_and_report_show_coverage_and_warnings(data, tmp_path, capsys):
    truth, mu, sigma = data
    tpath = tmp_path / "truth.parquet"
    truth.to_parquet(tpath)
    half = _params(truth, mu, sigma).iloc[: len(truth) // 2]
    hpath = tmp_path / "half.parquet"
    half.to_parquet(hpath)
    qpath = tmp_path / "q.parquet"
    levels = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)
    syn.quantiles_table(truth, mu, sigma, levels=levels).to_parquet(qpath)
    out = tmp_path / "out"
    rc = cli.main([
        f"--truth={tpath}", f"--forecast=raw={tpath}", f"--forecast=half={hpath}",
        f"--forecast=q={qpath}", "--family=half:t2m=normal", "--reference=raw",
        f"--out={out}", "--n-boot=20",
    ])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    n_missing = len(truth) - len(half)
    assert f"{n_missing} truth rows without forecast" in printed
    assert "n_dropped" in printed and "crpss_n" in printed
    assert "scored on different case sets" in printed
    assert "q t2m: CRPSS compares a quantiles forecast" in printed and "inflated" in printed
    html = (out / "report.html").read_text()
    assert f"{n_missing} truth rows without forecast" in html
    assert "different case sets" in html and "dropped" in html


def test_quantile_crps_ratio():
    assert quantile_crps_ratio([0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95]) == pytest.approx(
        0.806, abs=0.002
    )
    assert quantile_crps_ratio([i / 100 for i in range(1, 100)]) == pytest.approx(1.0, abs=0.02)


# 1.4 thresholds outside the physical range


def test_thresholds_outside_range_refused(data):
    truth, _, _ = data
    with pytest.raises(ValueError, match=r"--thresholds t2m: 0, 2 outside.*'degC'"):
        verify(truth, {"raw": truth}, thresholds={"t2m": [0.0, 2.0]}, multivariate=False)


# 1.7 spread of a normal is exact


def test_params_spread_exact_for_normal(data):
    truth, mu, sigma = data
    ver = verify(truth, {"emos": _params(truth, mu, sigma)}, families=NORMAL, multivariate=False)
    exact = float(np.sqrt(np.mean(sigma.astype("float32") ** 2)))
    assert ver.value("emos", "t2m", "spread") == pytest.approx(exact, rel=1e-4)


# 2. clear errors


def test_csv_na_cells_are_missing(data, tmp_path):
    truth, mu, sigma = data
    fc = _params(truth, mu, sigma)
    fc["station"] = "NA"
    path = tmp_path / "p.csv"
    text = fc.to_csv(index=False).splitlines()
    cols = text[0].split(",")
    row = text[1].split(",")
    row[cols.index("t2m_loc")] = "NA"
    text[1] = ",".join(row)
    path.write_text("\n".join(text) + "\n")
    (tmp_path / "p.csv.json").write_text(json.dumps({"families": {"t2m": "normal"}}))
    df, fams = read_predictions(path)
    assert np.isnan(df["t2m_loc"].iloc[0]) and (df["station"] == "NA").all()
    assert fams == {"t2m": "normal"}


def test_unknown_grouping_lists_columns(data):
    truth, _, _ = data
    with pytest.raises(ValueError, match=r"cannot group by \['month'\].*available: .*lead_time"):
        verify(truth, {"raw": truth}, by=["month"], multivariate=False)


def test_no_overlap_reports_each_key(data):
    truth, _, _ = data
    fc = truth.assign(lead_time=truth["lead_time"] + 100.0)
    fc["valid_time"] = pd.to_datetime(fc["valid_time"], utc=True) + pd.Timedelta(hours=100)
    with pytest.raises(ValueError, match=r"no case in common.*lead_time: forecast \[106.*0 in com"):
        verify(truth, {"raw": fc}, multivariate=False)


def test_nonfinite_score_in_n_dropped_and_meta(data):
    truth, mu, sigma = data
    fc = _params(truth, mu, sigma)
    fc.loc[5, "t2m_scale"] = 1e-45  # > 0, but 0 in float32: the CRPS is NaN
    ver = verify(truth, {"emos": fc}, families=NORMAL, multivariate=False)
    assert ver.meta["dropped"]["emos"]["t2m"]["score_not_finite"] == 1
    assert ver.value("emos", "t2m", "n_dropped") == 1
    assert ver.value("emos", "t2m", "n") == len(truth) - 1
    assert np.isfinite(ver.value("emos", "t2m", "crps"))


@pytest.mark.parametrize(
    ("family", "names", "row"),
    [
        ("censored_logistic", ("loc", "scale"), [-2.0, 1.0]),
        ("censored_logistic", ("loc", "scale"), [0.5, 1.0]),
        ("censored_normal", ("loc", "scale"), [-1.0, 2.0]),
        ("censored_shifted_gamma", ("shape", "scale", "shift"), [0.5, 2.0, 0.3]),
    ],
)
def test_variance_of_bounded_families_is_the_exact_one(family, names, row):
    """200 evenly spaced quantiles missed the tails: up to 7.6 % low for mostly dry cases."""
    from scipy import integrate, stats

    from probcast.dists import Predictive
    from probcast.verify.pointwise import case_scores

    latent = {  # censored at 0
        "censored_logistic": lambda: stats.logistic(row[0], row[1]),
        "censored_normal": lambda: stats.norm(row[0], row[1]),
        "censored_shifted_gamma": lambda: stats.gamma(row[0], scale=row[1], loc=-row[2]),
    }[family]()
    m1 = integrate.quad(latent.sf, 0.0, np.inf, limit=200)[0]
    m2 = 2.0 * integrate.quad(lambda x: x * latent.sf(x), 0.0, np.inf, limit=200)[0]
    exact = m2 - m1**2
    fc = Predictive("tp", "params", np.array([row]), param_names=names, family=family)
    got = case_scores(fc, np.array([1.0]))["var"][0]
    assert got == pytest.approx(exact, rel=2e-3)
