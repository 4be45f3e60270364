"""``probcast serve``: lat/lon points, Parquet answers, request limits, gridded cycles."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from opshelp import cycles_of, drop_cycle, served_cycle, write_pipeline

from probcast.align.points import grid_to_table
from probcast.ops import pipeline as pl
from probcast.ops.serve import create_app
from probcast.ops.serve_format import PARQUET, wants_parquet
from probcast.ops.serve_grid import node_rows, read_grid
from probcast.ops.serve_limits import Limits
from probcast.ops.state import StateStore
from probcast.products.table_files import read_predictions
from probcast.testing.grids import forecast_grid


@pytest.fixture(scope="module")
def served(tmp_path_factory, model_dir, stations):
    pipe, store, cycle, _ = served_cycle(
        tmp_path_factory.mktemp("servepoints"), model_dir, stations
    )
    return pipe, store, cycle


@pytest.fixture(scope="module")
def client(served):
    pipe, store, cycle = served
    with TestClient(create_app(pipe, store), raise_server_exceptions=False) as c:
        yield c, cycle


def _post(c, body, **kw):
    return c.post("/forecast", json=body, **kw)


def test_points_answered_by_the_nearest_station(client, stations):
    c, cycle = client
    # stations: ST000 (45.0, 5.0), ST001 (45.25, 5.5), ST002 (45.5, 6.0)
    pts = [
        {"latitude": 45.26, "longitude": 5.49},
        {"latitude": 45.0, "longitude": 5.0},
        {"latitude": 45.24, "longitude": 5.51},
    ]
    reply = _post(c, {"cycle": cycle, "points": pts, "lead_times": [6, 24]})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["cycle"] == cycle and body["families"] == {}
    rows = pd.DataFrame(body["rows"])
    assert rows[["point", "station"]].drop_duplicates().values.tolist() == [
        [0, "ST001"],
        [1, "ST000"],
        [2, "ST001"],
    ]
    assert rows.groupby("point").size().tolist() == [2, 2, 2]
    assert rows.loc[rows.point == 1, "distance_km"].eq(0.0).all()
    assert 0.5 < rows.loc[rows.point == 0, "distance_km"].iloc[0] < 2.0
    # the same station asked twice gets the same forecast
    a = rows[rows.point == 0].drop(columns=["point", "distance_km"]).reset_index(drop=True)
    b = rows[rows.point == 2].drop(columns=["point", "distance_km"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (
            {"points": [{"latitude": 45.0, "longitude": 5.0}, {"latitude": 0, "longitude": 0}]},
            422,
            "point 1 (latitude 0.0, longitude 0.0) is",
        ),
        ({"points": [{"latitude": 91, "longitude": 5}]}, 422, "latitude"),
        ({"points": [{"lat": 45, "lon": 5}]}, 422, "latitude"),
        ({"points": []}, 422, "points"),
        ({"stations": ["ST000"], "points": [{"latitude": 45, "longitude": 5}]}, 422, "not both"),
    ],
)
def test_bad_points_get_422_naming_them(client, body, status, message):
    c, cycle = client
    reply = _post(c, {"cycle": cycle, **body})
    assert reply.status_code == status, reply.text
    assert message in reply.text and "detail" in reply.json()


@pytest.mark.parametrize("how", ["query", "accept"])
def test_parquet_answer_with_families(client, tmp_path, how):
    c, cycle = client
    body = {"cycle": cycle, "stations": ["ST002"], "quantiles": [0.5], "members": 2}
    body["params"] = True
    kw = {"params": {"format": "parquet"}} if how == "query" else {"headers": {"accept": PARQUET}}
    reply = _post(c, body, **kw)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == PARQUET
    path = tmp_path / "answer.parquet"
    path.write_bytes(reply.content)
    table, families = read_predictions(path)
    assert families == {"t2m": "normal", "tp": "censored_logistic"} and len(table) == 3
    assert {"t2m_loc", "t2m_scale", "t2m_m001"} <= set(table.columns)
    as_json = pd.DataFrame(_post(c, body).json()["rows"])
    np.testing.assert_allclose(table["t2m_q0.5"], as_json["t2m_q0.5"], rtol=1e-6)
    assert pd.read_parquet(io.BytesIO(reply.content))["station"].eq("ST002").all()


def test_format_choice():
    assert not wants_parquet(None, None)
    assert wants_parquet(None, PARQUET)
    assert wants_parquet(None, f"application/json;q=0.5, {PARQUET}")
    assert not wants_parquet(None, f"application/json, {PARQUET};q=0.2")
    assert not wants_parquet("json", PARQUET) and wants_parquet("parquet", "application/json")
    assert not wants_parquet(None, "text/html, */*")


def test_limits_points_rows_and_body(served):
    pipe, store, cycle = served
    limits = Limits(max_points=2, max_rows=4, max_body_bytes=400)
    with TestClient(create_app(pipe, store, limits), raise_server_exceptions=False) as c:
        three = _post(c, {"cycle": cycle, "stations": ["ST000", "ST001", "ST002"]})
        assert three.status_code == 422 and "at most 2" in three.text
        rows = _post(c, {"cycle": cycle, "stations": ["ST000", "ST001"]})
        assert rows.status_code == 413, rows.text
        assert rows.json()["detail"] == "6 rows asked for; at most 4 a request"
        big = {"cycle": cycle, "stations": ["ST000"], "quantiles": [0.5] * 90}
        sized = _post(c, big)
        assert sized.status_code == 413 and "at most 400 bytes" in sized.json()["detail"]

        def chunks():
            yield b'{"cycle": "' + cycle.encode() + b'", "quantiles": ['
            for _ in range(100):
                yield b"0.5, "
            yield b"0.5]}"

        streamed = c.post("/forecast", content=chunks(), headers={"content-type": "x"})
        assert streamed.status_code == 413, streamed.text
        assert "more than 400 bytes" in streamed.json()["detail"]
        ok = _post(c, {"cycle": cycle, "stations": ["ST000"], "lead_times": [6]})
        assert ok.status_code == 200, ok.text


def test_ready_and_one_cycle(client):
    c, cycle = client
    ready = c.get("/ready").json()
    assert ready["status"] == "ready" and ready["cycles"] == 1
    one = c.get(f"/cycles/{cycle}").json()
    assert one["status"] == "finished" and one["input_present"] is True
    assert [s["step"] for s in one["steps"]] == ["acquire", "predict", "publish", "record"]
    assert c.get("/cycles/2030-01-01T00Z").status_code == 404
    assert c.get("/cycles/yesterday").status_code == 400


# -- gridded cycles ----------------------------------------------------------------------


def _grid(init: pd.Timestamp):
    ds = forecast_grid(
        (6, 8),
        1,
        layout="regular",
        variables=("t2m", "tp", "ws10"),
        lead_hours=(6.0, 12.0, 24.0),
        start=f"{init:%Y-%m-%d}",
    )
    ds = ds.drop_vars([v for v in ds.data_vars if str(v).startswith("obs_")])
    ds = ds.assign_coords(latitude=45.0 + 0.1 * np.arange(6), longitude=5.0 + 0.1 * np.arange(8))
    alt = np.linspace(0.0, 200.0, 48).reshape(6, 8)
    return ds.assign_coords(altitude=(("latitude", "longitude"), alt, {"units": "m"}))


def test_node_rows_equal_the_whole_grid(tmp_path):
    ds = _grid(pd.Timestamp("2021-01-11"))
    ds.to_netcdf(tmp_path / "g.nc")
    cycle = read_grid(tmp_path / "g.nc")
    whole = grid_to_table(cycle.dataset, neighbourhood=(3, 5))
    nodes = [0, 19, 47]  # a corner, the inside, the other corner
    rows = node_rows(cycle.dataset, nodes, windows=(3, 5))
    assert rows["station"].unique().tolist() == ["y0x0", "y2x3", "y5x7"]
    want = whole[whole.station.isin(rows.station.unique())].set_index(["station", "lead_time"])
    got = rows.set_index(["station", "lead_time"]).loc[want.index]
    pd.testing.assert_frame_equal(got[want.columns], want, check_like=True)


def test_grid_cycle_points_and_grid_point_ids(tmp_path, model_dir, stations):
    init = cycles_of(stations)[0]
    (tmp_path / "grids").mkdir()
    _grid(init).to_netcdf(tmp_path / "grids" / f"{init:%Y%m%d%H}.nc")
    grid = {"input": "grids/{cycle:%Y%m%d%H}.nc", "products": {"output": "pred.nc"}}
    pipe = pl.load(write_pipeline(tmp_path, model_dir, **grid))
    store = StateStore(pipe.state, pipe.name)
    cycle = pl.cycle_id(init.to_pydatetime())
    with TestClient(create_app(pipe, store), raise_server_exceptions=False) as c:
        pts = [{"latitude": 45.21, "longitude": 5.29}, {"latitude": 45.0, "longitude": 5.0}]
        reply = _post(c, {"cycle": cycle, "points": pts, "quantiles": [0.5]})
        assert reply.status_code == 200, reply.text
        rows = pd.DataFrame(reply.json()["rows"])
        assert rows.groupby("point")["station"].first().tolist() == ["y2x3", "y0x0"]
        assert len(rows) == 6 and rows["t2m_q0.5"].notna().all()
        by_id = _post(c, {"cycle": cycle, "stations": ["y2x3"], "quantiles": [0.5]})
        assert by_id.status_code == 200, by_id.text
        np.testing.assert_allclose(
            pd.DataFrame(by_id.json()["rows"])["t2m_q0.5"], rows.loc[rows.point == 0, "t2m_q0.5"]
        )
        far = _post(c, {"cycle": cycle, "points": [{"latitude": 50.0, "longitude": 5.0}]})
        assert far.status_code == 422 and "nearest grid point (y5x0)" in far.text
        assert _post(c, {"cycle": cycle}).status_code == 422
        assert _post(c, {"cycle": cycle, "stations": ["ST000"]}).status_code == 404


# -- the fast fuzz (in process; tests/ops/test_ops_serve_fuzz.py fuzzes a real server) -----


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_forecast_fuzzed_in_process(served, mode):
    schemathesis = pytest.importorskip("schemathesis")
    from hypothesis import HealthCheck, given, settings
    from schemathesis import checks

    pipe, store, cycle = served
    api = schemathesis.openapi.from_asgi("/openapi.json", create_app(pipe, store))
    operation = api["/forecast"]["POST"]

    @given(case=operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode)))
    @settings(
        max_examples=8,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def fuzz(case):
        if mode == "positive" and isinstance(case.body, dict):
            case.body["cycle"] = cycle  # reach the prediction (negative cases stay invalid)
        case.call_and_validate(
            checks=[
                checks.not_a_server_error,
                checks.status_code_conformance,
                checks.content_type_conformance,
                checks.response_schema_conformance,
                checks.negative_data_rejection,
            ]
        )

    fuzz()


def test_model_reloaded_when_its_files_change(tmp_path, model_dir, stations):
    import json
    import shutil

    from probcast.model.integrity import write_marker

    init = cycles_of(stations)[0]
    drop_cycle(stations, tmp_path / "inputs", init)
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(model_dir, a)
    shutil.copytree(model_dir, b)
    meta = json.loads((b / "meta.json").read_text())
    (b / "meta.json").write_text(json.dumps({**meta, "note": "version 2"}))
    write_marker(b)
    link = tmp_path / "current"
    link.symlink_to(a)
    pipe = pl.load(write_pipeline(tmp_path, link))
    store = StateStore(pipe.state, pipe.name)
    body = {"cycle": pl.cycle_id(init.to_pydatetime()), "stations": ["ST000"]}
    with TestClient(create_app(pipe, store), raise_server_exceptions=False) as c:
        first = _post(c, body).json()["model_fingerprint"]
        link.unlink()
        link.symlink_to(b)  # e.g. a registry alias moved by a promotion
        second = _post(c, body)
        assert second.status_code == 200 and second.json()["model_fingerprint"] != first
        assert c.get("/ready").json()["model_fingerprint"] == second.json()["model_fingerprint"]
        # audit: /metrics kept the first model's probcast_model_info after the reload
        info = [
            ln
            for ln in c.get("/metrics").text.splitlines()
            if ln.startswith("probcast_model_info{")
        ]
        assert any(second.json()["model_fingerprint"] in ln for ln in info), info
        (b / "meta.json").write_text(json.dumps(meta))  # edited after training
        broken = _post(c, body)
        assert broken.status_code == 503 and "model not loadable" in broken.json()["detail"]
