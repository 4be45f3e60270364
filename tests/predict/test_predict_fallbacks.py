"""Per-row fallbacks of station predictions: every row kept, its source flagged.

A row whose network input is missing or invalid gets local EMOS (blended targets), else the
raw forecast dressed with the training error spread, else NaN (no ``fc_<var>``); the flags
``<var>_source`` round-trip through every table format and verification ignores them.
Members and quantiles stay within the physical bounds. The model is untrained
(:mod:`probcast.testing.models`): the code paths are real, training is not needed.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

import probcast
from probcast import dists
from probcast.baselines.emos import EmosModel
from probcast.model.fallback import UnusableTableError
from probcast.predict.request import PredictRequest, RequestError
from probcast.predict.runner import run as run_request
from probcast.predict.station import predict_stations
from probcast.products.table import parse_columns, source_column
from probcast.products.table_files import read_predictions, write_predictions
from probcast.testing.models import untrained_model
from probcast.testing.stations import station_table

HEADS = {"t2m": "normal", "tp": "censored_logistic"}


@pytest.fixture(scope="module")
def model():
    train = station_table(n_stations=3, n_inits=20, seed=1)
    return untrained_model(train, HEADS, blend=["t2m"])


@pytest.fixture
def test_table():
    table = station_table(n_stations=3, n_inits=4, seed=2, start="2021-01-10")
    table.loc[0, "fc_t2m"] = np.nan  # t2m: missing; tp: no network input -> raw_dressed
    table.loc[1, "fc_tp"] = np.nan  # t2m: emos (blended); tp: missing
    table.loc[2, "fc_ws10"] = np.nan  # a predictor without indicator: emos / raw_dressed
    table.loc[3, "fc_t2m"] = np.inf  # invalid value: same as missing
    return table


def _predict(model, table, **kw):
    kw = {"members": 6, "quantiles": (0.1, 0.5, 0.9), "thresholds": {"tp": (0.1, 1.0)}, **kw}
    return predict_stations(model, table, **kw)


def test_every_row_kept_with_its_source(model, test_table, caplog):
    with caplog.at_level(logging.INFO, logger="probcast.predict.station"):
        pred = _predict(model, test_table)
    out = pred.table
    assert len(out) == len(test_table)
    assert (out["station"].to_numpy() == test_table["station"].to_numpy()).all()
    t2m, tp = out["t2m_source"].tolist(), out["tp_source"].tolist()
    assert t2m[:4] == ["missing", "emos", "emos", "missing"]
    assert tp[:4] == ["raw_dressed", "missing", "raw_dressed", "raw_dressed"]
    assert set(t2m[4:]) == set(tp[4:]) == {"model"}
    lines = [r.getMessage() for r in caplog.records if "forecast sources" in r.message]
    assert lines == [
        f"forecast sources of {len(out)} rows: t2m: model {len(out) - 4}, emos 2, "
        f"missing 2; tp: model {len(out) - 4}, raw_dressed 3, missing 1"
    ]
    # missing: every forecast column NaN; the others finite
    for var in HEADS:
        cols = [c for c in out.columns if c.startswith(f"{var}_") and c != source_column(var)]
        missing = out[source_column(var)] == "missing"
        assert out.loc[missing, cols].isna().all().all()
        assert np.isfinite(out.loc[~missing, cols].to_numpy(dtype=float)).all()
        assert len(pred.forecasts[var]) == len(out)


def test_fallback_distributions(model, test_table):
    out = _predict(model, test_table).table
    dressed = out["tp_source"] == "raw_dressed"
    fc = test_table.loc[dressed, "fc_tp"].to_numpy()
    np.testing.assert_allclose(out.loc[dressed, "tp_loc"], fc, rtol=1e-6)
    family = dists.get("censored_logistic")
    spread = model.spec.scale[model.spec.targets.index("tp")] / family.spread
    np.testing.assert_allclose(out.loc[dressed, "tp_scale"], spread, rtol=1e-3)
    emos = out["t2m_source"] == "emos"
    local = EmosModel.from_dict(model.blend["t2m"]["emos"])
    expected = local.predict(test_table.loc[emos])
    np.testing.assert_allclose(out.loc[emos, "t2m_loc"], expected["loc"], rtol=1e-5)
    assert (out.loc[emos, "t2m_q0.1"] < out.loc[emos, "t2m_q0.9"]).all()


def test_model_rows_do_not_depend_on_the_bad_rows(model, test_table):
    full = _predict(model, test_table).table
    good = test_table.iloc[4:].reset_index(drop=True)
    alone = _predict(model, good).table
    for col in ("t2m_loc", "t2m_scale", "t2m_q0.5", "tp_loc", "tp_p_gt_1"):
        np.testing.assert_allclose(full[col].to_numpy()[4:], alone[col].to_numpy(), rtol=1e-5)


def test_unusable_tables_are_refused(model, test_table, tmp_path):
    bad = test_table.assign(fc_ws10=np.nan)
    with pytest.raises(UnusableTableError, match=r"no row .* fc_ws10 \(36 rows\)"):
        _predict(model, bad)
    with pytest.raises(ValueError, match=r"no column \['fc_ws10'\], an input of the model"):
        _predict(model, test_table.drop(columns="fc_ws10"))
    other = tmp_path / "other.parquet"  # a table of another model: named in the message
    test_table.drop(columns="fc_ws10").replace([np.inf, -np.inf], np.nan).to_parquet(other)
    with pytest.raises(RequestError, match=r"other.parquet: no column \['fc_ws10'\].*targets"):
        run_request(PredictRequest(model="m", input=str(other)), model)


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".nc"])
def test_flags_round_trip_and_verify_ignores_them(model, test_table, tmp_path, suffix):
    pred = _predict(model, test_table)
    path = write_predictions(pred.table, tmp_path / f"pred{suffix}", families=pred.families)
    back, families = read_predictions(path)
    assert families == pred.families
    key = ["station", "init_time", "lead_time"]
    mine = pred.table.sort_values(key).reset_index(drop=True)
    back = back.sort_values(key).reset_index(drop=True)
    for col in ("t2m_source", "tp_source", "applicability"):
        assert back[col].tolist() == mine[col].tolist(), col
    # audit: NetCDF gave naive valid times (a merge with Parquet's raised) and no lead unit
    assert str(back["valid_time"].dt.tz) == "UTC"
    pd.testing.assert_series_equal(back["valid_time"], mine["valid_time"], check_dtype=False)
    if suffix == ".nc":
        import xarray as xr

        with xr.open_dataset(path, decode_timedelta=False) as ds:
            assert ds["lead_time"].attrs["units"] == "hours"
    assert parse_columns(back.columns, "tp").flags == {"source": "tp_source"}
    assert "source" not in parse_columns(back.columns, "tp").other
    ver = probcast.evaluate(test_table, {"model": back}, families={"model": families})
    crps = ver.scores.query("by == 'all' and metric == 'crps'").set_index("variable")["value"]
    assert np.isfinite(crps[["t2m", "tp"]]).all()


def test_outputs_within_physical_bounds(caplog):
    plain = untrained_model(station_table(n_stations=3, n_inits=20, seed=1), HEADS)
    table = station_table(n_stations=3, n_inits=2, seed=3, start="2021-01-10")
    table["fc_t2m"] = 339.8  # valid, but the upper members of its dressing pass 340 K
    table.loc[1:, "fc_ws10"] = np.nan  # raw_dressed: centred on fc_t2m
    with caplog.at_level(logging.INFO, logger="probcast.predict.station"):
        out = _predict(plain, table, members=50, quantiles=(0.5, 0.99)).table
    assert (out["t2m_source"][1:] == "raw_dressed").all()
    members = out.filter(regex=r"^t2m_m\d+$").to_numpy()
    assert members.max() == pytest.approx(340.0) and out["t2m_q0.99"].max() == 340.0
    assert (out.filter(regex=r"^tp_(m\d+|q)").to_numpy() >= 0).all()
    assert any("clipped member/quantile values to the physical bounds: t2m" in r.message
               for r in caplog.records)  # fmt: skip


def test_request_extrapolation_fields_are_checked(tmp_path):
    ok = PredictRequest(model=tmp_path, input="x.csv")
    assert ok.domain_policy.mode == "flag" and ok.describe()["extrapolation"] == "flag"
    with pytest.raises(RequestError, match="extrapolation must be one of"):
        PredictRequest(model=tmp_path, input="x.csv", extrapolation="ignore")
    with pytest.raises(RequestError, match="tolerance <= limit"):
        PredictRequest(model=tmp_path, input="x.csv", extrapolation_tolerance=2.0)


def test_runner_passes_the_policy(model, test_table):
    # (a DataFrame given to run is validated as a file is: its inf row would be refused,
    # tests/predict/test_predict_api_stations.py; predict_stations takes inf as missing)
    test_table = test_table.replace([np.inf, -np.inf], np.nan)
    request = PredictRequest(model="unused", input=test_table, extrapolation="warn")
    result = probcast.run(request, model=model)
    assert "applicability" not in result.table.columns
    assert isinstance(result.table, pd.DataFrame) and len(result.table) == len(test_table)
