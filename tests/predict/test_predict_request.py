"""PredictRequest: parsing and checking once, for every caller."""

from __future__ import annotations

import pandas as pd
import pytest
import xarray as xr

from probcast.predict.request import (
    PredictRequest,
    RequestError,
    is_grid,
    parse_levels,
    parse_percentiles,
    parse_thresholds,
)
from probcast.products.table import format_level


def test_option_parsing():
    assert parse_thresholds("tp:0.1,1,5;t2m:273.15") == {"tp": (0.1, 1, 5), "t2m": (273.15,)}
    assert parse_thresholds(["tp:1", "t2m:273.15"]) == {"tp": (1.0,), "t2m": (273.15,)}
    assert parse_levels("0.05,0.5,0.95") == (0.05, 0.5, 0.95)
    assert parse_percentiles("5, 50,95") == (5.0, 50.0, 95.0)
    assert [format_level(v) for v in (0.05, 1.0, 273.15)] == ["0.05", "1", "273.15"]
    for bad in ("tp=1", "tp:", "tp:a,b"):
        with pytest.raises(RequestError, match="thresholds"):
            parse_thresholds(bad)
    with pytest.raises(RequestError, match="quantiles"):
        parse_levels("0.1,x")


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("quantiles", (0.0, 0.5), r"\(0, 1\)"),
        ("percentiles", (50.0, 5.0), "increasing"),
        ("percentiles", (0.0,), r"\(0, 100\)"),
        ("members", -1, "members"),
        ("thresholds", {"tp": (5.0, 1.0)}, "increasing"),
        ("combine", "average", "combine"),
        ("batch_size", 0, "batch_size"),
        ("tile", 0, "tile"),
        ("inflevel", 1.5, "inflevel"),
    ],
)
def test_bad_requests_name_the_field(field, value, match):
    with pytest.raises(RequestError, match=match):
        PredictRequest(model="m", input="x.parquet", **{field: value})


def test_input_kind_and_defaults(tmp_path):
    assert not PredictRequest(model="m", input="x.parquet").gridded
    assert not PredictRequest(model="m", input=pd.DataFrame()).gridded
    assert PredictRequest(model="m", input="run.grib2").gridded
    assert is_grid(xr.Dataset())
    req = PredictRequest(model="m", input="x.nc", quantiles=(0.1, 0.9))
    assert req.grid_percentiles == (10.0, 90.0)
    assert PredictRequest(model="m", input="x.nc").grid_percentiles == (5, 25, 50, 75, 95)
    assert req.replace(members=3).members == 3
    # a station table takes percentiles as quantile levels too (not silently nothing)
    both = PredictRequest(model="m", input="x.csv", quantiles=(0.5, 0.1), percentiles=(10.0, 90.0))
    assert both.station_quantiles == (0.1, 0.5, 0.9)
    described = PredictRequest(
        model="m", input=pd.DataFrame(), thresholds={"tp": (1.0,)}
    ).describe()
    assert described["input"] == "<in-memory DataFrame>" and described["thresholds"] == {
        "tp": [1.0]
    }
