"""FeatureSpec: one code path for training and prediction."""

from __future__ import annotations

import json
import logging

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probcast.configs import tiny
from probcast.features import UNKNOWN_STATION, FeatureSpec, resolve_targets, usable_rows
from probcast.model.network import head_families
from probcast.testing.stations import station_table


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return station_table(n_stations=3, n_inits=10)


def test_shapes_and_names(table):
    spec = FeatureSpec.fit(table, None)
    batch = spec.transform(table)
    assert spec.targets == ["t2m", "tp"]
    assert batch.x.shape == (len(table), spec.n_features) == (len(table), len(spec.feature_names()))
    assert batch.x.dtype == np.float32 and batch.station.dtype == np.int32
    assert batch.center.shape == batch.y.shape == batch.mask.shape == (len(table), 2)
    assert batch.scale.shape == (2,)
    assert {"fc_ws10", "fc_t2m", "fc_tp", "lead_time", "latitude", "altitude"} <= set(spec.columns)
    assert {"sin_hour", "cos_hour"} <= set(spec.feature_names())
    np.testing.assert_allclose(batch.center[:, 0], table["fc_t2m"], rtol=1e-6)


def test_normalisation_uses_training_rows_only(table):
    train, test = table.iloc[:60], table.iloc[60:]
    spec = FeatureSpec.fit(train, "t2m")
    j = spec.columns.index("fc_t2m")
    assert spec.mean[j] == pytest.approx(train["fc_t2m"].mean())
    assert spec.std[j] == pytest.approx(train["fc_t2m"].std(ddof=0))
    x = spec.transform(test).x[:, j]
    np.testing.assert_allclose(x, (test["fc_t2m"] - spec.mean[j]) / spec.std[j], rtol=1e-5)
    err = train["obs_t2m"] - train["fc_t2m"]
    assert spec.scale == [pytest.approx(err.std(ddof=0))]


def test_unknown_station_gets_index_zero(table):
    spec = FeatureSpec.fit(table, None)
    other = table.iloc[:3].assign(station="NEW")
    assert (spec.transform(other).station == UNKNOWN_STATION).all()
    assert spec.transform(table).station.min() == 1
    assert spec.n_stations == 4


def test_missing_predictor_imputed_with_indicator(table):
    train = table.copy()
    train.loc[::7, "fc_ws10"] = np.nan
    spec = FeatureSpec.fit(train, None)
    # recent errors always have an indicator (missing in operational inputs)
    assert spec.indicators == ["fc_ws10", "err_t2m", "err_tp"]
    batch = spec.transform(train)
    ind = spec.feature_names().index("missing_fc_ws10")
    col = spec.columns.index("fc_ws10")
    missing = train["fc_ws10"].isna().to_numpy()
    assert np.isfinite(batch.x).all()
    assert (batch.x[missing, ind] == 1).all() and (batch.x[~missing, ind] == 0).all()
    assert (batch.x[missing, col] == 0).all()


def test_missing_unflagged_predictor_warns(table, caplog):
    spec = FeatureSpec.fit(table, None)
    bad = table.copy()
    bad.loc[0, "fc_ws10"] = np.nan
    with caplog.at_level(logging.WARNING):
        batch = spec.transform(bad)
    assert np.isfinite(batch.x).all()
    assert "fc_ws10" in caplog.text


def test_missing_raw_forecast_is_an_error(table):
    spec = FeatureSpec.fit(table, None)
    bad = table.copy()
    bad.loc[[2, 5], "fc_tp"] = np.nan
    with pytest.raises(ValueError, match=r"fc_tp.*2 row.*\[2, 5\]"):
        spec.transform(bad)


def test_usable_rows_drops_missing_center_and_all_obs(table):
    bad = table.copy()
    bad.loc[0, "fc_t2m"] = np.nan
    bad.loc[1, ["obs_t2m", "obs_tp"]] = np.nan
    bad.loc[2, "obs_tp"] = np.nan
    kept = usable_rows(bad, ["t2m", "tp"])
    assert len(kept) == len(bad) - 2
    batch = FeatureSpec.fit(kept, None).transform(kept)
    assert batch.mask.sum() == 2 * len(kept) - 1


def test_missing_obs_and_no_obs_columns(table):
    spec = FeatureSpec.fit(table, None)
    batch = spec.transform(table.drop(columns=["obs_t2m", "obs_tp"]))
    assert np.isnan(batch.y).all() and not batch.mask.any()


