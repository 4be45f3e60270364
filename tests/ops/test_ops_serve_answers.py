"""``probcast serve`` answers what a cycle run publishes, and every row asked for (audit)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from opshelp import SPLIT, cycles_of, drop_cycle, write_pipeline

from probcast.ops import pipeline as pl
from probcast.ops.cycle import run_cycle
from probcast.ops.serve import create_app
from probcast.ops.serve_format import json_bytes
from probcast.ops.serve_rows import bucketed, complete
from probcast.ops.state import StateStore
from probcast.products.table import format_level
from probcast.products.table_files import read_predictions
from probcast.testing.grids import forecast_grid


@pytest.fixture(scope="module")
def served(tmp_path_factory, model_dir, stations):
    """A pipeline with a template (recent errors, Schaake shuffle), two cycles run."""
    root = tmp_path_factory.mktemp("serveanswers")
    first, second = cycles_of(stations)[:2]
    for init in (first, second):
        drop_cycle(stations, root / "inputs", init)
    stations[stations.init_time < SPLIT].to_parquet(root / "template.parquet", index=False)
    products = {
        "output": "pred_{cycle:%Y%m%d%H}.parquet",
        "members": 4,
        "quantiles": [0.1, 0.5, 0.9],
        "thresholds": {"tp": [0.1, 1.0]},
        "template": "template.parquet",
        "seed": 3,
    }
    pipe = pl.load(write_pipeline(root, model_dir, products=products))
    store = StateStore(pipe.state, pipe.name)
    assert run_cycle(pipe, first.to_pydatetime(), store).status == "finished"
    with TestClient(create_app(pipe, store), raise_server_exceptions=False) as c:
        yield c, root, first, second


def _post(c, body):
    return c.post("/forecast", json=body)


def test_a_served_forecast_equals_the_published_product(served):
    # audit: the served request dropped the pipeline's template (recent errors) and seed
    c, root, first, _ = served
    cycle = pl.cycle_id(first.to_pydatetime())
    body = {"cycle": cycle, "quantiles": [0.1, 0.5, 0.9], "thresholds": {"tp": [0.1, 1.0]}}
    reply = _post(c, body)
    assert reply.status_code == 200, reply.text
    got = pd.DataFrame(reply.json()["rows"]).set_index(["station", "lead_time"]).sort_index()
    name = f"{first:%Y%m%d%H}/pred_{first:%Y%m%d%H}.parquet"
    published, _ = read_predictions(root / "published" / name)
    want = published.set_index(["station", "lead_time"]).sort_index()
    cols = [c for c in got.columns if c.startswith(("t2m_q", "tp_q", "tp_p_gt"))]
    assert cols
    np.testing.assert_allclose(got[cols].to_numpy(float), want[cols].to_numpy(float), rtol=1e-12)


def test_an_input_of_another_period_is_never_served(served):
    # a 6-h model answering from 24-h amounts: numbers with a 200 and nothing to show it
    c, root, _, second = served
    good = root / "inputs" / f"{second:%Y%m%d%H}.parquet"
    keep = good.read_bytes()
    table = pd.read_parquet(good)
    table.attrs["probcast_periods"] = '{"tp": 24.0}'
    table.to_parquet(good, index=False)
    try:
        reply = _post(c, {"cycle": pl.cycle_id(second.to_pydatetime())})
        assert reply.status_code == 503, reply.text
        assert "tp is over 24 h, but the model was trained on 6-h tp" in reply.text
    finally:
        good.write_bytes(keep)
    reply = _post(c, {"cycle": pl.cycle_id(second.to_pydatetime())})
    assert reply.status_code == 200 and reply.json()["periods"] == {"tp": 6.0}


def test_a_stale_or_misnamed_input_is_never_served(served):
    # audit: yesterday's file copied under today's name was answered as today's cycle
    c, root, first, second = served
    good = root / "inputs" / f"{second:%Y%m%d%H}.parquet"
    keep = good.read_bytes()
    shutil.copy(root / "inputs" / f"{first:%Y%m%d%H}.parquet", good)
    try:
        reply = _post(c, {"cycle": pl.cycle_id(second.to_pydatetime())})
        assert reply.status_code == 503, reply.text
        assert f"holds the run(s) {pl.cycle_id(first.to_pydatetime())}" in reply.text
    finally:
        good.write_bytes(keep)
    assert _post(c, {"cycle": pl.cycle_id(second.to_pydatetime())}).status_code == 200


def test_thresholds_and_answers_in_the_users_units(served):
    # audit: a 0 degC threshold was read as 0 K (P = 1) and "units" was refused
    c, _, first, _ = served
    cycle = pl.cycle_id(first.to_pydatetime())
    base = {"cycle": cycle, "stations": ["ST000"], "lead_times": [6], "quantiles": [0.5]}
    kelvin = _post(c, {**base, "thresholds": {"t2m": [273.15]}}).json()
    celsius = _post(c, {**base, "thresholds": {"t2m": [0.0]}, "units": {"t2m": "degC"}}).json()
    assert kelvin["units"]["t2m"] == "K" and celsius["units"]["t2m"] == "degC"
    k, d = kelvin["rows"][0], celsius["rows"][0]
    assert d["t2m_p_gt_0"] == pytest.approx(k["t2m_p_gt_273.15"], abs=1e-9)
    assert d["t2m_q0.5"] == pytest.approx(k["t2m_q0.5"] - 273.15, abs=1e-6)
    bad = _post(c, {**base, "units": {"t2m": "furlong"}})
    assert bad.status_code == 400 and "t2m" in bad.text
    # a variable the model does not predict is the client's mistake: 422, not the input's 503
    for body in ({"thresholds": {"ws10": [1.0]}}, {"units": {"ws10": "km/h"}}):
        wrong = _post(c, {**base, **body})
        assert wrong.status_code == 422 and "ws10" in wrong.text and "targets" in wrong.text


def test_every_station_and_lead_asked_for_is_answered(served):
    # audit: a lead time a station's run lacks was left out of a 200 answer
    c, root, first, _ = served
    path = root / "inputs" / f"{first:%Y%m%d%H}.parquet"
    table = pd.read_parquet(path)
    gap = table[~((table.station == "ST001") & (table.lead_time == 6))]
    other = first + pd.Timedelta(days=30)  # a cycle of its own (its runs are checked)
    gap = gap.assign(init_time=other, valid_time=other + pd.to_timedelta(gap.lead_time, "h"))
    gap.to_parquet(root / "inputs" / f"{other:%Y%m%d%H}.parquet", index=False)
    body = {"cycle": pl.cycle_id(other.to_pydatetime()), "stations": ["ST001", "ST000"]}
    reply = _post(c, {**body, "lead_times": [6, 12], "quantiles": [0.5]})
    assert reply.status_code == 200, reply.text
    rows = pd.DataFrame(reply.json()["rows"])
    assert list(zip(rows.station, rows.lead_time, strict=True)) == [
        ("ST001", 6.0), ("ST001", 12.0), ("ST000", 6.0), ("ST000", 12.0)
    ]  # fmt: skip
    hole = rows.iloc[0]
    assert hole["t2m_source"] == "missing" and hole["tp_source"] == "missing"
    assert np.isnan(hole["t2m_q0.5"]) and hole["valid_time"].startswith(f"{other:%Y-%m-%d}T06")
    assert rows.iloc[1:]["t2m_q0.5"].notna().all()
    only = _post(c, {**body, "stations": ["ST001"], "lead_times": [6]})
    assert only.status_code == 200 and only.json()["rows"][0]["t2m_source"] == "missing"


@pytest.mark.parametrize(
    "cycle", ["0999-01-01T00Z", "0001-01-01T00+01:00", "9999-12-31T23-05:00", "2500-01-01T00Z"]
)
def test_cycles_at_the_calendars_edges_are_a_400(served, cycle):
    # audit: years below 1000 and offsets past the calendar gave a 500
    c, *_ = served
    assert _post(c, {"cycle": cycle}).status_code == 400
    assert c.get(f"/cycles/{cycle}").status_code == 400


def test_json_keeps_small_probabilities():
    # audit: six decimals turned 4.77e-7 into 0
    values = [4.77e-7, 0.123456789012, 287.123456789, 1e-12]
    row = json.loads(json_bytes(pd.DataFrame({"p": values}), {}))["rows"]
    np.testing.assert_allclose([r["p"] for r in row], values, rtol=0, atol=1e-15)


def test_level_names_never_collide():
    # audit: 1 and 1.0000001 (and quantiles differing in the 7th digit) shared a column
    assert [format_level(q) for q in (1.0, 0.05, 1e-5)] == ["1", "0.05", "1e-05"]
    assert format_level(1.0000001) != format_level(1.0)
    assert format_level(0.1234567) != format_level(0.12345671)


def test_pad_rows_copy_a_usable_row():
    # audit: a request whose last row had a NaN input was padded with copies of it and
    # refused as a table nothing could be predicted from
    table = pd.DataFrame({"station": ["A", "B"], "fc_t2m": [280.0, np.nan]})
    cycle = pd.DataFrame({"station": ["C"], "fc_t2m": [281.0]})
    padded = bucketed(table, smallest=4)
    assert padded["fc_t2m"].tolist()[2:] == [280.0, 280.0]
    assert padded["station"].tolist()[2:] == ["A~pad0", "A~pad1"]
    padded = bucketed(table.iloc[1:], smallest=4, usable=cycle)
    assert padded["fc_t2m"].tolist()[1:] == [281.0] * 3


def test_complete_adds_missing_rows_in_the_order_asked():
    pred = pd.DataFrame(
        {"station": ["B"], "init_time": [pd.Timestamp("2021-01-01", tz="UTC")], "lead_time": [6.0],
         "valid_time": [pd.Timestamp("2021-01-01T06", tz="UTC")], "t2m_q0.5": [1.0],
         "t2m_source": ["model"]}
    )  # fmt: skip
    out = complete(pred, ["A", "B"], [6, 12], pd.Timestamp("2021-01-01", tz="UTC"), ["t2m"])
    assert list(zip(out.station, out.lead_time, strict=True)) == [
        ("A", 6.0), ("A", 12.0), ("B", 6.0), ("B", 12.0)
    ]  # fmt: skip
    assert out.t2m_source.tolist() == ["missing", "missing", "model", "missing"]
    assert out.valid_time.iloc[1] == pd.Timestamp("2021-01-01T12", tz="UTC")


def test_a_grid_point_without_forecast_is_answered_as_missing(tmp_path, model_dir, stations):
    # audit: a grid point whose forecast is NaN vanished from a 200 answer (points) or was
    # a 404 "no rows" (its id)
    init = cycles_of(stations)[0]
    (tmp_path / "grids").mkdir()
    ds = forecast_grid(
        (6, 8), 1, layout="regular", variables=("t2m", "tp", "ws10"),
        lead_hours=(6.0, 12.0), start=f"{init:%Y-%m-%d}",
    )  # fmt: skip
    ds = ds.drop_vars([v for v in ds.data_vars if str(v).startswith("obs_")])
    ds = ds.assign_coords(latitude=45.0 + 0.1 * np.arange(6), longitude=5.0 + 0.1 * np.arange(8))
    alt = np.linspace(0.0, 200.0, 48).reshape(6, 8)
    ds = ds.assign_coords(altitude=(("latitude", "longitude"), alt, {"units": "m"}))
    ds["fc_t2m"][..., 0, 0] = np.nan
    ds.to_netcdf(tmp_path / "grids" / f"{init:%Y%m%d%H}.nc")
    grid = {"input": "grids/{cycle:%Y%m%d%H}.nc", "products": {"output": "pred.nc"}}
    pipe = pl.load(write_pipeline(tmp_path, model_dir, **grid))
    store = StateStore(pipe.state, pipe.name)
    cycle = pl.cycle_id(init.to_pydatetime())
    with TestClient(create_app(pipe, store), raise_server_exceptions=False) as c:
        pts = [{"latitude": 45.0, "longitude": 5.0}, {"latitude": 45.21, "longitude": 5.29}]
        reply = _post(c, {"cycle": cycle, "points": pts, "lead_times": [6], "quantiles": [0.5]})
        assert reply.status_code == 200, reply.text
        rows = pd.DataFrame(reply.json()["rows"])
        assert rows.point.tolist() == [0, 1] and rows.station.tolist() == ["y0x0", "y2x3"]
        assert rows.t2m_source.tolist() == ["missing", "model"]
        alone = _post(c, {"cycle": cycle, "stations": ["y0x0"], "lead_times": [6]})
        assert alone.status_code == 200, alone.text
        assert alone.json()["rows"][0]["t2m_source"] == "missing"
        # audit: a point 40 km outside a 10 km grid was answered by its corner node
        outside = _post(c, {"cycle": cycle, "points": [{"latitude": 44.7, "longitude": 4.7}]})
        assert outside.status_code == 422 and "nearest grid point (y0x0)" in outside.text
