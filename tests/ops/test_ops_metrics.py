"""Prometheus metrics of run/watch/serve: recorded per cycle, exported as textfile or push.

The Pushgateway binary is not packaged for Debian: the push tests use a stand-in, a tiny
real HTTP server on 127.0.0.1 that records what it is sent (Pushgateway's PUT API).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from datetime import UTC
from types import SimpleNamespace

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from opshelp import cycles_of, drop_cycle, write_pipeline
from prometheus_client.parser import text_string_to_metric_families

from probcast import logs
from probcast.cli import main as probcast
from probcast.ops import metrics, metrics_export
from probcast.ops import pipeline as pl
from probcast.ops.cli import main as ops_cli
from probcast.ops.cycle import run_cycle
from probcast.ops.serve import create_app
from probcast.ops.state import StateStore
from probcast.testing.pushgateway import stand_in


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


@pytest.fixture(autouse=True)
def _no_export():
    yield
    metrics_export.configure()  # a test's export never leaks into the next


def test_failure_causes_are_short_labels():
    cause = metrics.failure_cause
    assert cause("acquire: StepError: input not found: /x/2026.parquet") == "input_missing"
    assert cause("acquire: StepError: input still growing: /x") == "input_incomplete"
    assert cause("acquire: StepError: input not complete: marker /x.done") == "input_incomplete"
    assert cause("predict: StepError: input changed since it was acquired") == "input_changed"
    assert cause("predict: KeyError: 'fc_t2m'") == "KeyError"
    assert cause("garbage") == "unknown"


def test_fallbacks_are_counted_from_the_source_column(tmp_path):
    table = pd.DataFrame(
        {
            "station": ["A", "B", "C", "D"],
            "t2m_source": ["model", "model", "emos", "raw_dressed"],
            "tp_source": ["model", "model", "model", "missing"],
        }
    )
    product = tmp_path / "p.parquet"
    product.write_bytes(b"x" * 123)
    metrics.record_prediction("fb", table, {"table": product}, "sha256:abc", model="runs/m")
    assert value("probcast_forecast_rows_total", pipeline="fb", variable="t2m", source="emos") == 1
    assert value("probcast_forecast_rows_total", pipeline="fb", variable="t2m", source="model") == 2
    assert value("probcast_fallback_fraction", pipeline="fb", variable="t2m") == 0.5
    assert value("probcast_fallback_fraction", pipeline="fb", variable="tp") == 0.25
    assert value("probcast_output_bytes", pipeline="fb", product="table") == 123
    assert value("probcast_output_rows", pipeline="fb") == 4
    info = {"pipeline": "fb", "fingerprint": "sha256:abc", "model": "runs/m"}
    assert value("probcast_model_info", **info) == 1
    # a table without the column (older models, grids): no rows counted, no error
    metrics.record_prediction("fb2", table[["station"]], {}, "sha256:abc")
    assert (
        value("probcast_forecast_rows_total", pipeline="fb2", variable="t2m", source="model") == 0
    )


def test_run_cycle_records_steps_outcomes_and_freshness(tmp_path, model_dir, stations):
    init = cycles_of(stations)[0]
    drop_cycle(stations, tmp_path / "inputs", init)
    pipe = pl.load(write_pipeline(tmp_path, model_dir, name="m1"))
    store = StateStore(pipe.state, pipe.name)
    cycle = init.to_pydatetime().replace(tzinfo=UTC)
    before = time.time()
    assert run_cycle(pipe, cycle, store).status == "finished"
    for step in ("acquire", "predict", "publish", "record"):
        assert value("probcast_step_duration_seconds_count", pipeline="m1", step=step) == 1
    assert value("probcast_cycles_total", pipeline="m1", status="finished") == 1
    assert value("probcast_cycle_duration_seconds_count", pipeline="m1") == 1
    assert value("probcast_latest_cycle_timestamp_seconds", pipeline="m1") == cycle.timestamp()
    assert value("probcast_cycle_last_success_timestamp_seconds", pipeline="m1") >= before - 1
    assert value("probcast_cycle_interval_seconds", pipeline="m1") == 24 * 3600
    seen = value("probcast_input_last_seen_timestamp_seconds", pipeline="m1")
    assert abs(seen - (tmp_path / "inputs" / f"{init:%Y%m%d%H}.parquet").stat().st_mtime) < 1e-3
    assert value("probcast_input_delay_seconds", pipeline="m1") == pytest.approx(
        seen - cycle.timestamp()
    )
    assert value("probcast_output_bytes", pipeline="m1", product="table") > 0
    assert value("probcast_output_rows", pipeline="m1") > 0
    # a rerun is "done": counted, no new step timings
    assert run_cycle(pipe, cycle, store).status == "done"
    assert value("probcast_cycles_total", pipeline="m1", status="done") == 1
    assert value("probcast_step_duration_seconds_count", pipeline="m1", step="predict") == 1
    # a cycle without input fails at acquire, with its cause
    later = pl.parse_cycle("2030-01-01T00Z")
    assert run_cycle(pipe, later, store).status == "failed"
    labels = {"pipeline": "m1", "step": "acquire", "cause": "input_missing"}
    assert value("probcast_step_failures_total", **labels) == 1
    assert value("probcast_cycle_last_failure_timestamp_seconds", pipeline="m1") >= before
    # a failed later cycle does not move the newest finished cycle
    assert value("probcast_latest_cycle_timestamp_seconds", pipeline="m1") == cycle.timestamp()
    store.close()


@pytest.mark.parametrize("entry", [probcast, ops_cli], ids=["probcast", "python-m-ops-cli"])
def test_run_writes_the_textfile_atomically(tmp_path, model_dir, stations, capsys, entry):
    """``probcast run`` and ``python -m probcast.ops.cli run`` (the same command)."""
    init = cycles_of(stations)[0]
    drop_cycle(stations, tmp_path / "inputs", init)
    path = write_pipeline(tmp_path, model_dir, name="m2")
    prom = tmp_path / "textfile" / "probcast_m2.prom"
    prom.parent.mkdir()
    cycle = f"{init:%Y-%m-%dT%H}Z"
    args = ["run", "--pipeline", str(path), "--cycle", cycle, "--metrics-file", str(prom)]
    assert entry(args) == 0
    got = samples(prom.read_text())
    assert got[("probcast_cycles_total", frozenset({("pipeline", "m2"), ("status", "finished")}))]
    key = ("probcast_latest_cycle_timestamp_seconds", frozenset({("pipeline", "m2")}))
    assert got[key] == init.timestamp()
    assert [p.name for p in prom.parent.iterdir()] == [prom.name]  # no temporaries left
    assert oct(prom.stat().st_mode & 0o777) == "0o644"


def test_bad_export_settings_are_refused(tmp_path, capsys):
    path = write_pipeline(tmp_path, tmp_path / "model")
    base = ["run", "--pipeline", str(path), "--cycle", "2026-11-29T00Z"]
    assert probcast([*base, "--metrics-file", str(tmp_path / "m.txt")]) == 2
    assert "must end with .prom" in capsys.readouterr().err
    assert probcast([*base, "--metrics-file", str(tmp_path / "nope" / "m.prom")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert probcast([*base, "--pushgateway", "gateway:9091"]) == 2
    assert "http(s) URL" in capsys.readouterr().err
    assert probcast(["run", "--help"]) == 0
    out = capsys.readouterr().out
    assert "--cycle" in out and "--metrics-file" in out and "--pushgateway" in out


def test_pipeline_metrics_block_is_read(tmp_path, monkeypatch):
    # stand-in for a pipeline with a `metrics:` block (the key needs ops/pipeline.py support)
    fake = SimpleNamespace(root=tmp_path, metrics={"file": "m.prom", "pushgateway": "http://g"})
    monkeypatch.setattr(pl, "load", lambda path: fake)
    assert metrics_export.from_pipeline("ops.yaml") == (str(tmp_path / "m.prom"), "http://g")
    fake.metrics = {"fiel": "m.prom"}
    with pytest.raises(ValueError, match="unknown keys"):
        metrics_export.from_pipeline("ops.yaml")
    fake.metrics = {}
    assert metrics_export.from_pipeline("ops.yaml") == (None, None)


@pytest.fixture
def pushgateway():
    with stand_in() as served:
        yield served


def test_watch_pushes_to_the_pushgateway(tmp_path, model_dir, stations, pushgateway, capsys):
    url, handler = pushgateway
    init = cycles_of(stations)[1]
    drop_cycle(stations, tmp_path / "inputs", init)
    path = write_pipeline(tmp_path, model_dir, name="m3")
    args = ["watch", "--pipeline", str(path), "--interval", "0.2", "--max-cycles", "1"]
    assert probcast([*args, "--timeout", "60", "--pushgateway", url]) == 0
    assert len(handler.received) == 1
    _, where, body = handler.received[0]
    assert where == f"/metrics/job/probcast_watch/instance/{socket.gethostname()}/pipeline_file/ops"
    got = samples(body)
    assert got[("probcast_cycles_total", frozenset({("pipeline", "m3"), ("status", "finished")}))]


def test_failed_push_is_a_warning_not_a_failure(tmp_path, model_dir, pushgateway, caplog):
    url, handler = pushgateway
    handler.status = 500
    metrics_export.configure(pushgateway=url, job="probcast_run")
    pipe = pl.load(write_pipeline(tmp_path, model_dir, name="m4"))
    store = StateStore(pipe.state, pipe.name)
    with caplog.at_level(logging.WARNING, logger="probcast.ops.metrics_export"):
        outcome = run_cycle(pipe, pl.parse_cycle("2030-01-01T00Z"), store)
    assert outcome.status == "failed"  # no input: the cycle's own failure, not the push's
    assert len(handler.received) == 1 and "push to" in caplog.text
    store.close()


def test_serve_exposes_request_metrics(tmp_path, model_dir, stations):
    init = cycles_of(stations)[0]
    drop_cycle(stations, tmp_path / "inputs", init)
    pipe = pl.load(write_pipeline(tmp_path, model_dir, name="m5"))
    store = StateStore(pipe.state, pipe.name)
    with TestClient(create_app(pipe, store), raise_server_exceptions=False) as client:
        assert client.get("/health").status_code == 200
        assert client.post("/forecast", json={"cycle": "2030-01-01T00Z"}).status_code == 404
        assert client.post("/forecast", json={}).status_code == 422
        reply = client.get("/metrics")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    got = samples(reply.text)

    def count(handler, status, method="POST"):
        key = frozenset({("handler", handler), ("method", method), ("status", status)})
        return got.get(("probcast_http_requests_total", key), 0)

    assert count("/forecast", "404") >= 1 and count("/forecast", "422") >= 1
    assert count("/health", "200", "GET") >= 1
    duration = (
        "probcast_http_request_duration_seconds_count",
        frozenset({("handler", "/forecast"), ("method", "POST")}),
    )
    assert got[duration] >= 2
    assert any(
        name == "probcast_model_info" and ("pipeline", "m5") in labels for name, labels in got
    )
    store.close()


def test_json_logs_carry_the_cycle(tmp_path):
    record = logging.LogRecord(
        "probcast.ops.cycle", logging.INFO, __file__, 1, "ran %s", ("x",), None
    )
    with logs.log_context(pipeline="p", cycle="2026-11-29T00Z"):
        line = json.loads(logs.JsonFormatter().format(record))
    assert line["message"] == "ran x" and line["cycle"] == "2026-11-29T00Z"
    assert line["level"] == "INFO" and line["logger"] == "probcast.ops.cycle"
    assert "cycle" not in json.loads(logs.JsonFormatter().format(record))
    code = (
        "import logging; from probcast.logs import configure_logging, log_context\n"
        "configure_logging()\n"
        "with log_context(cycle='2026-11-29T00Z'):\n"
        "    logging.getLogger('probcast.ops').info('hello')\n"
    )
    env = {**os.environ, "PROBCAST_LOG_FORMAT": "json"}
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    line = json.loads(run.stderr.strip().splitlines()[-1])
    assert line["cycle"] == "2026-11-29T00Z" and line["message"] == "hello"
    env["PROBCAST_LOG_FORMAT"] = "text"
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert run.stderr.strip().endswith("probcast.ops: hello")  # default output unchanged
    env["PROBCAST_LOG_FORMAT"] = "xml"
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert "must be 'text' or 'json', got 'xml'" in run.stderr
