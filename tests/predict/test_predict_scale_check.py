"""An input on another scale than the training data is refused, not predicted silently (audit).

Precipitation in metres for a model trained in mm sat inside the training range (only a few
rows flagged): exit 0 and a CRPS twice as bad. A dead feed (one value everywhere) and lead
times x1000 went through the same way. ``probcast.model.scale`` compares the input's
typical size per column with the quantiles of ``domain.json``.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

import probcast
from probcast.model.applicability import ExtrapolationError
from probcast.model.options import DomainPolicy
from probcast.predict.request import PredictRequest
from probcast.testing.models import untrained_model
from probcast.testing.stations import station_table

HEADS = {"t2m": "normal", "tp": "normal"}


@pytest.fixture(scope="module")
def model():
    return untrained_model(station_table(n_stations=4, n_inits=30, seed=1), HEADS)


@pytest.fixture
def rows() -> pd.DataFrame:
    return station_table(n_stations=4, n_inits=6, seed=2, start="2021-03-01")


def _scale_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "probcast.model.scale"]


def _run(model, rows: pd.DataFrame, **options):
    return probcast.run(PredictRequest(model="m", input=rows, **options), model=model)


def test_an_input_like_the_training_data_is_predicted_without_a_word(model, rows, caplog):
    with caplog.at_level(logging.WARNING, logger="probcast.model.scale"):
        result = _run(model, rows)
    assert len(result.table) == len(rows)
    assert not _scale_lines(caplog)


def test_precipitation_in_metres_is_refused_naming_input_column_and_sizes(model, rows, tmp_path):
    metres = rows.assign(fc_tp=rows["fc_tp"] / 1000.0)
    path = tmp_path / "metres.parquet"
    metres.to_parquet(path, index=False)
    for source, name in ((metres, "input table"), (path, str(path))):
        with pytest.raises(ExtrapolationError) as err:
            _run(model, source)
        msg = str(err.value)
        assert msg.startswith(f"{name}: not on the scale of the model's training data")
        assert "column 'fc_tp'" in msg and "times smaller than in training" in msg, msg
        assert "given in metres?" in msg and "extrapolation='warn'" in msg, msg


def test_extrapolation_warn_predicts_it_with_a_warning(model, rows, caplog):
    metres = rows.assign(fc_tp=rows["fc_tp"] / 1000.0)
    with caplog.at_level(logging.WARNING, logger="probcast.model.scale"):
        result = _run(model, metres, extrapolation="warn")
    assert len(result.table) == len(rows)
    assert any("column 'fc_tp'" in m and "predicted anyway" in m for m in _scale_lines(caplog))


def test_a_dead_feed_is_refused_but_a_dry_day_is_not(model, rows):
    with pytest.raises(ExtrapolationError, match=r"'fc_t2m': the single value 280 on all 72"):
        _run(model, rows.assign(fc_t2m=280.0))
    dry = rows.assign(fc_tp=0.0)  # no rain anywhere: 0 is a point mass of the training
    assert len(_run(model, dry).table) == len(rows)


def test_lead_times_a_thousand_times_too_long_are_refused(model, rows):
    """Decision: a few rows past the hard limit are flagged (``flag``), a whole input whose
    typical lead time is 100x the longest training one is a units problem: refused."""
    long = rows.assign(lead_time=rows["lead_time"] * 1000.0)
    long["valid_time"] = long["init_time"] + pd.to_timedelta(long["lead_time"], unit="h")
    with pytest.raises(ExtrapolationError, match=r"'lead_time': typical lead time 12000 h"):
        _run(model, long)
    assert len(_run(model, long, extrapolation="warn").table) == len(rows)
    later = rows.assign(lead_time=rows["lead_time"] + 100.0)  # beyond the range: flagged
    later["valid_time"] = later["init_time"] + pd.to_timedelta(later["lead_time"], unit="h")
    flags = _run(model, later).table["applicability"]
    assert flags.str.contains("lead").all()


def test_a_factor_of_a_few_is_no_units_problem_but_an_odd_size_is_a_warning(model, rows, caplog):
    fast = rows.assign(fc_ws10=rows["fc_ws10"] * 10.0)  # median 50 m s-1: km/h, knots?
    with caplog.at_level(logging.WARNING, logger="probcast.model.scale"):
        assert len(_run(model, fast).table) == len(rows)
    lines = _scale_lines(caplog)
    assert len(lines) == 1 and "input table: fc_ws10: median speed" in lines[0], lines


def test_too_few_values_are_not_judged(model, rows):
    few = rows.iloc[:12].assign(fc_tp=rows["fc_tp"].iloc[:12] / 1000.0, fc_t2m=280.0)
    assert len(_run(model, few).table) == 12


def test_observations_in_metres_refused_only_where_they_make_recent_errors():
    from probcast.model.domain import domain_from_frame
    from probcast.model.scale import check_scale

    train = station_table(n_stations=4, n_inits=30, seed=1)
    train["err_tp"] = train["obs_tp"] - train["fc_tp"]
    rows = station_table(n_stations=4, n_inits=6, seed=2, start="2021-03-01")
    rows["obs_tp"] = rows["obs_tp"] / 1000.0
    reads = domain_from_frame(train, ["fc_tp", "err_tp", "fc_t2m"])
    with pytest.raises(ExtrapolationError, match=r"column 'obs_tp': typical size"):
        check_scale(reads, rows, DomainPolicy())
    ignores = domain_from_frame(train, ["fc_tp", "fc_t2m"])  # obs only copied to the output
    lines = check_scale(ignores, rows, DomainPolicy())
    assert lines and "obs_tp: non-zero amounts have a median" in lines[0], lines


def test_point_masses_and_padding_rows_are_no_dead_feed():
    from probcast.model.domain import domain_from_frame
    from probcast.model.scale import check_scale, trained_size
    from probcast.products.table import PAD_MARK

    train = station_table(n_stations=4, n_inits=30, seed=1)
    train["fc_tcc"] = np.clip(np.random.default_rng(0).normal(0.7, 0.5, len(train)), 0, 1)
    domain = domain_from_frame(train, ["fc_tp", "fc_t2m", "fc_tcc"])
    overcast = station_table(n_stations=4, n_inits=6, seed=2).assign(fc_tcc=1.0)
    assert check_scale(domain, overcast, DomainPolicy()) == []
    one = overcast.iloc[:1]
    pads = pd.concat([one] * 40, ignore_index=True)
    pads["station"] = [f"ST000{PAD_MARK}{i}" for i in range(40)]
    pads["valid_time"] = pads["valid_time"] + pd.to_timedelta(np.arange(40), unit="h")
    assert check_scale(domain, pd.concat([one, pads]), DomainPolicy()) == []
    # the training's typical size, from its 17 quantiles, is close to the data's own
    wet = train.loc[train["fc_tp"] > 0, "fc_tp"].median()
    size = trained_size(domain.features["fc_tp"])
    assert size is not None and 0.5 < size / wet < 2.0


def test_heavy_rain_drizzle_and_calm_runs_are_predicted(model, rows):
    """Real runs move precipitation's typical size by more than 100x: on sydney-rain's hourly
    set a heavy-rain run's is 171 times the training's, on verif-norway-precip a drizzle
    run's 51 times smaller. Neither is refused; nor is a calm run's wind."""
    heavy = rows.assign(fc_tp=np.minimum(rows["fc_tp"] * 500.0 + 1.0, 900.0))
    assert len(_run(model, heavy).table) == len(rows)
    drizzle = rows.assign(fc_tp=rows["fc_tp"] / 1000.0)
    drizzle.loc[drizzle.index[0], "fc_tp"] = float(rows["fc_tp"].max())  # one real shower
    assert len(_run(model, drizzle).table) == len(rows)
    calm = rows.assign(fc_ws10=rows["fc_ws10"] / 500.0)
    assert len(_run(model, calm).table) == len(rows)
