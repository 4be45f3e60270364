"""kill -9 during every step in turn, restart: nothing lost, nothing duplicated, nothing redone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pandas as pd
from opshelp import cycles_of, drop_cycle, wait_for, write_pipeline

from probcast.ops import pipeline as pl
from probcast.ops.state import StateStore

POINTS = [
    "acquire",
    "acquire:done",
    "predict",
    "predict:done",
    "publish",
    "publish:mid",
    "publish:done",
    "record",
    "record:done",
]


def test_kill_at_every_step_then_restart(tmp_path, model_dir, stations):
    init = cycles_of(stations)[0]
    drop_cycle(stations, tmp_path / "inputs", init)
    path = write_pipeline(tmp_path, model_dir)
    cycle = f"{init:%Y-%m-%dT%H}Z"
    cmd = [sys.executable, "-m", "probcast.ops.cli", "run", "--pipeline", str(path)]
    pipe = pl.load(path)
    store = StateStore(pipe.state, pipe.name)
    for point in POINTS:
        flag = tmp_path / f"paused-{point.replace(':', '-')}"
        env = {
            **os.environ,
            "PROBCAST_OPS_PAUSE_AT": point,
            "PROBCAST_OPS_PAUSE_SIGNAL": str(flag),
            "PROBCAST_OPS_PAUSE_SECONDS": "120",
        }
        proc = subprocess.Popen(
            [*cmd, "--cycle", cycle],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        wait_for(flag, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)  # reaped: the lease's owner is now a dead process
        assert proc.returncode == -signal.SIGKILL
        step = point.split(":")[0]
        assert store.step(cycle, step)["status"] == "started", point
        assert store.cycle_status(cycle) == "started"
    final = subprocess.run([*cmd, "--cycle", cycle], capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert f"{cycle} finished ran=record" in final.stdout
    rows = store.steps_of(cycle)
    assert [(r["step"], r["status"]) for r in rows] == [
        (s, "finished") for s in ("acquire", "predict", "publish", "record")
    ]
    # each step was started once per kill at it, plus the run that finished it; a finished
    # step was never started again
    assert [r["attempts"] for r in rows] == [3, 3, 4, 3]
    assert store.cycle_status(cycle) == "finished"
    assert store.lease_owner(cycle) is None
    key = f"{init:%Y%m%d%H}/pred_{init:%Y%m%d%H}.parquet"
    for dest in ("published", "published2"):
        files = sorted(str(p.relative_to(tmp_path / dest)) for p in (tmp_path / dest).rglob("*"))
        assert files == [f"{init:%Y%m%d%H}", key], files  # once, no temporaries
        assert len(pd.read_parquet(tmp_path / dest / key)) == (stations.init_time == init).sum()
    # and the restart after all that is a no-op
    again = subprocess.run([*cmd, "--cycle", cycle], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and f"{cycle} done" in again.stdout
