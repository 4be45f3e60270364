"""``probcast serve``: forecasts on demand; malformed requests get a 4xx, never a 500."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from opshelp import served_cycle

from probcast.ops.serve import create_app


@pytest.fixture(scope="module")
def client(tmp_path_factory, model_dir, stations):
    pipe, store, cycle, _ = served_cycle(tmp_path_factory.mktemp("serve"), model_dir, stations)
    with TestClient(create_app(pipe, store), raise_server_exceptions=False) as c:
        yield c, cycle


def test_health_and_cycles(client):
    c, cycle = client
    health = c.get("/health").json()
    assert health["status"] == "ok" and health["model_fingerprint"].startswith("sha256:")
    rows = c.get("/cycles").json()
    assert [(r["cycle"], r["status"]) for r in rows] == [(cycle, "finished")]
    assert c.get("/cycles?limit=0").status_code == 422


def test_forecast_for_stations(client):
    c, cycle = client
    body = {
        "cycle": cycle,
        "stations": ["ST001", "ST002"],
        "lead_times": [6, 24],
        "quantiles": [0.25, 0.75],
        "thresholds": {"tp": [0.5]},
        "members": 3,
    }
    reply = c.post("/forecast", json=body)
    assert reply.status_code == 200, reply.text
    rows = reply.json()["rows"]
    assert len(rows) == 4
    assert {r["station"] for r in rows} == {"ST001", "ST002"}
    for r in rows:
        assert r["t2m_q0.25"] <= r["t2m_q0.75"]
        assert 0.0 <= r["tp_p_gt_0.5"] <= 1.0
        assert "tp_m002" in r and not any(k.startswith("obs_") for k in r)


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({}, 422, "cycle"),
        ({"cycle": "yesterday"}, 400, "cycle must look like"),
        ({"cycle": "2030-01-01T00Z"}, 404, "no input"),
        ({"cycle": "CYCLE", "stations": ["NOPE"]}, 404, "unknown stations"),
        ({"cycle": "CYCLE", "lead_times": [999]}, 404, "not in the cycle"),
        ({"cycle": "CYCLE", "quantiles": [1.5]}, 422, "quantiles"),
        ({"cycle": "CYCLE", "thresholds": {"tp": [2, 1]}}, 400, "increasing"),
        ({"cycle": "CYCLE", "members": -1}, 422, "members"),
        ({"cycle": "CYCLE", "colour": "red"}, 422, "colour"),
        ({"cycle": "CYCLE", "stations": "ST001"}, 422, "stations"),
    ],
)
def test_malformed_requests_get_4xx(client, body, status, message):
    c, cycle = client
    if body.get("cycle") == "CYCLE":
        body = {**body, "cycle": cycle}
    reply = c.post("/forecast", json=body)
    assert reply.status_code == status, reply.text
    assert message in reply.text


def test_garbage_bodies_never_500(client):
    c, _ = client
    for raw in [b"", b"{", b"[]", b"null", b'{"cycle": 5}', b"\xff\xfe"]:
        reply = c.post("/forecast", content=raw, headers={"content-type": "application/json"})
        assert 400 <= reply.status_code < 500, (raw, reply.status_code, reply.text)
