"""A PredictRequest built from Python: arguments of the wrong type are a RequestError naming
the field, the value's type and what was expected, at construction (audit: deep TypeErrors
from pathlib and JAX), and thresholds or units of a variable the model does not predict are
refused before any prediction, in words for Python callers and the CLI alike."""

from __future__ import annotations

import json

import numpy as np
import pytest

import probcast
from probcast.predict import runner
from probcast.predict.request import PredictRequest, RequestError
from probcast.testing.models import untrained_model
from probcast.testing.stations import station_table


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("members", 2.5, r"members must be an integer, got float 2\.5"),
        ("members", "5", r"members must be an integer, got str '5'"),
        ("members", None, r"members must be an integer, got None"),
        ("members", True, r"members must be an integer, got bool"),
        ("seed", "1", r"seed must be an integer, got str '1'"),
        ("seed", 1.5, r"seed must be an integer, got float 1\.5"),
        ("batch_size", 100.5, r"batch_size must be an integer, got float"),
        ("quantile_members", 10.0, r"quantile_members must be an integer, got float"),
        ("tile", "256", r"tile must be an integer, got str"),
        ("quantiles", "0.1,0.5", r"quantiles must be a sequence of numbers, got str.*parse_levels"),
        ("quantiles", ("0.1",), r"quantiles must be a sequence of numbers, got tuple"),
        ("percentiles", "5,95", r"percentiles must be a sequence of numbers.*parse_percentiles"),
        ("thresholds", "tp:0.1,1", r"thresholds must be a mapping .*got str.*parse_thresholds"),
        ("thresholds", {"tp": "1"}, r"thresholds\['tp'\] must be a number or a sequence"),
        ("thresholds", {"tp": [1.0, None]}, r"thresholds\['tp'\] must be .*got list"),
        ("thresholds", {1: (1.0,)}, r"a variable of thresholds must be a name \(str\), got int"),
        ("params", "no", r"params must be True or False, got str 'no'"),
        ("inflevel", "0.9", r"inflevel must be a number, got str"),
        ("input", np.zeros((3, 3)), r"input must be .*DataFrame or an xarray.Dataset, got ndarray"),
        ("input", [1, 2], r"input must be a path .*, got list"),
        ("template", 3, r"template must be a path .*DataFrame or None, got int"),
        ("output", 5, r"output must be a path .* or None, got int"),
        ("scheduler", 8786, r"scheduler must be a str or None, got int"),
        ("model", 3, r"model must be the model's workdir \(a str or os.PathLike\), got int"),
    ],
)
def test_wrong_types_name_the_field_the_type_and_what_was_expected(field, value, match):
    args = {"model": "runs/m", "input": "x.parquet", field: value}
    with pytest.raises(RequestError, match=match):
        PredictRequest(**args)


def test_a_loaded_model_as_the_model_field_points_to_run():
    model = untrained_model(station_table(n_stations=2, n_inits=4), {"t2m": "normal"})
    with pytest.raises(RequestError, match=r"got TrainedModel; a loaded model goes to run\("):
        PredictRequest(model=model, input="x.parquet")


def test_values_are_stored_in_their_plain_form():
    req = PredictRequest(
        model="m",
        input="x.parquet",
        members=np.int64(3),
        seed=np.int32(7),
        quantiles=[0.5, 0.1],
        percentiles=np.array([5.0, 95.0]),
        thresholds={"tp": 1.0, "t2m": np.array([270.0, 280.0], dtype=np.float32)},
        params=np.bool_(False),
        inflevel=np.float32(0.5),
    )
    assert type(req.members) is int and req.members == 3 and type(req.seed) is int
    assert req.quantiles == (0.5, 0.1) and req.percentiles == (5.0, 95.0)
    # one number is one threshold
    assert req.thresholds == {"tp": (1.0,), "t2m": (270.0, 280.0)}
    assert all(type(t) is float for ts in req.thresholds.values() for t in ts)
    assert req.params is False and type(req.inflevel) is float
    json.dumps(req.describe())  # provenance: plain JSON, no NumPy scalars


@pytest.fixture(scope="module")
def model():
    return untrained_model(station_table(n_stations=2, n_inits=6), {"t2m": "normal"})


@pytest.mark.parametrize(
    ("option", "match"),
    [
        ({"thresholds": {"ws10": (5.0,)}}, r"thresholds given for \['ws10'\], which the model "),
        ({"units": {"ws10": "km/h"}}, r"^units= / --units given for \['ws10'\], which the model"),
    ],
)
def test_variables_the_model_does_not_predict_are_refused_before_predicting(
    model, option, match, monkeypatch
):
    def never(*args, **kwargs):
        raise AssertionError("predicted before the request was checked")

    monkeypatch.setattr(runner, "predict_stations", never)
    rows = station_table(n_stations=2, n_inits=2, start="2021-03-01")
    with pytest.raises(RequestError, match=match):
        probcast.run(PredictRequest(model="m", input=rows, **option), model=model)
