"""NWP arriving lead by lead: partial.mode all / available / wait, updates, kill -9 mid-update."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest
from opshelp import SPLIT, wait_for, write_pipeline

from probcast import io
from probcast.ops import metrics, partial
from probcast.ops import pipeline as pl
from probcast.ops.cli import main
from probcast.ops.state import StateStore
from probcast.ops.watch import discover, watch
from probcast.testing.stations import station_table

LEADS = [6, 12, 18, 24]
INPUT = "inputs/{cycle:%Y%m%d%H}/f{lead:03d}"
STEPS = ["acquire", "predict", "publish", "record"]


@pytest.fixture(scope="module")
def lead_rows() -> pd.DataFrame:
    """The test split with four lead times (the tiny model was trained on 6, 12 and 24 h)."""
    rows = station_table(n_stations=3, n_inits=16, leads=tuple(float(h) for h in LEADS))
    return rows[rows.init_time >= SPLIT].drop(columns=["obs_t2m", "obs_tp"])


def _inits(rows: pd.DataFrame) -> list[pd.Timestamp]:
    return sorted(rows.init_time.unique())


def drop_lead(rows, root, init, lead, suffix=".parquet"):
    """Write one lead's rows of one cycle as ``inputs/YYYYMMDDHH/fLLL.<suffix>`` atomically."""
    part = rows[(rows.init_time == init) & (rows.lead_time == lead)]
    path = root / "inputs" / f"{init:%Y%m%d%H}" / f"f{lead:03d}{suffix}"
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        io.write_with(path, lambda tmp: part.to_csv(tmp, index=False))
    else:
        io.write_with(path, lambda tmp: part.to_parquet(tmp, index=False))
    return path


def lead_pipeline(root, model, suffix=".parquet", **extra):
    fields = {"input": INPUT + suffix, "leads": LEADS, "destinations": ["published"], **extra}
    return write_pipeline(root, model, **fields)


def _cid(init) -> str:
    return pl.cycle_id(init.to_pydatetime())


def _published(root, init, name="parquet"):
    return root / "published" / f"{init:%Y%m%d%H}" / f"pred_{init:%Y%m%d%H}.{name}"


def _counter(kind: str) -> float:
    labels = {"pipeline": "ops", "kind": kind}
    return metrics.REGISTRY.get_sample_value("probcast_partial_cycles_total", labels) or 0.0


def test_lead_templates_and_policies_are_checked(tmp_path):
    pipe = pl.load(lead_pipeline(tmp_path, tmp_path / "model", partial={"mode": "wait"}))
    cycle = pl.parse_cycle("2026-11-29T00Z")
    assert pipe.leads == (6, 12, 18, 24)
    assert pipe.lead_path(cycle, 6) == tmp_path / "inputs" / "2026112900" / "f006.parquet"
    assert pipe.input_path(cycle) == pipe.work_dir(cycle) / "input.parquet"  # their union
    assert pipe.input_cycle(tmp_path / "inputs" / "2026112900" / "f018.parquet") == cycle
    assert pipe.input_cycle(tmp_path / "inputs" / "2026112900" / "notes.txt") is None
    assert partial.policy_of(pipe) == partial.Policy(mode="wait")
    ranged = lead_pipeline(tmp_path, tmp_path / "model", leads={"start": 0, "stop": 12, "step": 6})
    assert pl.load(ranged).leads == (0, 6, 12)
    for change, message in [
        ({"leads": [6, 6]}, "repeat"),
        ({"leads": [-6]}, "whole hours"),
        ({"leads": {"stop": "soon"}}, "start, stop and step"),
        ({"leads": None}, "needs leads"),
        ({"partial": {"mode": "eventually"}}, "partial.mode must be one of"),
        ({"partial": {"mode": "wait", "deadline": 5}}, "unknown keys"),
        ({"partial": {"deadline_minutes": "late"}}, "numbers"),
        ({"input": INPUT + ".nc"}, "station tables"),
    ]:
        with pytest.raises(pl.PipelineError, match=message):
            pl.load(lead_pipeline(tmp_path, tmp_path / "model", **change))
    with pytest.raises(pl.PipelineError, match=r"need \{lead\}"):
        pl.load(write_pipeline(tmp_path, tmp_path / "model", partial={"mode": "available"}))


