"""Backfill (``run --from --to``) and the folder watcher: a replay, one cycle a "day"."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from opshelp import cycles_of, drop_cycle, wait_for, write_pipeline

from probcast.ops import pipeline as pl
from probcast.ops.cli import main
from probcast.ops.state import StateStore
from probcast.ops.watch import discover, watch

STEPS = ["acquire", "predict", "publish", "record"]


def _published(root, dest="published"):
    return sorted(str(p.relative_to(root / dest)) for p in (root / dest).rglob("*.parquet"))


def test_backfill_is_idempotent_per_cycle(tmp_path, model_dir, stations, capsys):
    inits = cycles_of(stations)[:3]
    for init in (inits[0], inits[2]):
        drop_cycle(stations, tmp_path / "inputs", init)
    path = write_pipeline(tmp_path, model_dir, destinations=["published"])
    span = ["--from", f"{inits[0]:%Y%m%d%H}", "--to", f"{inits[-1]:%Y-%m-%dT%H}Z"]
    assert main(["run", "--pipeline", str(path), *span]) == 1  # the middle one is missing
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == ["finished", "failed", "finished"]
    drop_cycle(stations, tmp_path / "inputs", inits[1])
    assert main(["run", "--pipeline", str(path), *span]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == ["done", "finished", "done"]
    assert _published(tmp_path) == [f"{i:%Y%m%d%H}/pred_{i:%Y%m%d%H}.parquet" for i in inits]
    assert main(["run", "--pipeline", str(path), *span, "--status"]) == 0
    status = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [s["status"] for s in status] == ["finished"] * 3
    assert [r["attempts"] for r in status[1]["steps"]] == [2, 1, 1, 1]
    assert status[1]["steps"][0]["error"] is None
    assert main(["run", "--pipeline", str(path), "--cycle", "2021-01-01T00Z", "--to", "x"]) == 2


def test_watch_waits_for_the_marker(tmp_path, model_dir, stations):
    init = cycles_of(stations)[0]
    drop_cycle(stations, tmp_path / "inputs", init)
    path = write_pipeline(tmp_path, model_dir, complete={"rule": "marker"})
    pipe = pl.load(path)
    assert [c for c, _ in discover(pipe)] == [init.to_pydatetime()]
    store = StateStore(pipe.state, pipe.name)
    assert watch(pipe, store, interval=0.1, timeout=0.5) == []  # no marker yet
    pipe.marker_path(init.to_pydatetime()).touch()
    outcomes = watch(pipe, store, interval=0.1, max_cycles=1, timeout=120)
    assert [o.status for o in outcomes] == ["finished"]
    assert watch(pipe, store, interval=0.1, timeout=0.3) == []  # finished: not run again


def test_replay_a_stream_of_cycles(tmp_path, model_dir, stations):
    """The test split dropped one init date at a time into the watched folder."""
    inits = cycles_of(stations)
    path = write_pipeline(tmp_path, model_dir)
    pipe = pl.load(path)
    store = StateStore(pipe.state, pipe.name)
    cmd = [
        sys.executable, "-m", "probcast.ops.cli", "watch", "--pipeline", str(path),
        "--interval", "0.3", "--max-cycles", str(len(inits)), "--timeout", "400",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for init in inits:
            # a half-written file first: not complete, not run
            partial = tmp_path / "inputs" / f"{init:%Y%m%d%H}.parquet"
            partial.parent.mkdir(exist_ok=True)
            partial.write_bytes(b"PAR1 still arriving")
            time.sleep(1.0)
            drop_cycle(stations, tmp_path / "inputs", init)
            cid = pl.cycle_id(init.to_pydatetime())
            deadline = time.monotonic() + 200
            while store.cycle_status(cid) != "finished":
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, f"{cid} not run"
                time.sleep(0.2)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    done = [line.split()[0] for line in out.splitlines() if line.endswith("finished")]
    assert done == [pl.cycle_id(i.to_pydatetime()) for i in inits]
    for dest in ("published", "published2"):
        assert _published(tmp_path, dest) == [
            f"{i:%Y%m%d%H}/pred_{i:%Y%m%d%H}.parquet" for i in inits
        ]
    for init in inits:
        cid = pl.cycle_id(init.to_pydatetime())
        rows = store.steps_of(cid)
        assert [(r["step"], r["status"]) for r in rows] == [(s, "finished") for s in STEPS]
        # the half-written file was never acquired: one attempt per step
        assert [r["attempts"] for r in rows] == [1, 1, 1, 1], cid
    assert os.listdir(tmp_path / "inputs")


def test_parallel_backfill_runs_each_cycle_once(tmp_path, model_dir, stations, capsys):
    inits = cycles_of(stations)[:3]
    for init in inits:
        drop_cycle(stations, tmp_path / "inputs", init)
    path = write_pipeline(tmp_path, model_dir, destinations=["published"])
    span = ["--from", f"{inits[0]:%Y%m%d%H}", "--to", f"{inits[-1]:%Y%m%d%H}"]
    # the first cycle already ran: the parallel backfill must leave it alone
    assert main(["run", "--pipeline", str(path), "--cycle", f"{inits[0]:%Y%m%d%H}"]) == 0
    capsys.readouterr()
    assert main(["run", "--pipeline", str(path), *span, "--workers", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[:2] for line in lines] == [
        [f"{inits[0]:%Y-%m-%dT%H}Z", "done"],
        [f"{inits[1]:%Y-%m-%dT%H}Z", "finished"],
        [f"{inits[2]:%Y-%m-%dT%H}Z", "finished"],
    ]
    assert _published(tmp_path) == [f"{i:%Y%m%d%H}/pred_{i:%Y%m%d%H}.parquet" for i in inits]
    assert main(["run", "--pipeline", str(path), *span, "--status"]) == 0
    status = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert all(r["attempts"] == 1 for s in status for r in s["steps"])
    assert main(["run", "--pipeline", str(path), *span, "--workers", "0"]) == 2


def test_a_set_stop_ends_the_watcher_before_the_next_cycle(tmp_path, model_dir, stations):
    init = cycles_of(stations)[0]
    drop_cycle(stations, tmp_path / "inputs", init)
    pipe = pl.load(write_pipeline(tmp_path, model_dir))
    store = StateStore(pipe.state, pipe.name)
    stop = threading.Event()
    stop.set()
    assert watch(pipe, store, interval=30, stop=stop) == []  # at once: no cycle, no wait
    assert store.cycle_status(pl.cycle_id(init.to_pydatetime())) != "finished"


@pytest.mark.slow
def test_sigterm_lets_the_running_cycle_finish(tmp_path, model_dir, stations):
    """Audit: SIGTERM (a Kubernetes rollout) killed the watcher mid-cycle; now, as consume
    and schedule, it finishes the running cycle and exits 0."""
    init = cycles_of(stations)[0]
    drop_cycle(stations, tmp_path / "inputs", init)
    path = write_pipeline(tmp_path, model_dir)
    flag = tmp_path / "paused"
    env = {
        **os.environ,
        "PROBCAST_OPS_PAUSE_AT": "predict",
        "PROBCAST_OPS_PAUSE_SIGNAL": str(flag),
        "PROBCAST_OPS_PAUSE_SECONDS": "2",
    }
    cmd = [sys.executable, "-m", "probcast.cli", "watch", "--pipeline", str(path)]
    proc = subprocess.Popen(
        [*cmd, "--interval", "0.2", "--timeout", "300"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_for(flag, proc, seconds=240)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, out
    assert "probcast watch: SIGTERM: finishing" in out, out
    assert f"{pl.cycle_id(init.to_pydatetime())} finished" in out, out
