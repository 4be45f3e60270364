"""SIGTERM (Kubernetes, systemd, ``timeout``) cleans up as Ctrl-C does and exits 143.

Audit: only Ctrl-C (SIGINT) ran the clean-up; on SIGTERM every command but ``consume`` died
at once, leaving its temporary files and a training's workdir with nothing trained (which
refused a rerun with other settings).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from probcast.testing.stations import station_table


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 120.0) -> None:
    end = time.monotonic() + seconds
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < end, f"{path} never appeared"
        time.sleep(0.05)


def test_sigterm_during_training_removes_the_workdir_and_exits_143(tmp_path):
    table = station_table(n_stations=6, n_inits=120, leads=(6.0, 12.0, 24.0))
    data = tmp_path / "train.parquet"
    table.to_parquet(data, index=False)
    workdir = tmp_path / "runs" / "term"
    args = [
        sys.executable,
        "-m",
        "probcast.cli",
        "train",
        "--config=tiny",
        f"--workdir={workdir}",
        f"--config.data.path={data}",
        "--config.train.epochs=500",
        "--config.train.checkpoint_every_s=3600",
    ]
    env = {**os.environ, "PROBCAST_QUIET": "1"}
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=env)
    _wait_for(workdir / "features.json", proc)  # training has begun
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "probcast train: terminated (SIGTERM)" in err, err
    assert "Traceback" not in err, err
    assert not (tmp_path / "runs").exists()  # nothing trained: removed, as on Ctrl-C


def test_the_handler_is_restored_after_the_command(tmp_path):
    from probcast.cli import main

    before = signal.getsignal(signal.SIGTERM)
    assert main(["data", "list"]) == 0
    assert signal.getsignal(signal.SIGTERM) is before
