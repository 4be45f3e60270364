"""``probcast serve`` hardening (security audit): bounded compilations, finite and small 422s,
one model folder per request, bounded answers, bounded metric labels, hidden passwords."""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from fastapi import HTTPException
from fastapi.testclient import TestClient
from opshelp import cycles_of, drop_cycle, served_cycle, write_pipeline

from probcast.features import FeatureSpec
from probcast.model.integrity import redact, write_marker
from probcast.ops import pipeline as pl
from probcast.ops import serve as serve_module
from probcast.ops.metrics_http import method_label
from probcast.ops.serve import create_app
from probcast.ops.serve_errors import MAX_ERRORS
from probcast.ops.serve_limits import Gate, Limits
from probcast.ops.serve_query import MAX_MEMBERS
from probcast.ops.serve_sizes import Padded, bucket, drop_padding, padded
from probcast.ops.state import StateStore
from probcast.products.table import format_level


@pytest.fixture(scope="module")
def served(tmp_path_factory, model_dir, stations):
    return served_cycle(tmp_path_factory.mktemp("servehard"), model_dir, stations)


@pytest.fixture(scope="module")
def client(served):
    pipe, store, cycle, _ = served
    with TestClient(create_app(pipe, store), raise_server_exceptions=False) as c:
        yield c, cycle


def _post(c, body, **kw):
    return c.post("/forecast", json=body, **kw)


# 1. product sizes: bucketed, values asked for unchanged, compilations bounded


def test_buckets_are_few_and_cover_every_count():
    sizes = {bucket(n, MAX_MEMBERS) for n in range(1, MAX_MEMBERS + 1)}
    assert sizes == {1, 2, 4, 8, 16, 32, 64, 128, 200}
    assert all(bucket(n, MAX_MEMBERS) >= n for n in range(MAX_MEMBERS + 1))
    assert bucket(0, MAX_MEMBERS) == 0 and bucket(99, 99) == 99 and bucket(65, 99) == 99
    pad = padded(5, [0.5, 0.1, 0.5, 0.9], {"tp": [0.1, 1.0, 5.0]}, MAX_MEMBERS)
    assert pad.members == 8 and pad.asked_members == 5
    assert len(set(pad.quantiles)) == 4 and set(pad.extra_levels).isdisjoint({0.1, 0.5, 0.9})
    assert pad.thresholds["tp"][:3] == (0.1, 1.0, 5.0) and len(pad.thresholds["tp"]) == 4
    assert list(np.diff(pad.thresholds["tp"])) == sorted(np.diff(pad.thresholds["tp"]))
    # a list the request check refuses is passed as given (its message names the list)
    assert padded(0, [], {"tp": [2.0, 1.0]}, MAX_MEMBERS).thresholds == {"tp": (2.0, 1.0)}
    levels = [f"tp_q{format_level(q)}" for q in pad.extra_levels]
    frame = pd.DataFrame(columns=["tp_q0.5", *levels])
    frame[[f"tp_m{j:03d}" for j in range(8)]] = 0.0
    frame[[f"tp_p_gt_{format_level(t)}" for t in pad.thresholds["tp"]]] = 0.0
    kept = drop_padding(frame, pad, ["tp"])
    assert list(kept.columns) == [
        "tp_q0.5",
        *(f"tp_m{j:03d}" for j in range(5)),
        "tp_p_gt_0.1",
        "tp_p_gt_1",
        "tp_p_gt_5",
    ]


