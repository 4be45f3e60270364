"""Validation of canonical station tables, and leakage properties of the splits."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probcast.split import grid_index_split, time_split, validation_split
from probcast.validate import ValidationError, validate_station_table, validation_report


def good_table() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "station": [101, 101, 202, 202],
            "init_time": ["2020-01-01T00:00", "2020-01-01T00:00Z", "2020-01-02", "2020-01-02"],
            "lead_time": [6, 12, 6, 12],
            "latitude": [59.9, 59.9, 60.1, 60.1],
            "fc_t2m": [280.0, 281.0, 282.0, 283.0],
            "fc_extra": [1, 2, 3, 4],
            "obs_t2m": [279.0, np.nan, 283.0, 284.0],
        }
    )


def test_coerces_types_and_fills_valid_time() -> None:
    out = validate_station_table(good_table(), source="t.csv")
    assert str(out["init_time"].dtype) == "datetime64[ns, UTC]"
    assert str(out["valid_time"].dtype) == "datetime64[ns, UTC]"
    assert out["lead_time"].dtype == np.float64
    assert out["fc_extra"].dtype == np.float64
    assert out["station"].tolist() == ["101", "101", "202", "202"]
    assert out["valid_time"].iloc[1] == pd.Timestamp("2020-01-01T12:00Z")
    assert list(out.columns[:4]) == ["station", "init_time", "lead_time", "valid_time"]


def test_accepts_timedelta_leads_and_converts_time_zones() -> None:
    df = good_table().assign(
        lead_time=pd.to_timedelta([6, 12, 6, 12], unit="h"),
        init_time=pd.to_datetime(["2020-01-01 01:00"] * 2 + ["2020-01-02 01:00"] * 2).tz_localize(
            "Europe/Oslo"
        ),
    )
    out = validate_station_table(df)
    assert out["lead_time"].tolist() == [6.0, 12.0, 6.0, 12.0]
    assert out["init_time"].iloc[0] == pd.Timestamp("2020-01-01T00:00Z")


def test_consistent_valid_time_is_kept() -> None:
    df = good_table()
    df["valid_time"] = pd.to_datetime(
        df["init_time"], format="ISO8601", utc=True
    ) + pd.to_timedelta(df["lead_time"], unit="h")
    out = validate_station_table(df)
    assert out["valid_time"].iloc[3] == pd.Timestamp("2020-01-02T12:00Z")


def _bad(**changes: object) -> pd.DataFrame:
    return good_table().assign(**changes)


BAD_INPUTS = {
    "missing key": (good_table().drop(columns="lead_time"), ["missing key column", "lead_time"]),
    "no value columns": (
        good_table()[["station", "init_time", "lead_time"]],
        ["no forecast", "fc_<name>", "obs_<var>"],
    ),
    "non-numeric forecast": (_bad(fc_t2m=["a", "281", "282", "283"]), ["'fc_t2m'", "non-numeric"]),
    "unparseable time": (
        _bad(init_time=["yesterday", "2020-01-01", "2020-01-02", "2020-01-02"]),
        ["'init_time'", "not parseable", "yesterday"],
    ),
    "epoch numbers as time": (_bad(init_time=[0, 0, 1, 1]), ["'init_time'", "numeric"]),
    "missing time": (
        _bad(init_time=[None, "2020-01-01", "2020-01-02", "2020-01-03"]),
        ["'init_time'", "missing"],
    ),
    "duplicated keys": (
        _bad(lead_time=[6, 6, 6, 12]),
        ["2 rows share 1 duplicated", "station='101'", "lead_time=6 h"],
    ),
    "out of physical range": (
        _bad(fc_t2m=[7.0, 8.0, 9.0, 10.0]),
        ["fc_t2m", "outside the physical range", "would fit as 'degC' or 'degF', not 'K'"],
    ),
    "out of range observation": (_bad(obs_t2m=[279.0, 400.0, 283.0, 284.0]), ["obs_t2m", "400"]),
    "extra model in other units": (
        _bad(fc_t2m_ukmo=[7.0, 8.0, 9.0, 10.0]),  # an extra model's t2m in degC
        ["fc_t2m_ukmo", "would fit as 'degC'"],
    ),
    "all NaN": (_bad(obs_t2m=np.nan), ["'obs_t2m'", "all NaN"]),
    "inconsistent valid_time": (
        _bad(valid_time=["2020-01-01T06:00"] * 4),
        ["'valid_time'", "3 row(s)", "init_time + lead_time"],
    ),
    "negative lead": (_bad(lead_time=[-6, 12, 6, 12]), ["'lead_time'", "greater_than_or_equal"]),
    "bad latitude": (_bad(latitude=[99.0, 0, 0, 0]), ["'latitude'", "in_range"]),
    "bad lead text": (_bad(lead_time=["6h", "soon", "6h", "12h"]), ["'lead_time'", "soon"]),
    "missing station": (_bad(station=[None, 1, 2, 3]), ["'station'", "missing"]),
    "empty": (good_table().iloc[:0], ["no rows"]),
    "infinite forecast": (_bad(fc_t2m=[np.inf, 281.0, 282.0, 283.0]), ["'fc_t2m'", "infinite"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_names_source_column_and_problem(case: str) -> None:
    df, expected = BAD_INPUTS[case]
    with pytest.raises(ValidationError) as info:
        validate_station_table(df, source="bad.csv")
    message = str(info.value)
    assert message.startswith("bad.csv: ")
    for part in expected:
        assert part in message, f"{part!r} not in {message!r}"


def test_validation_error_is_value_error() -> None:
    assert issubclass(ValidationError, ValueError)


def test_report_lists_missing_fractions_and_unknown_columns() -> None:
    df = good_table().assign(comment=["x"] * 4, obs_snow=[0.0, 1.0, np.nan, np.nan])
    lines = validation_report(validate_station_table(df))
    text = "\n".join(lines)
    assert "obs_t2m: 25.00% missing (1 rows)" in text
    assert "obs_snow: 50.00% missing" in text
    assert "unknown variable 'snow'" in text
    assert "no raw forecast column fc_snow" in text
    assert "['comment']" in text
    assert lines[0].startswith("4 rows, 2 stations, 2 init times, 2 lead times")


# --- hypothesis: random canonical tables -------------------------------------------------

BASE = pd.Timestamp("2020-01-01T00:00Z")


@st.composite
def tables(draw: st.DrawFn) -> pd.DataFrame:
    stations = draw(st.lists(st.sampled_from("ABCDE"), min_size=1, max_size=3, unique=True))
    days = draw(st.lists(st.integers(0, 30), min_size=1, max_size=12, unique=True))
    leads = draw(st.lists(st.sampled_from([0.0, 6.0, 24.0, 48.0, 72.0]), min_size=1, unique=True))
    rows = [
        (s, BASE + pd.Timedelta(days=d), lead) for s in stations for d in days for lead in leads
    ]
    df = pd.DataFrame(rows, columns=["station", "init_time", "lead_time"])
    values = draw(st.lists(st.floats(250, 300), min_size=len(df), max_size=len(df)))
    df["fc_t2m"] = values
    df["obs_t2m"] = np.array(values) + 1.0
    return validate_station_table(df)


def _keys(df: pd.DataFrame) -> set[tuple[str, pd.Timestamp, float]]:
    return set(zip(df["station"], df["init_time"], df["lead_time"], strict=True))


@settings(max_examples=40, deadline=None)
@given(table=tables(), split_day=st.integers(0, 31))
def test_time_split_never_leaks(table: pd.DataFrame, split_day: int) -> None:
    test_start = BASE + pd.Timedelta(days=split_day)
    train, test = time_split(table, test_start)
    if len(train):
        assert train["valid_time"].max() < test_start
        assert train["init_time"].max() < test_start
    if len(train) and len(test):
        assert train["valid_time"].max() < test["init_time"].min()
    assert (test["init_time"] >= test_start).all()
    assert _keys(train) | _keys(test) <= _keys(table)
    assert not _keys(train) & _keys(test)


@settings(max_examples=40, deadline=None)
@given(table=tables(), fraction=st.floats(0.05, 0.95))
def test_validation_split_never_leaks(table: pd.DataFrame, fraction: float) -> None:
    if table["init_time"].nunique() < 2:
        with pytest.raises(ValueError, match="two initialisation times"):
            validation_split(table, fraction)
        return
    fit, val = validation_split(table, fraction)
    assert len(val) > 0
    if len(fit):
        assert fit["valid_time"].max() < val["init_time"].min()
    assert _keys(fit) | _keys(val) <= _keys(table)


@settings(max_examples=30, deadline=None)
@given(table=tables())
def test_validation_is_idempotent(table: pd.DataFrame) -> None:
    again = validate_station_table(table)
    pd.testing.assert_frame_equal(again, table)


def test_extra_models_are_range_checked_but_derived_predictors_are_not() -> None:
    from probcast.ranges import ranged_variable

    names = ["fc_t2m_ukmo", "fc_t2m_max", "fc_t2m_std", "fc_t2m_ens_spread", "fc_t2m_anom"]
    assert [ranged_variable(c) for c in names] == ["t2m", "t2m", None, None, None]
    spread = good_table().assign(fc_t2m_std=1.5, fc_t2m_anom=-2.0)  # kelvin differences
    validate_station_table(spread, source="ok.csv")


def test_grid_split_masks_training_truth_valid_in_the_test_period() -> None:
    import xarray as xr

    frt = pd.date_range("2024-01-01", periods=8, freq="D")
    fp = pd.to_timedelta([24, 48], unit="h")
    shape = (8, 2, 2, 3)
    dims = ("forecast_reference_time", "forecast_period", "y", "x")
    ds = xr.Dataset(
        {"fc_tp": (dims, np.ones(shape)), "obs_tp": (dims, np.ones(shape))},
        coords={"forecast_reference_time": frt, "forecast_period": fp},
    )
    train, test = grid_index_split(ds, 5)
    valid = (train["forecast_reference_time"] + train["forecast_period"]).broadcast_like(
        train["obs_tp"]
    )
    seen = pd.Series(valid.where(train["obs_tp"].notnull()).values.ravel()).max()
    assert seen < test["forecast_reference_time"].values.min()  # no test-period truth
    assert int(train["obs_tp"].notnull().sum()) == (4 * 1 + 3 * 1) * 6  # 24 h: 4, 48 h: 3
    assert bool(train["fc_tp"].notnull().all())  # forecasts are inputs: kept
