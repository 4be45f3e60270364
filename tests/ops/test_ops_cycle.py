"""``probcast run``: one cycle through acquire -> predict -> publish -> record, idempotent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import fsspec
import pandas as pd
import pytest
from opshelp import cycles_of, drop_cycle, write_pipeline

from probcast.ops import cycle as cycle_mod
from probcast.ops import pipeline as pl
from probcast.ops.cli import main
from probcast.ops.cycle import run_cycle
from probcast.ops.state import StateStore
from probcast.predict.grid_output import model_fingerprint


def test_pipeline_file_is_checked(tmp_path):
    path = write_pipeline(tmp_path, tmp_path / "model")
    pipe = pl.load(path)
    assert pipe.name == "ops" and pipe.model == tmp_path / "model"
    assert pipe.request["quantiles"] == (0.1, 0.5, 0.9)
    assert pipe.state == f"sqlite:///{tmp_path / 'ops.state.sqlite'}"
    cycle = pl.parse_cycle("2026-11-29T00Z")
    assert pipe.input_path(cycle) == tmp_path / "inputs" / "2026112900.parquet"
    assert pipe.input_cycle(tmp_path / "inputs" / "2026112912.parquet") == pl.parse_cycle(
        "2026112912"
    )
    assert pipe.input_cycle(tmp_path / "inputs" / "notacycle.parquet") is None
    assert pl.cycle_id(cycle) == "2026-11-29T00Z"
    assert pl.parse_cycle("2026-11-29T00:00Z") == pl.parse_cycle("2026-11-29") == cycle
    assert len(pl.cycle_range(cycle, pl.parse_cycle("2026-11-30T12Z"), 12)) == 4
    with pytest.raises(pl.PipelineError, match="cycle must look like"):
        pl.parse_cycle("yesterday")
    with pytest.raises(pl.PipelineError, match="whole hour"):
        pl.parse_cycle("2026-11-29T00:30Z")
    for change, message in [
        ({"products": {"members": 3, "colour": "red"}}, "unknown fields"),
        ({"input": "inputs/fixed.parquet"}, "cycle:FORMAT"),
        ({"complete": {"rule": "vibes"}}, "complete.rule"),
        ({"destination": "x"}, "unknown keys"),
    ]:
        with pytest.raises(pl.PipelineError, match=message):
            pl.load(write_pipeline(tmp_path, tmp_path / "model", **change))
    (tmp_path / "bad.yaml").write_text("model: [unclosed")
    with pytest.raises(pl.PipelineError, match="not valid YAML"):
        pl.load(tmp_path / "bad.yaml")


def test_cycle_runs_once_and_publishes_everywhere(tmp_path, model_dir, stations):
    init = cycles_of(stations)[0]
    drop_cycle(stations, tmp_path / "inputs", init)
    path = write_pipeline(tmp_path, model_dir)
    cycle = f"{init:%Y-%m-%dT%H}Z"
    assert main(["run", "--pipeline", str(path), "--cycle", cycle]) == 0
    key = f"{init:%Y%m%d%H}/pred_{init:%Y%m%d%H}.parquet"
    for dest in ("published", "published2"):
        files = sorted(p.relative_to(tmp_path / dest) for p in (tmp_path / dest).rglob("*"))
        assert [str(f) for f in files] == [f"{init:%Y%m%d%H}", key]
        table = pd.read_parquet(tmp_path / dest / key)
        assert len(table) == (stations.init_time == init).sum()
        assert {"t2m_q0.5", "tp_p_gt_1", "tp_m003"} <= set(table.columns)
    pipe = pl.load(path)
    store = StateStore(pipe.state, pipe.name)
    steps = store.steps_of(cycle)
    assert [(r["step"], r["status"], r["attempts"]) for r in steps] == [
        (s, "finished", 1) for s in ("acquire", "predict", "publish", "record")
    ]
    row = store.cycle(cycle)
    assert row["status"] == "finished"
    assert row["model_fingerprint"] == model_fingerprint(model_dir)
    assert len(row["input_sha256"]) == 64
    manifest = json.loads((pipe.work_dir(pl.parse_cycle(cycle)) / "manifest.json").read_text())
    assert manifest["published"] == [str(tmp_path / d / key) for d in ("published", "published2")]
    mtime = (tmp_path / "published" / key).stat().st_mtime_ns
    # a rerun of a finished cycle is a no-op
    outcome = run_cycle(pipe, pl.parse_cycle(cycle), store)
    assert outcome.status == "done" and outcome.ran == []
    assert (tmp_path / "published" / key).stat().st_mtime_ns == mtime
    assert all(r["attempts"] == 1 for r in store.steps_of(cycle))


def test_missing_input_fails_then_completes(tmp_path, model_dir, stations):
    init = cycles_of(stations)[1]
    path = write_pipeline(tmp_path, model_dir)
    cycle = f"{init:%Y-%m-%dT%H}Z"
    assert main(["run", "--pipeline", str(path), "--cycle", cycle]) == 1
    pipe = pl.load(path)
    store = StateStore(pipe.state, pipe.name)
    assert store.cycle(cycle)["status"] == "failed"
    assert "input not found" in store.step(cycle, "acquire")["error"]
    # a truncated Parquet file is not complete
    (tmp_path / "inputs").mkdir()
    (tmp_path / "inputs" / f"{init:%Y%m%d%H}.parquet").write_bytes(b"PAR1 half a file")
    assert main(["run", "--pipeline", str(path), "--cycle", cycle]) == 1
    assert "no Parquet footer" in store.step(cycle, "acquire")["error"]
    # another cycle's run under this cycle's name is not predicted, let alone published
    drop_cycle(stations, tmp_path / "inputs", cycles_of(stations)[2])
    os.replace(
        tmp_path / "inputs" / f"{cycles_of(stations)[2]:%Y%m%d%H}.parquet",
        tmp_path / "inputs" / f"{init:%Y%m%d%H}.parquet",
    )
    assert main(["run", "--pipeline", str(path), "--cycle", cycle]) == 1
    assert f"not the cycle {cycle}" in store.step(cycle, "acquire")["error"]
    drop_cycle(stations, tmp_path / "inputs", init)
    assert main(["run", "--pipeline", str(path), "--cycle", cycle]) == 0
    assert store.step(cycle, "acquire")["attempts"] == 4
    assert store.cycle_status(cycle) == "finished"


def test_input_changed_after_acquire_is_acquired_again(tmp_path, model_dir, stations, monkeypatch):
    init = cycles_of(stations)[3]
    drop_cycle(stations, tmp_path / "inputs", init)
    path = write_pipeline(tmp_path, model_dir)
    pipe = pl.load(path)
    store = StateStore(pipe.state, pipe.name)
    cycle = pl.parse_cycle(f"{init:%Y-%m-%dT%H}Z")
    real = cycle_mod.STEP_FUNCTIONS["acquire"]

    def acquire_then_rewrite(ctx):  # the file is rewritten (completed) after acquire
        record = real(ctx)
        drop_cycle(stations.assign(fc_t2m=stations["fc_t2m"] + 0.1), tmp_path / "inputs", init)
        return record

    monkeypatch.setitem(cycle_mod.STEP_FUNCTIONS, "acquire", acquire_then_rewrite)
    outcome = run_cycle(pipe, cycle, store)
    assert outcome.status == "failed" and "input changed" in outcome.error
    assert store.step(pl.cycle_id(cycle), "acquire")["status"] == "failed"
    monkeypatch.undo()
    assert run_cycle(pipe, cycle, store).status == "finished"  # from acquire, the new file
    assert store.step(pl.cycle_id(cycle), "acquire")["attempts"] == 2


def test_publish_to_fsspec_url(tmp_path, model_dir, stations):
    init = cycles_of(stations)[2]
    drop_cycle(stations, tmp_path / "inputs", init)
    url = f"memory://probcast-ops-{time.time_ns()}/forecasts"
    path = write_pipeline(
        tmp_path, model_dir, destinations=[{"url": url}], layout="{cycle:%Y/%m/%d/%H}/{name}"
    )
    pipe = pl.load(path)
    store = StateStore(pipe.state, pipe.name)
    outcome = run_cycle(pipe, pd.Timestamp(init).to_pydatetime(), store)
    assert outcome.status == "finished", outcome.error
    fs = fsspec.filesystem("memory")
    root = url.removeprefix("memory://")
    found = fs.find(f"/{root}")
    assert found == [f"/{root}/{init:%Y/%m/%d/%H}/pred_{init:%Y%m%d%H}.parquet"]
    with fs.open(found[0], "rb") as fh:
        assert len(pd.read_parquet(fh)) == (stations.init_time == init).sum()


def test_two_triggers_run_the_cycle_once(tmp_path, model_dir, stations):
    init = cycles_of(stations)[3]
    drop_cycle(stations, tmp_path / "inputs", init)
    path = write_pipeline(tmp_path, model_dir)
    cycle = f"{init:%Y-%m-%dT%H}Z"
    signal = tmp_path / "paused"
    env = {
        "PROBCAST_OPS_PAUSE_AT": "acquire",
        "PROBCAST_OPS_PAUSE_SECONDS": "3",
        "PROBCAST_OPS_PAUSE_SIGNAL": str(signal),
    }
    cmd = [sys.executable, "-m", "probcast.ops.cli", "run", "--pipeline", str(path)]
    first = subprocess.Popen(
        [*cmd, "--cycle", cycle], env={**os.environ, **env}, stdout=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    while not signal.exists() and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.05)
    assert signal.exists()
    second = subprocess.run([*cmd, "--cycle", cycle], capture_output=True, text=True, timeout=120)
    assert second.returncode == 0, second.stderr
    assert f"{cycle} busy" in second.stdout
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0 and f"{cycle} finished" in out
    pipe = pl.load(path)
    store = StateStore(pipe.state, pipe.name)
    assert [r["attempts"] for r in store.steps_of(cycle)] == [1, 1, 1, 1]
    assert store.lease_owner(cycle) is None


def test_cycle_with_a_template_of_past_rows(tmp_path, model_dir, stations):
    """``products.template`` (relative to the pipeline file) feeds recent errors and members."""
    init = cycles_of(stations)[-1]
    drop_cycle(stations, tmp_path / "inputs", init)
    (tmp_path / "tables").mkdir()
    stations[stations.init_time < init].to_parquet(tmp_path / "tables" / "recent.parquet")
    products = {
        "output": "pred_{cycle:%Y%m%d%H}.parquet",
        "members": 6,
        "template": "tables/recent.parquet",
    }
    path = write_pipeline(tmp_path, model_dir, products=products)
    pipe = pl.load(path)
    assert pipe.request["template"] == str(tmp_path / "tables" / "recent.parquet")
    cycle = f"{init:%Y-%m-%dT%H}Z"
    assert main(["run", "--pipeline", str(path), "--cycle", cycle]) == 0
    table = pd.read_parquet(
        tmp_path / "published" / f"{init:%Y%m%d%H}" / f"pred_{init:%Y%m%d%H}.parquet"
    )
    assert table.filter(regex=r"^t2m_m\d+$").shape[1] == 6 and table["t2m_m000"].notna().all()
    # a missing template fails the cycle with the path named, nothing published
    (tmp_path / "tables" / "recent.parquet").unlink()
    other = cycles_of(stations)[-2]
    drop_cycle(stations, tmp_path / "inputs", other)
    assert main(["run", "--pipeline", str(path), "--cycle", f"{other:%Y-%m-%dT%H}Z"]) != 0
    row = StateStore(pipe.state, pipe.name).cycle(f"{other:%Y-%m-%dT%H}Z")
    assert row["status"] == "failed" and "recent.parquet" in row["error"]
    assert not (tmp_path / "published" / f"{other:%Y%m%d%H}").exists()