def test_padding_keeps_the_values_asked_for(client, monkeypatch):
    c, cycle = client
    body = {
        "cycle": cycle,
        "stations": ["ST000", "ST001"],
        "quantiles": [0.9, 0.1, 0.3],
        "thresholds": {"tp": [0.5, 1.0, 2.0]},
        "members": 4,  # a bucket size: the same members as before
        "params": True,
    }
    padded_reply = _post(c, body)
    assert padded_reply.status_code == 200, padded_reply.text

    def unpadded(members, quantiles, thresholds, most):
        th = {v: tuple(ts) for v, ts in thresholds.items()}
        return Padded(members, tuple(quantiles), th, asked_members=members)

    monkeypatch.setattr(serve_module, "padded", unpadded)
    before = _post(c, body)
    assert before.status_code == 200, before.text
    got, want = padded_reply.json()["rows"], before.json()["rows"]
    assert [list(r) for r in got] == [list(r) for r in want]  # no extra column, same order
    assert got == want  # bit for bit
    monkeypatch.undo()
    # members: the first ones of the bucket's draws (5 of 8, 6 of 8 share their first five)
    five = _post(c, {**body, "members": 5}).json()["rows"]
    six = _post(c, {**body, "members": 6}).json()["rows"]
    for a, b in zip(five, six, strict=True):
        assert "t2m_m004" in a and "t2m_m005" not in a and "t2m_m005" in b
        assert all(a[f"t2m_m{j:03d}"] == b[f"t2m_m{j:03d}"] for j in range(5))


def test_distinct_counts_in_one_bucket_compile_nothing_new(client, monkeypatch):
    from probcast.dists import pooling
    from probcast.predict import request as request_module

    c, cycle = client
    sizes = []
    real = request_module.PredictRequest

    def recorded(**kw):
        sizes.append((kw["members"], len(set(kw["quantiles"])), len(kw["thresholds"]["tp"])))
        return real(**kw)

    monkeypatch.setattr(request_module, "PredictRequest", recorded)

    def ask(n):
        body = {
            "cycle": cycle,
            "stations": ["ST000"],
            "members": n,
            "quantiles": [round(0.05 * (k + 1), 2) for k in range(n)],
            "thresholds": {"tp": [0.1 * (k + 1) for k in range(n)]},
        }
        reply = _post(c, body)
        assert reply.status_code == 200, reply.text
        row = reply.json()["rows"][0]
        assert sum(k.startswith("tp_m") for k in row) == n
        assert sum(k.startswith("tp_q") for k in row) == n
        assert sum(k.startswith("tp_p_gt_") for k in row) == n

    def compiled():
        return pooling.quantile_at._cache_size() + pooling.exceedance._cache_size()

    ask(5)
    first = compiled()
    for n in (6, 7, 8):
        ask(n)
    assert compiled() == first  # before: new code for every count
    assert sizes == [(8, 8, 8)] * 4


def test_product_kernels_are_kept_in_a_bounded_cache(monkeypatch):
    from probcast.products import kernels

    monkeypatch.setattr(kernels, "MAX_KERNELS", 4)
    monkeypatch.setattr(kernels, "_CACHE", kernels.collections.OrderedDict())
    monkeypatch.setattr(kernels, "_WARM", set())
    body = kernels.quantile_body(np.array([0.5]))
    first = kernels.compiled(("normal", "quantiles", 0.5), None, body)
    for k in range(10):  # every distinct set of levels is a new function
        kernels.compiled(("normal", "quantiles", k / 20), None, body)
        kernels._WARM.add((("normal", "quantiles", k / 20), "float32"))
    assert len(kernels._CACHE) == 4 and len(kernels._WARM) <= 4
    assert kernels.compiled(("normal", "quantiles", 0.5), None, body) is not first  # evicted
    draw = kernels.compiled_draw("normal", None, 8)
    assert kernels.compiled_draw("normal", None, 8) is draw  # one per family and count


# 2. non-finite and huge inputs: a small 422, never a 500


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400"])
@pytest.mark.parametrize(
    "template",
    [
        '"lead_times": [{}]',
        '"points": [{{"latitude": {}, "longitude": 5.0}}]',
        '"points": [{{"latitude": 45.0, "longitude": {}}}]',
        '"quantiles": [0.5, {}]',
        '"thresholds": {{"tp": [{}]}}',
        '"members": {}',
    ],
)
def test_non_finite_numbers_get_422(client, template, value):
    c, cycle = client
    raw = f'{{"cycle": "{cycle}", {template.format(value)}}}'.encode()
    reply = c.post("/forecast", content=raw, headers={"content-type": "application/json"})
    assert reply.status_code == 422, reply.text
    detail = reply.json()["detail"]
    assert detail and all({"type", "loc", "msg"} <= set(e) for e in detail)
    json.dumps(detail, allow_nan=False)