def test_mode_all_waits_for_every_lead(tmp_path, model_dir, lead_rows, capsys):
    """Lead files (CSV here) dropped one at a time: nothing runs until the last is there."""
    init = _inits(lead_rows)[0]
    path = lead_pipeline(tmp_path, model_dir, suffix=".csv")
    pipe = pl.load(path)
    store = StateStore(pipe.state, pipe.name)
    args = ["run", "--pipeline", str(path), "--cycle", _cid(init)]
    for lead in LEADS[:-1]:
        drop_lead(lead_rows, tmp_path, init, lead, ".csv")
        assert watch(pipe, store, interval=0.05, timeout=0.3) == []  # not all there: waits
    assert [c for c, _ in discover(pipe)] == [init.to_pydatetime()]  # one entry per cycle
    assert main(args) == 1
    assert "input not complete: leads [24]" in capsys.readouterr().out
    assert partial.history(store, _cid(init)) == []
    drop_lead(lead_rows, tmp_path, init, 24, ".csv")
    assert main(args) == 0
    table = pd.read_parquet(_published(tmp_path, init))
    assert sorted(table.lead_time.unique()) == LEADS and len(table) == 3 * len(LEADS)
    [attempt] = partial.history(store, _cid(init))
    assert (attempt["leads"], attempt["missing"], attempt["partial"]) == (LEADS, [], False)
    assert set(attempt["sha256"]) == {str(lead) for lead in LEADS}
    # a lead file holding another lead's rows: one clear error naming the file
    other = _inits(lead_rows)[1]
    for lead in LEADS:
        drop_lead(lead_rows, tmp_path, other, lead, ".csv")
    bad = drop_lead(lead_rows, tmp_path, other, 6, ".csv")
    bad.write_text(bad.read_text().replace(",6.0,", ",12.0,"))
    capsys.readouterr()
    assert main(["run", "--pipeline", str(path), "--cycle", _cid(other)]) == 1
    out = capsys.readouterr().out
    assert f"{bad}: lead_time values [12.0] in the file of lead 6" in out


