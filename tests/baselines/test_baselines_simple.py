"""Raw and dressing baselines; the Predictive container they return."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from probcast.baselines import BASELINES, Baseline, DressingBaseline, RawBaseline, make
from probcast.dists import Predictive


def _table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "station": ["s1"] * 6,
            "lead_time": [6.0, 6.0, 6.0, 12.0, 12.0, 12.0],
            "fc_tp": [1.0, 2.0, 0.0, 1.0, 2.0, 0.0],
            "obs_tp": [2.0, 2.0, 1.0, 0.0, 1.0, 0.0],
        }
    )


def test_raw_crps_is_mae() -> None:
    t = _table()
    f = RawBaseline("tp").fit(t).predict(t)
    np.testing.assert_allclose(f.crps(t["obs_tp"].to_numpy()), np.abs(t["fc_tp"] - t["obs_tp"]))


def test_dressing_members_are_forecast_plus_bin_errors_clipped() -> None:
    t = _table()
    d = DressingBaseline("tp", n_members=3).fit(t)
    f = d.predict(t)
    assert f.members is not None and f.members.shape == (6, 3)
    # errors at lead 6: {1, 0, 1} -> quantiles at 1/6, 1/2, 5/6 of the sorted errors
    np.testing.assert_allclose(
        f.members[0], 1.0 + np.quantile([1.0, 0.0, 1.0], [1 / 6, 0.5, 5 / 6])
    )
    # lead 12 errors {-1, -1, 0}: a zero forecast dressed below 0 is clipped to 0
    assert np.all(f.members[5] >= 0.0) and f.members[5].min() == 0.0


def test_dressing_crps_on_toy_matches_hand_computation() -> None:
    train = pd.DataFrame({"lead_time": 6.0, "fc_t2m": 0.0, "obs_t2m": [-1.0, 1.0]})
    d = DressingBaseline("t2m", n_members=2).fit(train)
    f = d.predict(pd.DataFrame({"lead_time": [6.0], "fc_t2m": [10.0]}))
    members = np.quantile([-1.0, 1.0], [0.25, 0.75]) + 10.0  # 9.5, 10.5
    np.testing.assert_allclose(f.members[0], members)
    # fair CRPS at y = 10: mean|x - y| - |x1 - x2| / (2 * 2 * 1)
    assert f.crps(np.array([10.0]))[0] == pytest.approx(0.5 - 1.0 / 2.0)
    assert f.crps(np.array([10.0]), fair=False)[0] == pytest.approx(0.5 - 1.0 / 4.0)


def test_dressing_round_trip_and_make() -> None:
    t = _table()
    d = DressingBaseline("tp", n_members=5).fit(t)
    again = DressingBaseline.from_dict(d.to_dict())
    np.testing.assert_array_equal(again.predict(t).members, d.predict(t).members)
    for name in BASELINES:
        assert isinstance(make(name, "tp"), Baseline)
    with pytest.raises(KeyError, match="emos-local"):
        make("analog", "tp")


def test_forecast_quantiles_and_mean_both_kinds() -> None:
    ens = Predictive.from_members("t2m", np.array([[1.0, 2.0, 3.0]]))
    assert ens.mean()[0] == pytest.approx(2.0)
    np.testing.assert_allclose(ens.quantiles([0.5]), [[2.0]])
    par = Predictive.from_params(
        "t2m", "normal", {"loc": np.array([1.0]), "scale": np.array([2.0])}
    )
    assert par.quantiles([0.5, 0.8413447]) == pytest.approx(np.array([[1.0, 3.0]]), abs=1e-4)
    assert len(par) == 1 and len(ens) == 1
    with pytest.raises(ValueError, match="family name"):
        Predictive("t2m", "params", np.ones((1, 2)))
    with pytest.raises(ValueError, match="needs parameters"):
        Predictive.from_params("t2m", "normal", {"loc": np.array([1.0])})


def test_missing_columns_are_reported() -> None:
    with pytest.raises(KeyError, match="obs_tp"):
        RawBaseline("tp").fit(pd.DataFrame({"fc_tp": [1.0], "lead_time": [6.0]}))