def test_bad_targets_and_predictors(table):
    with pytest.raises(ValueError, match="obs_msl"):
        resolve_targets(table, "msl")
    assert resolve_targets(table.assign(obs_msl=1e5), "") == ["t2m", "tp"]  # no fc_msl
    vis = table.assign(obs_vis=1e4, fc_vis=9e3)  # a variable without units, range or family
    assert resolve_targets(vis, None) == ["t2m", "tp", "vis"]
    model = tiny.get_config().model
    with pytest.raises(ValueError, match=r"target 'vis': unknown variable.*data\.targets"):
        head_families(resolve_targets(vis, None), model)
    model.distributions = "vis:normal"  # a family of one's own: trained as before
    assert head_families(resolve_targets(vis, None), model)["vis"] == "normal"
    with pytest.raises(ValueError, match="no targets"):
        resolve_targets(table.drop(columns=["obs_t2m", "obs_tp"]), None)
    with pytest.raises(ValueError, match="fc_nope"):
        FeatureSpec.fit(table, None, {"predictors": "fc_nope"})
    spec = FeatureSpec.fit(table, None)
    with pytest.raises(ValueError, match="fc_ws10"):
        spec.transform(table.drop(columns=["fc_ws10"]))


def test_json_round_trip(table):
    spec = FeatureSpec.fit(table, "tp", {"cyclic": False, "statics": False})
    again = FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    np.testing.assert_array_equal(again.transform(table).x, spec.transform(table).x)
    assert "latitude" not in spec.columns and "err_tp" in spec.indicators
    assert spec.n_features == len(spec.columns) + len(spec.indicators)


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(0.0, 23.99))
def test_cyclic_features_bounded(day, hour):
    t = pd.Timestamp("2000-01-01", tz="UTC") + pd.Timedelta(days=day, hours=hour)
    table = station_table(n_stations=1, n_inits=2)
    spec = FeatureSpec.fit(table, None)
    row = table.iloc[:1].assign(init_time=t, lead_time=0.0, valid_time=t)
    names = spec.feature_names()
    x = spec.transform(row).x[0]
    sin_h, cos_h = x[names.index("sin_hour")], x[names.index("cos_hour")]
    assert sin_h**2 + cos_h**2 == pytest.approx(1.0, abs=1e-5)


def test_day_of_year_only_for_periods_of_most_of_a_year():
    short = station_table(n_stations=2, n_inits=40)  # 40 days
    spec = FeatureSpec.fit(short, None)
    assert not spec.doy and {"sin_hour", "cos_hour"} <= set(spec.feature_names())
    assert "sin_doy" not in spec.feature_names()
    assert spec.transform(short).x.shape[1] == spec.n_features
    year = station_table(n_stations=1, n_inits=400, leads=(6.0,))
    assert FeatureSpec.fit(year, None).doy
    assert FeatureSpec.fit(short, None, {"day_of_year": "true"}).doy
    assert not FeatureSpec.fit(year, None, {"day_of_year": False}).doy
    assert not FeatureSpec.fit(year, None, {"cyclic": False}).doy
    with pytest.raises(ValueError, match="day_of_year"):
        FeatureSpec.fit(short, None, {"day_of_year": "sometimes"})


def test_spec_saved_before_day_of_year_option_keeps_it(table):
    old = FeatureSpec.fit(table, None, {"day_of_year": True}).to_dict()
    del old["doy"]  # a spec written before the field existed
    spec = FeatureSpec.fit(table, None, {"day_of_year": True})
    assert FeatureSpec.from_dict(old) == spec


def test_cyclic_encoding_values_units_and_missing_times():
    from probcast.time_features import cyclic, cyclic_ns

    times = pd.Series(["2021-01-01T06:00", None, "2020-12-31T18:30", "1969-07-20T20:17"])
    got = cyclic(times)
    hour = np.array([6.0, np.nan, 18.5, 20 + 17 / 60]) / 24.0
    doy = (np.array([1.0, np.nan, 366.0, 201.0]) - 1.0) / 365.25
    ang = 2.0 * np.pi * np.stack([hour, doy], axis=1)
    np.testing.assert_array_equal(got, np.concatenate([np.sin(ang), np.cos(ang)], axis=1))
    # the same instants in another unit and time zone, and as nanoseconds (streamed batches)
    aware = pd.to_datetime(times, utc=True)
    other = aware.astype("datetime64[us, UTC]").dt.tz_convert("Asia/Seoul")
    np.testing.assert_array_equal(cyclic(other, doy=False), got[:, [0, 2]])
    ns = aware.dropna().array.as_unit("ns").asi8
    np.testing.assert_array_equal(cyclic_ns(ns), got[~np.isnan(got[:, 0])])
