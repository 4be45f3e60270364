"""``verify`` refuses to report a score when nothing, or something invalid, was verified."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probcast.testing import verification as syn
from probcast.verify.evaluate import verify


@pytest.fixture(scope="module")
def tables():
    truth, mu, sigma = syn.truth_table(n_stations=3, n_inits=6)
    return truth, mu, sigma


def test_no_matched_case_is_an_error(tables):
    truth, mu, sigma = tables
    ens = syn.members_table(truth, mu, sigma, n_members=5)
    ens["station"] = "X" + ens["station"].astype(str)
    with pytest.raises(ValueError, match=r"forecast 'ens' and the truth\.csv have no case"):
        verify(truth, {"ens": ens}, truth_name="truth.csv")


def test_no_forecast_column_is_an_error(tables):
    truth = tables[0]
    keys = syn.keys_of(truth)
    keys["other_m000"] = 1.0
    with pytest.raises(ValueError, match=r"nothing to verify.*obs_t2m"):
        verify(truth, {"ens": keys})


@pytest.mark.parametrize("value", [1.7, -0.1, np.inf])
def test_probabilities_outside_unit_interval_name_the_column(tables, value):
    truth, mu, sigma = tables
    ens = syn.members_table(truth, mu, sigma, n_members=5)
    ens["t2m_p_gt_280"] = 0.5
    ens.loc[4, "t2m_p_gt_280"] = value
    with pytest.raises(ValueError, match=r"'ens': column 't2m_p_gt_280' has 1 probabilit.*row 4"):
        verify(truth, {"ens": ens})


def test_crossing_quantiles_are_an_error(tables):
    truth, mu, sigma = tables
    q = syn.quantiles_table(truth, mu, sigma, levels=(0.1, 0.5, 0.9))
    verify(truth, {"q": q})
    noisy = q.copy()  # float rounding of equal quantiles is not a crossing
    noisy["t2m_q0.5"] = noisy["t2m_q0.1"] * (1 - 1e-7)
    verify(truth, {"q": noisy})
    q.loc[2, ["t2m_q0.1", "t2m_q0.9"]] = q.loc[2, ["t2m_q0.9", "t2m_q0.1"]].to_numpy()
    with pytest.raises(ValueError, match=r"'q': t2m \(quantiles\): quantiles decrease .*row 2"):
        verify(truth, {"q": q})


def test_thresholds_of_a_variable_not_verified_are_an_error(tables):
    truth, mu, sigma = tables
    ens = syn.members_table(truth, mu, sigma, n_members=5)
    with pytest.raises(ValueError, match=r"thresholds of \['tp'\], which no forecast"):
        verify(truth, {"ens": ens}, thresholds={"tp": [1.0], "t2m": [280.0]})


@pytest.mark.parametrize("form", ["members", "quantiles", "params"])
def test_forecast_in_other_units_than_canonical_is_an_error(tables, form):
    # a CSV of degC values that lost its units sidecar would be scored as K
    truth, mu, sigma = tables
    if form == "members":
        fc = syn.members_table(truth, mu - 273.15, sigma, n_members=5)
    elif form == "quantiles":
        fc = syn.quantiles_table(truth, mu - 273.15, sigma, levels=(0.1, 0.5, 0.9))
    else:
        fc = syn.keys_of(truth).assign(t2m_loc=mu - 273.15, t2m_scale=sigma)
    with pytest.raises(ValueError, match=r"'fc': t2m .*physical range.*'degC'.*--units"):
        verify(truth, {"fc": fc}, families={"fc": {"t2m": "normal"}})
    fc = syn.members_table(truth, mu, sigma, n_members=5)
    fc.loc[3, "t2m_m000"] = 1e4  # one corrupted value among right ones
    with pytest.raises(ValueError, match=r"1 value\(s\) beyond any plausible t2m.*row 3"):
        verify(truth, {"fc": fc})


def test_a_gaussian_forecast_of_a_bounded_variable_is_scored(tables):
    # its low quantiles and members may lie below 0 m/s: a forecast, not wrong units
    truth, mu, _ = tables
    wind = truth.assign(obs_ws10=np.abs(truth["obs_t2m"] - mu) + 0.5).drop(columns="obs_t2m")
    centre = np.full(len(wind), 1.0)
    q = syn.keys_of(wind).assign(**{"ws10_q0.05": centre - 2.0, "ws10_q0.5": centre})
    q["ws10_q0.95"] = centre + 2.0
    members = syn.keys_of(wind).assign(**{f"ws10_m{j:03d}": centre + j - 2.0 for j in range(5)})
    ver = verify(wind, {"q": q, "m": members})
    crps = ver.scores.query("metric == 'crps' and by == 'all'")["value"]
    assert len(crps) == 2 and np.isfinite(crps).all()


@pytest.mark.parametrize("where", ["all", "one"])
def test_infinite_members_are_an_error(tables, where):
    truth, mu, sigma = tables
    ens = syn.members_table(truth, mu, sigma, n_members=5)
    cols = [c for c in ens.columns if c.startswith("t2m_m")]
    if where == "all":
        ens[cols] = np.inf
    else:
        ens.loc[3, cols[1]] = -np.inf
    with pytest.raises(ValueError, match=r"'ens': t2m \(members\) has infinite values"):
        verify(truth, {"ens": ens})


def test_dropped_cases_are_counted_and_all_dropped_is_an_error(tables):
    truth, mu, sigma = tables
    ens = syn.members_table(truth, mu, sigma, n_members=5)
    truth = truth.copy()
    truth.loc[[0, 1, 2], "obs_t2m"] = np.nan
    ens.loc[7, "t2m_m002"] = np.nan
    v = verify(truth, {"ens": ens})
    assert v.meta["dropped"] == {
        "ens": {"t2m": {"cases": len(truth), "missing_observation": 3, "missing_forecast": 1}}
    }
    truth["obs_t2m"] = np.nan
    with pytest.raises(ValueError, match=r"nothing verified: forecast 'ens', t2m"):
        verify(truth, {"ens": ens})


@settings(max_examples=30, deadline=None)
@given(p=st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=8))
def test_probability_check_accepts_exactly_the_unit_interval(tables, p):
    truth, mu, sigma = tables
    ens = syn.members_table(truth, mu, sigma, n_members=3)
    vals = np.resize(np.asarray(p, dtype="float64"), len(ens))
    ens["t2m_p_gt_280"] = vals
    ok = bool(np.all(np.isnan(vals) | ((vals >= 0) & (vals <= 1))))
    if ok:
        verify(truth, {"ens": ens}, n_boot=0)
    else:
        with pytest.raises(ValueError, match="outside"):
            verify(truth, {"ens": ens}, n_boot=0)