def test_huge_wrong_inputs_are_not_echoed(client):
    c, cycle = client
    many = ", ".join(["NaN"] * 300_000)  # about 1.5 MB
    long = "x" * 1_000_000
    points = ", ".join(['{"latitude": 1e400}'] * 20_000)
    for raw in (
        f'{{"cycle": "{cycle}", "lead_times": [{many}]}}',
        f'{{"cycle": "{cycle}", "stations": ["{long}"]}}',
        f'{{"cycle": "{cycle}", "points": [{points}]}}',
    ):
        reply = c.post("/forecast", content=raw.encode(), headers={"content-type": "x"})
        assert reply.status_code == 422, reply.text[:500]
        assert len(reply.content) < 20_000, len(reply.content)
        assert len(reply.json()["detail"]) <= MAX_ERRORS + 1


# 3. a model link moved while requests run


def _two_models(model_dir, root):
    a, b = root / "a", root / "b"
    shutil.copytree(model_dir, a)
    shutil.copytree(model_dir, b)
    calib = json.loads((b / "calibration.json").read_text())
    calib["spread_factor"] = {k: 2.0 * v for k, v in calib["spread_factor"].items()}
    (b / "calibration.json").write_text(json.dumps(calib))
    meta = json.loads((b / "meta.json").read_text())
    (b / "meta.json").write_text(json.dumps({**meta, "note": "model b"}))
    write_marker(b)
    return a, b


def test_a_promotion_during_requests_never_mixes_models(tmp_path, model_dir, stations):
    init = cycles_of(stations)[0]
    drop_cycle(stations, tmp_path / "inputs", init)
    a, b = _two_models(model_dir, tmp_path)
    link = tmp_path / "current"
    link.symlink_to(a)
    pipe = pl.load(write_pipeline(tmp_path, link))
    store = StateStore(pipe.state, pipe.name)
    app = create_app(pipe, store)
    body = {"cycle": pl.cycle_id(init.to_pydatetime()), "stations": ["ST000"], "lead_times": [6]}
    body["quantiles"] = [0.9]

    def value(reply):
        return reply.json()["model_fingerprint"], reply.json()["rows"][0]["t2m_q0.9"]

    expected = {}
    with TestClient(app, raise_server_exceptions=False) as c:
        for target in (a, b, a):
            tmp = tmp_path / "next"
            tmp.symlink_to(target)
            os.replace(tmp, link)
            fp, v = value(_post(c, body))
            assert expected.setdefault(fp, v) == v
    assert len(expected) == 2 and len(set(expected.values())) == 2

    stop = threading.Event()
    seen: list[tuple[int, str, float | None, str]] = []

    def swapper():
        k = 0
        while not stop.is_set():
            tmp = tmp_path / f"next{k}"
            tmp.symlink_to((a, b)[k % 2])
            os.replace(tmp, link)
            k += 1
            time.sleep(0.02)

    def requests():
        with TestClient(app, raise_server_exceptions=False) as c:
            for _ in range(6):
                reply = _post(c, body)
                if reply.status_code == 200:
                    fp, v = value(reply)
                    seen.append((200, fp, v, ""))
                else:
                    seen.append((reply.status_code, "", None, reply.text[:300]))

    threads = [threading.Thread(target=requests) for _ in range(3)]
    swap = threading.Thread(target=swapper)
    swap.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    stop.set()
    swap.join()
    assert len(seen) == 18
    assert [s for s in seen if s[0] != 200] == []  # no 400 (other model), no false 503
    assert all(expected[fp] == v for _, fp, v, _ in seen), seen


# 4. answer size: duplicate lead times, values (rows x columns), forecasts at once


