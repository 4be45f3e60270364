"""The state store: steps and cycles recorded, leases taken once, on SQLite and PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from probcast.ops.state import StateStore, new_owner


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.sqlite'}"
    url = request.getfixturevalue("postgres_url")
    # a fresh schema per test: a unique pipeline name keeps the rows apart
    return url


@pytest.fixture
def store(store_url, request) -> StateStore:
    name = f"p-{request.node.name}-{time.time_ns()}"
    s = StateStore(store_url, name)
    yield s
    s.close()


def test_steps_and_cycles_are_recorded(store):
    store.start_cycle("2026-11-29T00Z")
    store.start_step("2026-11-29T00Z", "acquire")
    store.finish_step("2026-11-29T00Z", "acquire", input_sha256="ab" * 32, outputs=["in.pq"])
    store.start_step("2026-11-29T00Z", "predict")
    store.fail_step("2026-11-29T00Z", "predict", "boom")
    store.start_step("2026-11-29T00Z", "predict")
    store.finish_step("2026-11-29T00Z", "predict", outputs={"table": "p.pq"}, model_fingerprint="m")
    store.finish_cycle("2026-11-29T00Z", input_sha256="ab" * 32)
    acquire = store.step("2026-11-29T00Z", "acquire")
    assert acquire["status"] == "finished" and acquire["outputs"] == ["in.pq"]
    assert acquire["finished_at"] >= acquire["started_at"]
    predict = store.step("2026-11-29T00Z", "predict")
    assert predict["attempts"] == 2 and predict["error"] is None
    assert predict["outputs"] == {"table": "p.pq"} and predict["model_fingerprint"] == "m"
    assert [r["step"] for r in store.steps_of("2026-11-29T00Z")] == ["acquire", "predict"]
    assert store.cycle_status("2026-11-29T00Z") == "finished"
    assert store.cycle_status("2026-11-30T00Z") is None
    assert [c["cycle"] for c in store.list_cycles()] == ["2026-11-29T00Z"]


def test_lease_is_exclusive_until_released_or_expired(store):
    a, b = new_owner(), new_owner()
    assert store.acquire("c1", a, 60)
    assert not store.acquire("c1", b, 60)
    assert store.acquire("c1", a, 60)  # the holder may take it again
    assert store.renew("c1", a, 60) and not store.renew("c1", b, 60)
    store.release("c1", b)  # not b's to release
    assert store.lease_owner("c1") == a
    store.release("c1", a)
    assert store.acquire("c1", b, 0.2)
    time.sleep(0.4)
    assert store.acquire("c1", a, 60)  # expired
    assert not store.renew("c1", b, 60)


def test_lease_of_a_dead_local_process_is_taken_over(store):
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    import socket

    dead = f"{socket.gethostname()}:{proc.pid}:deadbeef"
    assert store.acquire("c1", dead, 3600)
    assert store.acquire("c1", new_owner(), 60)


RACE = textwrap.dedent(
    """
    import sys, time
    from probcast.ops.state import StateStore, new_owner
    url, name, start = sys.argv[1], sys.argv[2], float(sys.argv[3])
    store = StateStore(url, name)
    while time.time() < start:
        time.sleep(0.001)
    print(store.acquire("2026-11-29T00Z", new_owner(), 600), flush=True)
    """
)


def test_concurrent_processes_take_one_lease(store_url, request):
    name = f"race-{time.time_ns()}"
    StateStore(store_url, name).close()  # tables exist before the race
    start = time.time() + 4.0
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", RACE, store_url, name, str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
        results.append(out.strip())
    assert sorted(results) == ["False"] * 5 + ["True"]
