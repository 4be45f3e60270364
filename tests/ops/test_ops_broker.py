"""The broker trigger against a real redis-server (Debian's package) on 127.0.0.1.

The server is started by the fixture on a free port with persistence off and stopped after the
module; the tests are skipped when ``redis-server`` is not installed
(``apt-get install redis-server``). The Pub/Sub adapter is driven by a fake client object.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from types import SimpleNamespace

import pytest
from opshelp import cycles_of, drop_cycle, wait_for, write_pipeline

from probcast.ops import pipeline as pl
from probcast.ops.broker import (
    BadMessage,
    BrokerConfig,
    BrokerError,
    Delivery,
    broker_config,
    decode_message,
    encode_message,
    open_broker,
)
from probcast.ops.cli_consume import main as consume_main
from probcast.ops.consume import consume, handle
from probcast.ops.state import StateStore

redis = pytest.importorskip("redis")
STEPS = ["acquire", "predict", "publish", "record"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """A throwaway redis-server on 127.0.0.1 (no persistence), stopped after the module."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server not installed (apt-get install redis-server)")
    port = _free_port()
    folder = tmp_path_factory.mktemp("redis")
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--dir", str(folder), "--daemonize", "no", "--loglevel", "warning"]
    proc = subprocess.Popen(
        [exe, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    deadline = time.monotonic() + 20
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"redis-server did not start: {proc.stdout.read()!r}")
            time.sleep(0.05)
    yield url
    client.close()
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _pipeline(tmp_path, model_dir, redis_url, **broker):
    stream = f"cycles-{uuid.uuid4().hex[:8]}"
    block = {"url": redis_url, "stream": stream, "max_tries": 3, **broker}
    return write_pipeline(tmp_path, model_dir, destinations=["published"], broker=block)


def _cid(init) -> str:
    return pl.cycle_id(init.to_pydatetime())


def _published(root):
    files = (root / "published").rglob("*")
    return sorted(str(p.relative_to(root / "published")) for p in files if p.is_file())


# -- the message schema and the settings (no server) ------------------------------------------


def test_message_schema_and_settings_are_checked(tmp_path):
    body = encode_message("2026112900", "ingest", 2)
    assert json.loads(body) == {"cycle": "2026-11-29T00Z", "source": "ingest", "attempt": 2}
    assert decode_message(body).cycle == "2026-11-29T00Z"
    assert decode_message(b'{"cycle": "2026-11-29T06:00Z"}').attempt == 1
    for raw, why in [
        (b"{not json", "not JSON"),
        (b"[1]", "JSON object"),
        (b'{"cycle": "2026-11-29T00Z", "pipeline": "x"}', "unknown keys"),
        (b'{"source": "x"}', "'cycle' must be a string"),
        (b'{"cycle": "yesterday"}', "2026-11-29T00Z"),
        (b'{"cycle": "2026-11-29T00Z", "attempt": 0}', "'attempt'"),
        (b"\xff\xfe", "not JSON"),
    ]:
        with pytest.raises(BadMessage, match=why):
            decode_message(raw)
    path = write_pipeline(tmp_path, tmp_path, broker={"url": "redis://h:1/0", "stream": "s"})
    cfg = broker_config(pl.load(path))
    assert (cfg.group, cfg.dead_letter, cfg.max_tries) == ("ops", "s-dead", 3)
    assert broker_config(pl.load(path), url="pubsub://proj").scheme == "pubsub"
    for block, why in [
        ({}, "'url' is required"),
        ({"url": "http://h"}, "expected one of redis"),
        ({"url": "redis://h", "tries": 3}, "unknown keys"),
        ({"url": "redis://h", "max_tries": 0}, "max_tries: expected a number >= 1"),
        ({"url": "redis://h", "stream": "a", "dead_letter": "a"}, "must differ"),
    ]:
        path = write_pipeline(tmp_path, tmp_path, broker=block)
        with pytest.raises(pl.PipelineError, match=why):
            broker_config(pl.load(path))
    path = write_pipeline(tmp_path, tmp_path, broker=["redis://h"])
    with pytest.raises(pl.PipelineError, match="broker must be a mapping"):
        pl.load(path)


# -- Redis, live --------------------------------------------------------------------------------


def test_message_runs_the_cycle_once_and_is_acked(tmp_path, model_dir, stations, redis_url, capsys):
    init = cycles_of(stations)[0]
    drop_cycle(stations, tmp_path / "inputs", init)
    path = _pipeline(tmp_path, model_dir, redis_url, claim_idle_seconds=0.5)
    cycle = _cid(init)
    assert consume_main(["--pipeline", str(path), "--send", f"{init:%Y%m%d%H}"]) == 0
    assert capsys.readouterr().out.startswith(f"{cycle} sent id=")
    assert consume_main(["--pipeline", str(path), "--max-messages", "1", "--timeout", "120"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{cycle} finished id=") and line.endswith("tries=1"), line
    pipe = pl.load(path)
    cfg = broker_config(pipe)
    client = redis.Redis.from_url(redis_url)
    assert client.xpending(cfg.stream, cfg.group)["pending"] == 0
    store = StateStore(pipe.state, pipe.name)
    assert [r["attempts"] for r in store.steps_of(cycle)] == [1, 1, 1, 1]

    # the same cycle again, taken by a consumer that dies before acknowledging it: another
    # consumer claims it after claim_idle_seconds and acknowledges it without running anything
    ghost = open_broker(cfg, "ghost")
    ghost.publish(encode_message(cycle, "upstream", 2))
    taken = ghost.receive(5)
    assert taken is not None and taken.deliveries == 1
    ghost.client.close()  # died: no ack, no heartbeat
    live = open_broker(cfg, "live")
    done = consume(pipe, store, live, max_messages=1, timeout=30, block=0.2)
    assert [(h.id, h.status, h.deliveries) for h in done] == [(taken.id, "done", 2)]
    assert client.xpending(cfg.stream, cfg.group)["pending"] == 0
    assert [r["attempts"] for r in store.steps_of(cycle)] == [1, 1, 1, 1]
    assert _published(tmp_path) == [f"{init:%Y%m%d%H}/pred_{init:%Y%m%d%H}.parquet"]
    live.close()


def test_poison_messages_go_to_the_dead_letter(tmp_path, model_dir, stations, redis_url):
    init = cycles_of(stations)[1]
    drop_cycle(stations, tmp_path / "inputs", init)
    path = _pipeline(tmp_path, model_dir, redis_url, claim_idle_seconds=0.3, retry_seconds=0)
    pipe = pl.load(path)
    cfg = broker_config(pipe)
    broker = open_broker(cfg, "one")
    bad = broker.publish(b"{not json")
    unknown = broker.publish(encode_message("2030-01-01T00Z", "test"))  # no input, ever
    good = broker.publish(encode_message(_cid(init), "test"))
    store = StateStore(pipe.state, pipe.name)
    handled = consume(pipe, store, broker, max_messages=7, timeout=120, block=0.2)
    by_id: dict[str, list[str]] = {}
    for h in handled:
        by_id.setdefault(h.id, []).append(h.status)
    assert by_id == {
        bad: ["failed", "failed", "dead"],
        unknown: ["failed", "failed", "dead"],
        good: ["finished"],
    }
    dead = broker.dead_letters()
    assert [d["id"] for d in dead] == [bad, unknown]
    assert "bad message: not JSON" in dead[0]["reason"] and dead[0]["deliveries"] == "3"
    assert "input not found" in dead[1]["reason"]
    assert dead[1]["message"] == encode_message("2030-01-01T00Z", "test").decode()
    client = redis.Redis.from_url(redis_url)
    assert client.xpending(cfg.stream, cfg.group)["pending"] == 0
    assert store.cycle_status(_cid(init)) == "finished"
    assert store.cycle_status("2030-01-01T00Z") == "failed"

    # a message its consumers died on max_tries times: dead letter without running it
    crash = broker.publish(encode_message("2031-01-01T00Z"))
    taken = open_broker(cfg, "crashed").receive(5)
    assert taken is not None and taken.id == crash
    client.xclaim(cfg.stream, cfg.group, "crashed", 0, [crash], retrycount=3, justid=True)
    time.sleep(0.4)
    handled = consume(pipe, store, broker, max_messages=1, timeout=30, block=0.2)
    assert [(h.status, h.deliveries) for h in handled] == [("dead", 4)]
    assert "more than max_tries=3" in broker.dead_letters()[-1]["reason"]
    assert store.cycle_status("2031-01-01T00Z") is None
    broker.close()


def _consumer(path, *extra, env=None):
    cmd = [sys.executable, "-m", "probcast.cli", "consume", "--pipeline", str(path), *extra]
    return subprocess.Popen(
        cmd,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
def test_consumer_killed_before_ack_then_redelivered(tmp_path, model_dir, stations, redis_url):
    init = cycles_of(stations)[2]
    drop_cycle(stations, tmp_path / "inputs", init)
    path = _pipeline(tmp_path, model_dir, redis_url, claim_idle_seconds=1)
    pipe = pl.load(path)
    cfg = broker_config(pipe)
    cycle = _cid(init)
    open_broker(cfg, "sender").publish(encode_message(cycle))
    flag = tmp_path / "paused"
    env = {
        "PROBCAST_OPS_PAUSE_AT": "consume:ack",
        "PROBCAST_OPS_PAUSE_SIGNAL": str(flag),
        "PROBCAST_OPS_PAUSE_SECONDS": "120",
    }
    first = _consumer(path, "--max-messages", "1", "--timeout", "300", env=env)
    wait_for(flag, first, seconds=240)
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    store = StateStore(pipe.state, pipe.name)
    assert store.cycle_status(cycle) == "finished"
    client = redis.Redis.from_url(redis_url)
    assert client.xpending(cfg.stream, cfg.group)["pending"] == 1  # never acknowledged
    second = _consumer(path, "--max-messages", "1", "--timeout", "120")
    out, _ = second.communicate(timeout=240)
    assert second.returncode == 0, out
    assert f"{cycle} done id=" in out and "tries=2" in out
    assert client.xpending(cfg.stream, cfg.group)["pending"] == 0
    assert [r["attempts"] for r in store.steps_of(cycle)] == [1, 1, 1, 1]
    assert _published(tmp_path) == [f"{init:%Y%m%d%H}/pred_{init:%Y%m%d%H}.parquet"]


@pytest.mark.slow
def test_two_consumers_run_each_cycle_once(tmp_path, model_dir, stations, redis_url):
    inits = cycles_of(stations)[3:6]
    for init in inits:
        drop_cycle(stations, tmp_path / "inputs", init)
    path = _pipeline(tmp_path, model_dir, redis_url, claim_idle_seconds=5)
    pipe = pl.load(path)
    cfg = broker_config(pipe)
    sender = open_broker(cfg, "sender")
    procs = [_consumer(path, "--timeout", "400", "--block", "0.2") for _ in range(2)]
    store = StateStore(pipe.state, pipe.name)
    try:
        for init in inits:
            assert consume_main(["--pipeline", str(path), "--send", _cid(init)]) == 0
        sender.publish(encode_message(_cid(inits[0]), "duplicate"))  # at-least-once upstream
        deadline = time.monotonic() + 300
        while any(store.cycle_status(_cid(i)) != "finished" for i in inits):
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            assert time.monotonic() < deadline, "cycles not run"
            time.sleep(0.2)
        while redis.Redis.from_url(redis_url).xpending(cfg.stream, cfg.group)["pending"]:
            assert time.monotonic() < deadline, "messages not acknowledged"
            time.sleep(0.2)
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        outs = [proc.communicate(timeout=120)[0] for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert [p.returncode for p in procs] == [0, 0], outs
    lines = [line.split() for out in outs for line in out.splitlines() if " id=" in line]
    finished = sorted(words[0] for words in lines if words[1] == "finished")
    assert finished == sorted(_cid(i) for i in inits)
    statuses = sorted(words[1] for words in lines if words[1] != "busy")  # busy: given back
    assert statuses == ["done", "finished", "finished", "finished"]
    for init in inits:
        assert [r["attempts"] for r in store.steps_of(_cid(init))] == [1, 1, 1, 1]
    assert len(_published(tmp_path)) == 3


@pytest.mark.slow
def test_sigterm_finishes_the_running_cycle(tmp_path, model_dir, stations, redis_url):
    init = cycles_of(stations)[4]
    drop_cycle(stations, tmp_path / "inputs", init)
    path = _pipeline(tmp_path, model_dir, redis_url)
    pipe = pl.load(path)
    cfg = broker_config(pipe)
    open_broker(cfg, "sender").publish(encode_message(_cid(init)))
    flag = tmp_path / "paused"
    env = {
        "PROBCAST_OPS_PAUSE_AT": "predict",
        "PROBCAST_OPS_PAUSE_SIGNAL": str(flag),
        "PROBCAST_OPS_PAUSE_SECONDS": "2",
    }
    proc = _consumer(path, "--timeout", "300", env=env)
    wait_for(flag, proc, seconds=240)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    assert "SIGTERM: finishing" in out and f"{_cid(init)} finished id=" in out
    assert redis.Redis.from_url(redis_url).xpending(cfg.stream, cfg.group)["pending"] == 0


def test_unreachable_broker_is_one_clear_error(tmp_path, capsys):
    url = f"redis://127.0.0.1:{_free_port()}/0"
    path = write_pipeline(tmp_path, tmp_path, broker={"url": url})
    assert consume_main(["--pipeline", str(path), "--send", "2026-11-29T00Z"]) == 1
    assert "probcast consume: error: redis XADD" in capsys.readouterr().err
    assert consume_main(["--pipeline", str(path), "--send", "tomorrow"]) == 2
    assert "2026-11-29T00Z" in capsys.readouterr().err


# -- Pub/Sub, with a fake client object (no Pub/Sub emulator or project here) ----------------


class FakePubSubClient:
    """A fake of google-cloud-pubsub's PublisherClient and SubscriberClient (records calls)."""

    def __init__(self, pulls):
        self.pulls = list(pulls)
        self.calls: list[tuple] = []

    def topic_path(self, project, topic):
        return f"projects/{project}/topics/{topic}"

    def subscription_path(self, project, sub):
        return f"projects/{project}/subscriptions/{sub}"

    def publish(self, topic, data, **attrs):
        self.calls.append(("publish", topic, data, attrs))
        return SimpleNamespace(result=lambda timeout: f"m{len(self.calls)}")

    def pull(self, request, timeout):
        self.calls.append(("pull", request["subscription"], request["max_messages"]))
        if not self.pulls:
            raise type("DeadlineExceeded", (Exception,), {})("no message")
        data, attempt = self.pulls.pop(0)
        message = SimpleNamespace(data=data, message_id="id1")
        received = SimpleNamespace(ack_id="ack1", message=message, delivery_attempt=attempt)
        return SimpleNamespace(received_messages=[received])

    def acknowledge(self, request):
        self.calls.append(("ack", request["subscription"], request["ack_ids"]))

    def modify_ack_deadline(self, request):
        self.calls.append(("deadline", request["ack_ids"], request["ack_deadline_seconds"]))


def test_pubsub_adapter_with_a_fake_client(tmp_path):
    config = BrokerConfig("pubsub://proj", "cycles", "sub", "dead", max_tries=2)
    fake = FakePubSubClient([(b"{bad", 1), (b"{bad", 2)])
    broker = open_broker(config, "c1", client=(fake, fake))
    assert broker.publish(encode_message("2026-11-29T00Z")) == "m1"
    assert fake.calls[0][1] == "projects/proj/topics/cycles"
    path = write_pipeline(tmp_path, tmp_path, broker={"url": "pubsub://proj"})
    pipe, store = pl.load(path), None
    first = broker.receive(1)
    assert first == Delivery("id1", b"{bad", 1, "ack1")
    assert handle(pipe, store, broker, first).status == "failed"
    assert fake.calls[-1] == ("deadline", ["ack1"], 10)  # redelivered after retry_seconds
    second = broker.receive(1)
    assert handle(pipe, store, broker, second).status == "dead"
    assert fake.calls[-2][:3] == ("publish", "projects/proj/topics/dead", b"{bad")
    assert fake.calls[-2][3]["deliveries"] == "2" and "not JSON" in fake.calls[-2][3]["reason"]
    assert fake.calls[-1] == ("ack", "projects/proj/subscriptions/sub", ["ack1"])
    assert broker.receive(1) is None  # the pull's deadline passed: no message
    broker.extend(first)
    assert fake.calls[-1] == ("deadline", ["ack1"], 60)
    try:
        from google.cloud import pubsub_v1  # noqa: F401
    except ImportError:
        with pytest.raises(BrokerError, match=r"probcast\[pubsub\]"):
            open_broker(config, "c2")
