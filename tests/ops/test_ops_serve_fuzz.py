"""``probcast serve`` fuzzed through its own OpenAPI schema (schemathesis), on a real server.

The fixture starts ``probcast serve`` (uvicorn) on 127.0.0.1 on a free port with a trained
model and one finished cycle, and stops it after. Schemathesis generates requests from the
server's ``/openapi.json`` (valid and invalid ones: wrong types, missing or extra fields,
out-of-range values) and checks every answer: never a 5xx, only documented status codes and
content types, and bodies that conform to the schema. Bounded: a few dozen examples per
operation, no deadline per example. Marked slow (a server start and ~20 s of requests);
``test_ops_serve_points.py`` fuzzes ``POST /forecast`` in process in the default run.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx
import pytest
from opshelp import served_cycle

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis import checks  # noqa: E402

pytestmark = pytest.mark.slow

EXAMPLES = 25
STARTUP_S = 120.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, model_dir, stations):
    """``(base URL, cycle)`` of a running ``probcast serve``."""
    root = tmp_path_factory.mktemp("servefuzz")
    _, store, cycle, path = served_cycle(root, model_dir, stations)
    store.close()
    port = _free_port()
    cmd = [sys.executable, "-m", "probcast.cli", "serve", "--pipeline", str(path)]
    cmd += ["--port", str(port), "--max-distance-km", "20000", "--max-body-bytes", "65536"]
    log = (root / "serve.log").open("w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_S
    try:
        while True:
            if proc.poll() is not None:
                pytest.fail(f"probcast serve exited: {(root / 'serve.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/ready", timeout=30).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"probcast serve not ready in {STARTUP_S} s")
            time.sleep(0.3)
        yield base, cycle
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def api(server):
    base, _ = server
    # an invalid body over the size limit is rejected with 413 before it is parsed (the
    # schemathesis default list of rejections lacks 413: a long negative case failed)
    rejected = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428"]
    checks_config = {"negative_data_rejection": {"expected-statuses": [*rejected, "429", "5XX"]}}
    config = schemathesis.Config.from_dict({"checks": checks_config})
    return schemathesis.openapi.from_url(f"{base}/openapi.json", config=config)


# One test per operation and mode, so a failure names them (the schemathesis pytest plugin
# is not used: it does not run under pytest 9).
OPERATIONS = [
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/cycles"),
    ("GET", "/cycles/{cycle}"),
    ("POST", "/forecast"),
]
POSITIVE, NEGATIVE = schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE
# operations without parameters have no invalid input
CASES = [(*op, POSITIVE) for op in OPERATIONS] + [(*op, NEGATIVE) for op in OPERATIONS[2:]]
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
]


def test_every_operation_is_fuzzed(api):
    found = sorted((op.ok().method.upper(), op.ok().path) for op in api.get_all_operations())
    assert found == sorted(OPERATIONS)


@pytest.mark.parametrize(
    ("method", "path", "mode"), CASES, ids=[f"{m} {p} {g.value}" for m, p, g in CASES]
)
def test_api_fuzzed(api, server, method, path, mode):
    base, cycle = server
    operation = api[path][method]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def fuzz(case):
        if mode == POSITIVE and isinstance(case.body, dict):
            case.body["cycle"] = cycle  # reach the prediction (negative cases stay invalid)
        case.call_and_validate(base_url=base, checks=CHECKS, timeout=60)

    fuzz()


def test_streamed_oversized_body_gets_413(server):
    base, cycle = server

    def chunks():
        yield b'{"cycle": "' + cycle.encode() + b'", "stations": ['
        for _ in range(20_000):
            yield b'"ST000", '
        yield b'"ST000"]}'

    reply = httpx.post(
        f"{base}/forecast",
        content=chunks(),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert reply.status_code == 413, reply.text
    assert "at most 65536 bytes" in reply.json()["detail"]
    ok = httpx.post(f"{base}/forecast", json={"cycle": cycle, "stations": ["ST000"]}, timeout=60)
    assert ok.status_code == 200, ok.text
