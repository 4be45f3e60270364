"""Station ids as text: one spelling per station whatever the column's dtype."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st

from probcast.align.tables import align_station_obs
from probcast.features import FeatureSpec
from probcast.station_ids import as_text, text_of
from probcast.testing.stations import station_table
from probcast.train.stream_transform import ArrowTransform
from probcast.validate import validate_station_table


def test_integral_floats_are_written_as_integers_and_text_is_kept():
    assert list(as_text(pd.Series([7.0, 8.0]))) == ["7", "8"]
    assert list(as_text(pd.Series([7.0, 8.5]))) == ["7", "8.5"]
    assert list(as_text(pd.Series([7, 12345678901]))) == ["7", "12345678901"]
    assert list(as_text(pd.Series(["007", "KBOS", "010010-99999"]))) == [
        "007",
        "KBOS",
        "010010-99999",
    ]
    assert list(as_text(pd.Series([7.0, "7", 7], dtype=object))) == ["7", "7", "7"]
    assert list(as_text(pd.Series([3.0, 1.0]).astype("category"))) == ["3", "1"]
    assert list(as_text(pd.Series(["7.0"]))) == ["7.0"]  # text is the user's spelling
    index = pd.Index([5, 9])
    assert list(as_text(pd.Series([1.0, 2.0], index=index)).index) == [5, 9]


@given(st.integers(min_value=-(2**52), max_value=2**52))
def test_an_integer_id_has_one_spelling_as_int_float_and_text(n):
    assert text_of(n) == text_of(float(n)) == text_of(np.float32(n) if abs(n) < 2**24 else n)
    assert text_of(n) == str(n)
    assert list(as_text(pd.Series([float(n)]))) == [str(n)]


def test_a_float_station_column_validates_to_the_integer_ids():
    table = station_table(n_stations=3, n_inits=4, leads=(6.0,))
    table["station"] = table["station"].astype(str)
    ints = table.assign(station=np.arange(len(table)) % 3 + 1)
    floats = ints.assign(station=ints["station"].astype("float64"))
    a = validate_station_table(ints, source="ints")
    b = validate_station_table(floats, source="floats")
    assert set(b["station"]) == {"1", "2", "3"}
    pd.testing.assert_series_equal(a["station"], b["station"])


def test_a_model_trained_on_integer_ids_knows_the_same_stations_as_floats():
    table = station_table(n_stations=4, n_inits=30, leads=(3.0, 6.0))
    table["station"] = pd.factorize(table["station"])[0] + 100  # integer ids
    spec = FeatureSpec.fit(table, None, {"recent_error_hours": 0.0})
    assert spec.stations == ["100", "101", "102", "103"]
    as_float = table.assign(station=table["station"].astype("float64"))
    expected = spec.station_index(table["station"])
    assert (expected > 0).all()
    np.testing.assert_array_equal(spec.station_index(as_float["station"]), expected)
    rb = pa.RecordBatch.from_pandas(as_float, preserve_index=False)
    np.testing.assert_array_equal(ArrowTransform(spec)(rb).station, expected)


def test_observations_with_float_ids_pair_with_integer_forecast_ids():
    fc = pd.DataFrame(
        {
            "station": [1, 2],
            "valid_time": pd.to_datetime(["2024-01-01T06:00", "2024-01-01T06:00"], utc=True),
            "fc_t2m": [280.0, 281.0],
        }
    )
    obs = pd.DataFrame(
        {
            "station": [1.0, 2.0],
            "time": pd.to_datetime(["2024-01-01T06:00", "2024-01-01T06:00"], utc=True),
            "obs_t2m": [279.5, 282.0],
        }
    )
    out = align_station_obs(fc, obs)
    assert list(out["obs_t2m"]) == [279.5, 282.0]


def test_forecast_and_truth_tables_key_float_and_integer_ids_alike():
    from probcast.products.table import normalise_keys

    base = {"init_time": ["2024-01-01"], "lead_time": [6.0]}
    floats = normalise_keys(pd.DataFrame({"station": [11450.0], **base}))
    ints = normalise_keys(pd.DataFrame({"station": [11450], **base}))
    assert list(floats["station"]) == list(ints["station"]) == ["11450"]
