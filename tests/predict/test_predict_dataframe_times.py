"""A Python caller's DataFrame is checked like a file: its times in any zone, its keys
unique, its valid times consistent (audit: time)."""

from __future__ import annotations

import pandas as pd
import pytest

import probcast
from probcast.predict.request import PredictRequest
from probcast.testing.models import untrained_model
from probcast.testing.stations import station_table
from probcast.validate import ValidationError

HEADS = {"t2m": "normal"}


@pytest.fixture(scope="module")
def model():
    return untrained_model(station_table(n_stations=3, n_inits=20, targets=("t2m",)), HEADS)


@pytest.fixture
def rows():
    return station_table(n_stations=3, n_inits=3, targets=("t2m",), start="2021-02-01")


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".nc"])
def test_times_in_another_zone_are_written_in_utc(model, rows, tmp_path, suffix):
    # audit: a +12:00 DataFrame was written to CSV as '2021-01-21T12:00:00Z' for the 00 UTC
    # run, and verify then matched the other run's observations (exit 0)
    zoned = rows.copy()
    for col in ("init_time", "valid_time"):
        zoned[col] = zoned[col].dt.tz_convert("Pacific/Auckland")
    out = tmp_path / f"p{suffix}"
    probcast.run(PredictRequest(model="m", input=zoned, output=out), model=model)
    back, _ = probcast.products.table_files.read_predictions(out)
    utc = pd.to_datetime(back["init_time"], utc=True)
    assert set(utc) == set(rows["init_time"])
    assert (utc.dt.hour == 0).all()


def test_an_inconsistent_valid_time_is_refused(model, rows):
    # audit: valid_time == init_time was predicted with the wrong hour-of-day features
    bad = rows.copy()
    bad["valid_time"] = bad["init_time"]
    with pytest.raises(ValidationError, match="input table: column 'valid_time'"):
        probcast.run(PredictRequest(model="m", input=bad), model=model)


def test_repeated_keys_are_refused(model, rows):
    with pytest.raises(ValidationError, match="duplicated"):
        probcast.run(PredictRequest(model="m", input=pd.concat([rows, rows])), model=model)