def test_mode_available_runs_then_updates(tmp_path, model_dir, lead_rows, capsys):
    init = _inits(lead_rows)[0]
    cid = _cid(init)
    path = lead_pipeline(tmp_path, model_dir, partial={"mode": "available"})
    pipe = pl.load(path)
    store = StateStore(pipe.state, pipe.name)
    args = ["run", "--pipeline", str(path), "--cycle", cid]
    before = _counter("partial"), _counter("update")
    for lead in LEADS[:2]:
        drop_lead(lead_rows, tmp_path, init, lead)
    assert main(args) == 0
    first = _published(tmp_path, init)
    assert sorted(pd.read_parquet(first).lead_time.unique()) == [6, 12]
    leads_file = json.loads(_published(tmp_path, init, "leads.json").read_text())
    assert leads_file["partial"] is True and leads_file["missing_leads"] == [18, 24]
    assert main(args) == 0  # the same leads again: a no-op
    assert capsys.readouterr().out.splitlines()[-1] == f"{cid} done ran=-"
    for lead in LEADS[2:]:
        drop_lead(lead_rows, tmp_path, init, lead)
    assert main(args) == 0  # an update on every lead
    assert capsys.readouterr().out.startswith(f"{cid} finished ran=acquire,predict,publish")
    table = pd.read_parquet(first)
    assert sorted(table.lead_time.unique()) == LEADS and len(table) == 3 * len(LEADS)
    assert sorted(p.name for p in first.parent.iterdir()) == [
        f"pred_{init:%Y%m%d%H}.leads.json",
        f"pred_{init:%Y%m%d%H}.parquet",
    ]  # replaced in place, no temporaries left
    assert json.loads(_published(tmp_path, init, "leads.json").read_text())["partial"] is False
    history = partial.history(store, cid)
    assert [(a["attempt"], a["status"], a["leads"], a["partial"]) for a in history] == [
        (1, "finished", [6, 12], True),
        (2, "finished", LEADS, False),
    ]
    assert [(r["step"], r["status"], r["attempts"]) for r in store.steps_of(cid)] == [
        (s, "finished", 2) for s in STEPS
    ]
    manifest = json.loads((pipe.work_dir(init.to_pydatetime()) / "manifest.json").read_text())
    assert (manifest["leads"], manifest["partial"], manifest["attempt"]) == (LEADS, False, 2)
    assert main(args) == 0 and capsys.readouterr().out.strip() == f"{cid} done ran=-"
    assert main([*args, "--status"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["status"] == "finished" and status["partial"] is False
    assert [a["leads"] for a in status["attempts"]] == [[6, 12], LEADS]
    assert (_counter("partial"), _counter("update")) == (before[0] + 1, before[1] + 1)


def test_mode_wait_runs_partial_at_the_deadline(tmp_path, model_dir, lead_rows, capsys):
    """The watcher waits ~2 s for the missing leads, then runs the cycle as partial."""
    init, later = _inits(lead_rows)[:2]
    policy = {"mode": "wait", "deadline_minutes": 2 / 60, "poll_seconds": 0.2}
    path = lead_pipeline(tmp_path, model_dir, partial=policy)
    pipe = pl.load(path)
    store = StateStore(pipe.state, pipe.name)
    for lead in LEADS[:2]:
        drop_lead(lead_rows, tmp_path, init, lead)
    start = time.monotonic()
    outcomes = watch(pipe, store, interval=0.2, max_cycles=1, timeout=120)
    assert [o.status for o in outcomes] == ["finished"]
    assert time.monotonic() - start >= 2.0
    [attempt] = partial.history(store, _cid(init))
    assert (attempt["leads"], attempt["missing"], attempt["partial"]) == ([6, 12], [18, 24], True)
    assert main(["run", "--pipeline", str(path), "--cycle", _cid(init), "--status"]) == 0
    assert json.loads(capsys.readouterr().out)["partial"] is True
    # `probcast run` blocks until the deadline; a lead arriving meanwhile is included
    drop_lead(lead_rows, tmp_path, later, 6)
    timer = threading.Timer(0.5, drop_lead, (lead_rows, tmp_path, later, 12))
    timer.start()
    start = time.monotonic()
    assert main(["run", "--pipeline", str(path), "--cycle", _cid(later)]) == 0
    assert time.monotonic() - start >= 2.0
    timer.join()
    assert partial.history(store, _cid(later))[0]["leads"] == [6, 12]


@pytest.mark.slow
def test_kill_during_an_update_keeps_the_published_product(tmp_path, model_dir, lead_rows):
    """kill -9 mid-update: the published product is the previous one, whole; a restart
    completes the update."""
    init = _inits(lead_rows)[0]
    cid = _cid(init)
    path = lead_pipeline(tmp_path, model_dir, partial={"mode": "available"})
    pipe = pl.load(path)
    store = StateStore(pipe.state, pipe.name)
    for lead in LEADS[:2]:
        drop_lead(lead_rows, tmp_path, init, lead)
    cmd = [sys.executable, "-m", "probcast.ops.cli", "run", "--pipeline", str(path), "--cycle", cid]
    assert main(cmd[3:]) == 0
    published = _published(tmp_path, init)
    old = io.sha256_file(published)
    for lead in LEADS[2:]:
        drop_lead(lead_rows, tmp_path, init, lead)
    for point in ("predict:done", "publish"):
        flag = tmp_path / f"paused-{point.replace(':', '-')}"
        env = {
            **os.environ,
            "PROBCAST_OPS_PAUSE_AT": point,
            "PROBCAST_OPS_PAUSE_SIGNAL": str(flag),
            "PROBCAST_OPS_PAUSE_SECONDS": "120",
        }
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        wait_for(flag, proc)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        assert io.sha256_file(published) == old, point  # the previous product, untouched
        assert sorted(pd.read_parquet(published).lead_time.unique()) == [6, 12]
        assert store.cycle_status(cid) == "started"
        assert partial.history(store, cid)[-1]["status"] == "started"
    final = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    assert sorted(pd.read_parquet(published).lead_time.unique()) == LEADS
    assert [(a["attempt"], a["status"], a["leads"]) for a in partial.history(store, cid)] == [
        (1, "finished", [6, 12]),
        (2, "finished", LEADS),
    ]
    assert [p.name for p in published.parent.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_attempts_and_clock_in_the_state_store(tmp_path, request, backend):
    """The attempt and clock tables on SQLite and PostgreSQL, beside an existing store."""
    url = f"sqlite:///{tmp_path / 's.sqlite'}"
    if backend == "postgresql":
        url = request.getfixturevalue("postgres_url")
    pipe = pl.load(lead_pipeline(tmp_path, tmp_path / "model", partial={"mode": "available"}))
    name = f"partial-{backend}-{os.getpid()}-{time.time_ns()}"
    store = StateStore(url, name)  # the state store's own tables exist first
    cid = "2026-11-29T00Z"
    store.start_cycle(cid)
    values = {"leads": "[6]", "missing": "[12]", "sha256": "{}", "partial": 1, "status": "started"}
    partial._begin_attempt(store, cid, values)
    partial._begin_attempt(store, cid, {**values, "leads": "[6, 12]"})  # a retry: same attempt
    partial.finish_attempt(dataclasses.replace(pipe, name=name), store, cid)
    partial._begin_attempt(store, cid, values)  # after a finished one: a new attempt
    assert [(a["attempt"], a["status"], a["leads"]) for a in partial.history(store, cid)] == [
        (1, "finished", [6, 12]),
        (2, "started", [6]),
    ]
    assert partial.used_leads(store, cid) == [6, 12]
    seen = partial.first_seen(store, cid)
    assert partial.first_seen(store, cid) == seen  # recorded once
    store.start_step(cid, "acquire")
    store.finish_step(cid, "acquire")
    store.finish_cycle(cid)
    partial.reopen(store, cid)  # an update: the finished steps run again
    assert store.cycle_status(cid) == "started"
    assert store.step(cid, "acquire")["status"] == "superseded"
    store.close()
