"""Inputs outside the training domain, lead times in the wrong unit, float-noise ranges.

Rows outside the model's training domain are flagged (``applicability``) with a warning, or
refused beyond the hard tolerance under ``extrapolation="refuse"``, naming the column and the
worst value; lead times in seconds are always refused with the unit named; a cloud cover off
its range by float noise is clipped at training and prediction alike, a real violation is an
error naming file, column and worst value.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

import probcast
from probcast.model.applicability import DomainPolicy, ExtrapolationError, check_rows
from probcast.predict.request import PredictRequest
from probcast.predict.station import predict_stations
from probcast.testing.models import untrained_model
from probcast.testing.stations import station_table
from probcast.validate import ValidationError, validate_station_table

HEADS = {"t2m": "normal", "tp": "censored_logistic"}


@pytest.fixture(scope="module")
def model():
    return untrained_model(station_table(n_stations=3, n_inits=20, seed=1), HEADS)


@pytest.fixture
def rows():
    return station_table(n_stations=3, n_inits=2, seed=4, start="2021-01-10")


def test_out_of_domain_rows_are_flagged_with_a_warning(model, rows, caplog):
    rows.loc[0, "fc_ws10"] = 40.0  # far above the training winds
    rows.loc[1, "station"] = "NEW01"
    rows.loc[2, "lead_time"] = 30.0
    rows["valid_time"] = rows["init_time"] + pd.to_timedelta(rows["lead_time"], unit="h")
    with caplog.at_level(logging.WARNING, logger="probcast.predict.station"):
        out = predict_stations(model, rows).table
    assert out["applicability"].tolist()[:3] == ["feature", "station", "lead"]
    assert set(out["applicability"][3:]) <= {"ok", "feature"}
    line = next(r.message for r in caplog.records if "training domain" in r.message)
    assert "lead time 1, unseen station 1" in line and "fc_ws10 1" in line
    assert (out[["t2m_source", "tp_source"]] == "model").all().all()  # flagged, not replaced


def test_refuse_beyond_the_hard_tolerance_names_column_and_worst_value(model, rows):
    rows.loc[[0, 1], "fc_ws10"] = [35.0, 90.0]
    policy = DomainPolicy("refuse", tolerance=0.1, limit=1.0)
    with pytest.raises(ExtrapolationError, match=r"column 'fc_ws10': value 90 at row 1 .*ST000"):
        predict_stations(model, rows, policy=policy)
    out = predict_stations(model, rows, policy=DomainPolicy("refuse", limit=50.0)).table
    assert out["applicability"][1] == "feature"
    request = PredictRequest(model="unused", input=rows, extrapolation="refuse")
    with pytest.raises(ValueError, match="fc_ws10"):
        probcast.run(request, model=model)


def test_warn_mode_keeps_the_layout(model, rows, caplog):
    rows.loc[0, "fc_ws10"] = 40.0
    with caplog.at_level(logging.WARNING, logger="probcast.predict.station"):
        out = predict_stations(model, rows, policy=DomainPolicy("warn")).table
    assert "applicability" not in out.columns
    assert any("1 of 18 rows outside the training domain" in r.message for r in caplog.records)


@pytest.mark.parametrize(
    "factor, unit", [(3600.0, "seconds"), (60.0, "minutes")], ids=["seconds", "minutes"]
)
def test_lead_times_in_another_unit_are_refused_in_every_mode(model, rows, factor, unit):
    rows["lead_time"] = rows["lead_time"] * factor
    rows = rows.drop(columns="valid_time")
    for mode in ("warn", "flag", "refuse"):
        with pytest.raises(ExtrapolationError, match=rf"'lead_time'.*look like {unit}.*in hours"):
            predict_stations(model, rows, policy=DomainPolicy(mode))


def test_a_lead_time_just_outside_is_not_a_unit_error(model, rows):
    rows["lead_time"] += 24.0  # training 6-24 h: 30-48 h is beyond, but plainly hours
    out = predict_stations(model, rows.drop(columns="valid_time")).table
    assert (out["applicability"].str.contains("lead")).all()


def test_model_without_domain_skips_the_checks(rows):
    old = untrained_model(station_table(n_stations=3, n_inits=20, seed=1), HEADS, domain=False)
    rows["lead_time"] = 21600.0
    out = predict_stations(old, rows.drop(columns="valid_time")).table
    assert "applicability" not in out.columns and len(out) == len(rows)


def test_check_rows_directly(model, rows):
    rows.loc[0, "fc_t2m"] = np.nan  # NaN inputs are the fallbacks' business, not flagged here
    result = check_rows(model.domain, rows, DomainPolicy())
    assert result.flagged == 0 and result.labels.tolist() == ["ok"] * len(rows)
    rows.loc[1, "fc_t2m"] = 350.0
    result = check_rows(model.domain, rows, DomainPolicy(), columns=["fc_t2m"])
    assert result.columns == {"fc_t2m": 1} and result.labels[1] == "feature"


def _tcc_table(values):
    table = station_table(n_stations=1, n_inits=len(values), leads=(6.0,), targets=("t2m",))
    return table.assign(fc_tcc=values, obs_tcc=np.clip(values, 0, 1))


def test_cloud_cover_float_noise_is_clipped_with_a_count(caplog):
    table = _tcc_table([1.000007, -3e-6, 0.5, 1.0])
    with caplog.at_level(logging.INFO, logger="probcast.validate"):
        out = validate_station_table(table, source="train.csv")
    assert out["fc_tcc"].tolist() == [1.0, 0.0, 0.5, 1.0]
    assert any("train.csv: fc_tcc: clipped 2 value(s)" in r.message for r in caplog.records)


def test_cloud_cover_real_violation_names_file_column_and_worst_value():
    with pytest.raises(ValidationError) as info:
        validate_station_table(_tcc_table([0.2, 1.3, 1.05, 0.4]), source="train.csv")
    message = str(info.value)
    assert message.startswith("train.csv: column 'fc_tcc': 2 value(s) outside")
    assert "worst 1.3 in row 1" in message
