"""Helpers of the operational tests (data drops, pipeline files, waiting for a pause)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

SPLIT = "2021-01-11"


def cycles_of(stations: pd.DataFrame) -> list[pd.Timestamp]:
    """The init times of the test split (one cycle a day)."""
    return sorted(stations.loc[stations.init_time >= SPLIT, "init_time"].unique())


def drop_cycle(stations: pd.DataFrame, folder: Path, init: pd.Timestamp) -> Path:
    """Write one cycle's rows as ``folder/YYYYMMDDHH.parquet`` (atomically)."""
    from probcast import io

    folder.mkdir(parents=True, exist_ok=True)
    rows = stations[stations.init_time == init].drop(columns=["obs_t2m", "obs_tp"])
    path = folder / f"{init:%Y%m%d%H}.parquet"
    io.write_with(path, lambda tmp: rows.to_parquet(tmp, index=False))
    return path


def write_pipeline(root: Path, model: Path, **extra) -> Path:
    """A pipeline file in ``root`` reading ``root/inputs``, publishing to ``root/published``."""
    data = {
        "model": str(model),
        "input": "inputs/{cycle:%Y%m%d%H}.parquet",
        "complete": {"rule": "stable", "settle_seconds": 0},
        "products": {
            "output": "pred_{cycle:%Y%m%d%H}.parquet",
            "members": 4,
            "quantiles": [0.1, 0.5, 0.9],
            "thresholds": {"tp": [0.1, 1.0]},
        },
        "destinations": ["published", "published2"],
        "lease_seconds": 600,
    }
    data.update(extra)
    path = root / "ops.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def served_cycle(root: Path, model: Path, stations: pd.DataFrame, **extra) -> tuple:
    """A pipeline in ``root`` whose first test cycle ran: ``(pipe, store, cycle id, path)``."""
    from probcast.ops import pipeline as pl
    from probcast.ops.cycle import run_cycle
    from probcast.ops.state import StateStore

    init = cycles_of(stations)[0].to_pydatetime()
    drop_cycle(stations, root / "inputs", pd.Timestamp(init))
    path = write_pipeline(root, model, **extra)
    pipe = pl.load(path)
    store = StateStore(pipe.state, pipe.name)
    assert run_cycle(pipe, init, store).status == "finished"
    return pipe, store, pl.cycle_id(init), path


def wait_for(path: Path, proc: subprocess.Popen, seconds: float = 120.0) -> None:
    """Wait until ``path`` exists (or fail when ``proc`` ended or time ran out)."""
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            pytest.fail(f"process ended (rc={proc.returncode}) before pausing:\n{out}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"process did not reach the pause in {seconds} s")
        time.sleep(0.1)


PYTHON = sys.executable