def test_duplicate_lead_times_count_once(client):
    c, cycle = client
    reply = _post(c, {"cycle": cycle, "stations": ["ST000"], "lead_times": [6, 6, 6.0, 24]})
    assert reply.status_code == 200, reply.text
    assert [r["lead_time"] for r in reply.json()["rows"]] == [6, 24]


def test_answer_values_are_limited(served):
    pipe, store, cycle, _ = served
    limits = Limits(max_cells=500)
    with TestClient(create_app(pipe, store, limits), raise_server_exceptions=False) as c:
        small = _post(c, {"cycle": cycle, "stations": ["ST000"], "lead_times": [6]})
        assert small.status_code == 200, small.text
        body = {"cycle": cycle, "members": 50, "quantiles": [0.5], "lead_times": [6, 6, 24]}
        big = _post(c, body)
        assert big.status_code == 413, big.text[:300]
        detail = big.json()["detail"]
        assert "(6 rows x 109 columns)" in detail and "at most 500 a request" in detail
        assert "split it into requests of at most" in detail


def test_gate_refuses_when_busy():
    gate = Gate(1, wait=0.05)
    with gate, pytest.raises(HTTPException) as busy, gate:
        pass
    assert busy.value.status_code == 503 and busy.value.headers == {"Retry-After": "5"}
    with gate:  # released again
        pass
    with pytest.raises(ValueError, match="max_cells"):
        Limits(max_cells=0)


# 5. metric labels


def test_unknown_methods_are_counted_as_other(client):
    c, _ = client
    assert method_label("GET") == "GET" and method_label("PROPFIND") == "other"
    assert c.request("XYZZY", "/health").status_code == 405
    metrics = c.get("/metrics").text
    assert "XYZZY" not in metrics and 'method="other"' in metrics


# 7. passwords of the state URL


def test_state_url_secrets_are_hidden(tmp_path, served, monkeypatch, capsys):
    from probcast.cli import main as probcast
    from probcast.ops.cli_serve import STATE_ENV

    assert "X2" not in redact("postgresql://h/db?sslpassword=X2")
    url = "postgresql+psycopg://probcast@127.0.0.1:1/db?password=S3cretPW&sslpassword=X2"
    with pytest.raises(ConnectionError) as err:
        StateStore(url, "p")
    assert "S3cretPW" not in str(err.value) and "X2" not in str(err.value)
    assert "127.0.0.1:1" in str(err.value)
    path = served[3]
    monkeypatch.setenv(STATE_ENV, url)  # used without --state
    rc = probcast(["serve", "--pipeline", str(path), "--port", "1"])
    out = capsys.readouterr()
    assert rc != 0
    assert "127.0.0.1:1" in out.err and "S3cretPW" not in out.err + out.out
    monkeypatch.setenv(STATE_ENV, "nonsense://u:S3cretPW@h")
    assert probcast(["serve", "--pipeline", str(path)]) == 2
    out = capsys.readouterr()
    assert STATE_ENV in out.err and "S3cretPW" not in out.err + out.out


# 8. pad rows are not counted as unseen stations


def test_pad_rows_are_not_counted_as_unseen(client, caplog):
    c, cycle = client
    with caplog.at_level(logging.INFO):
        reply = _post(c, {"cycle": cycle, "stations": ["ST000"], "lead_times": [6]})
    assert reply.status_code == 200, reply.text
    assert not [r for r in caplog.records if "unseen in training" in r.getMessage()]
    caplog.clear()
    known = SimpleNamespace(stations=["ST000"])  # (station_index reads only the vocabulary)
    rows = pd.Series(["ST000", "NEW1", "NEW1", "ST000~pad0", "NEW1~pad1"])
    with caplog.at_level(logging.INFO, logger="probcast.features"):
        idx = FeatureSpec.station_index(known, rows)  # type: ignore[arg-type]
    assert list(idx) == [1, 0, 0, 0, 0]
    lines = [r.getMessage() for r in caplog.records if "unseen" in r.getMessage()]
    assert lines == ["2 rows are at stations unseen in training (unknown embedding)"]
