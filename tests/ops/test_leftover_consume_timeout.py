"""``consume --timeout`` bounds the Redis client's own timeouts (hosts that never answer).

Two hosts that never answer, on 127.0.0.1: a listening socket whose connections the kernel
accepts but nobody reads or answers, and one whose accept queue is full, so that a connect
never completes. The healthy cases use the redis-server of ``test_ops_broker``.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from opshelp import write_pipeline
from test_ops_broker import redis_url  # noqa: F401 - the redis-server fixture

from probcast.ops import broker_redis, cli_consume
from probcast.ops import pipeline as pl
from probcast.ops.broker import BrokerConfig, BrokerError
from probcast.ops.broker_redis import RedisBroker
from probcast.ops.consume import consume

pytest.importorskip("redis")


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A host that accepts connections (in the kernel) and never answers."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(16)
        yield f"redis://127.0.0.1:{srv.getsockname()[1]}/0"


@pytest.fixture
def unaccepting_url() -> Iterator[str]:
    """A host whose accept queue is full: a connect to it never completes."""
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(0)
        address = srv.getsockname()
        fill = []
        for _ in range(4):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(address)
            fill.append(sock)
        time.sleep(0.2)
        with socket.socket() as probe:  # the queue is full: a connect times out
            probe.settimeout(0.5)
            if probe.connect_ex(address) == 0:
                pytest.skip("this kernel completes connects to a full accept queue")
        try:
            yield f"redis://127.0.0.1:{address[1]}/0"
        finally:
            for sock in fill:
                sock.close()


@pytest.mark.parametrize("host", ["silent_url", "unaccepting_url"])
def test_consume_timeout_ends_against_a_host_that_never_answers(
    host, request, tmp_path, monkeypatch, capsys
):
    url = request.getfixturevalue(host)
    path = write_pipeline(tmp_path, tmp_path, broker={"url": url})
    # no model is needed before the broker answers: load the file without one
    monkeypatch.setattr(cli_consume, "load", lambda p, require_model: pl.load(p))
    pl.load(path)  # its imports (seconds, cold) are not the broker's time
    start = time.monotonic()
    rc = cli_consume.main(["--pipeline", str(path), "--timeout", "2"])
    took = time.monotonic() - start
    err = capsys.readouterr().err
    assert rc == 1, err
    assert took < 2 + 1.5, f"took {took:.1f} s"  # 2 s + GRACE_S and slack (it was 10-20 s)
    assert "probcast consume: error: creating consumer group" in err
    assert f"at {url} failed: Timeout" in err and "Traceback" not in err


def test_deadline_does_not_cut_a_healthy_wait(redis_url):  # noqa: F811
    config = BrokerConfig(url=redis_url, stream="leftover-deadline", claim_idle_seconds=60)
    broker = RedisBroker(config, "c1")
    try:
        start = time.monotonic()
        assert consume(None, None, broker, timeout=1.3, block=1.0) == []  # type: ignore[arg-type]
        assert 1.2 < time.monotonic() - start < 1.3 + 1.5
        broker.publish(b'{"cycle": "2026-11-29T00Z"}')
        broker.set_deadline(time.monotonic() + 0.3)
        msg = broker.receive(0.3)
        assert msg is not None and msg.deliveries == 1
        # the calls made for a received message (heartbeat, ack) get the full timeouts
        connect, read = broker._timeouts
        assert connect == broker_redis.CONNECT_TIMEOUT_S and read >= broker_redis.READ_TIMEOUT_S
        broker.ack(msg)
    finally:
        broker.close()


def test_block_longer_than_the_answer_timeout(redis_url, monkeypatch):  # noqa: F811
    monkeypatch.setattr(broker_redis, "READ_TIMEOUT_S", 0.5)
    broker = RedisBroker(BrokerConfig(url=redis_url, stream="leftover-block"), "c1")
    try:
        start = time.monotonic()
        assert broker.receive(1.5) is None  # was: Timeout reading from socket
        assert time.monotonic() - start >= 1.4
    finally:
        broker.close()


def test_unreachable_error_names_the_url(silent_url):
    broker = RedisBroker(BrokerConfig(url=silent_url), "c1")
    broker.set_deadline(time.monotonic() + 0.5)
    start = time.monotonic()
    with pytest.raises(BrokerError, match=r"at redis://127\.0\.0\.1:\d+/0 failed: Timeout"):
        broker.receive(0.5)
    broker.close()  # the server did not answer: the group is left alone, no second wait
    assert time.monotonic() - start < 0.5 + 1.5
