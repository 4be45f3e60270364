"""Work files per pipeline, checked before publishing.

The audit's findings: two pipelines in one folder (a champion and a shadow) shared
``<work>/<YYYYMMDDHH>/pred_<cycle>.parquet``, so one published the other's forecast; and
``publish`` copied whatever file was at the predict step's path (truncated, replaced).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import fsspec
import pandas as pd
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa
from opshelp import SPLIT, cycles_of, drop_cycle, wait_for, write_pipeline

from probcast import io
from probcast.ops import cycle as cycle_mod
from probcast.ops import pipeline as pl
from probcast.ops import work_products as wp
from probcast.ops.cli import main
from probcast.ops.cycle import run_cycle
from probcast.ops.state import StateStore, engine_with
from probcast.testing.stations import station_table

STEPS = ["acquire", "predict", "publish", "record"]


def _pipeline(root: Path, model: Path, file: str, **extra) -> pl.Pipeline:
    """A pipeline file ``root/<file>`` (``write_pipeline`` writes ``ops.yaml``)."""
    path = write_pipeline(root, model, **extra).rename(root / file)
    return pl.load(path)


def _model_of(path: Path) -> str:
    """The model a Parquet product says it came from (its ``probcast`` schema metadata)."""
    meta = pq.read_schema(path).metadata or {}
    return json.loads(meta[b"probcast"])["model"]


def _members(path: Path) -> int:
    return pd.read_parquet(path).filter(regex=r"^t2m_m\d+$").shape[1]


def _key(init: pd.Timestamp) -> str:
    return f"{init:%Y%m%d%H}/pred_{init:%Y%m%d%H}.parquet"


def test_work_folder_holds_the_pipeline_name(tmp_path):
    cycle = pl.parse_cycle("2026-11-29T00Z")
    seoul = _pipeline(tmp_path, tmp_path / "m", "a.yaml", name="seoul")
    shadow = _pipeline(tmp_path, tmp_path / "m", "b.yaml", name="shadow")
    assert seoul.work_dir(cycle) == tmp_path / ".ops-work" / "seoul" / "2026112900"
    assert shadow.output_path(cycle) == (
        tmp_path / ".ops-work" / "shadow" / "2026112900" / "pred_2026112900.parquet"
    )
    # a name unsafe as a folder name: one safe folder, never shared with a look-alike
    odd = {pl.work_folder_name(n) for n in ("a/b", "a b", "a_b", "..", ".hidden", "x" * 300)}
    assert len(odd) == 6 and "a_b" in odd
    assert all("/" not in n and not n.startswith(".") and len(n) <= 100 for n in odd)


def test_two_pipelines_in_one_folder_publish_their_own_products(
    tmp_path, model_dir, stations, monkeypatch
):
    """The audit's repro: the champion stops after predict, the shadow runs the same cycle."""
    init = cycles_of(stations)[0]
    drop_cycle(stations, tmp_path / "inputs", init)
    shadow_model = tmp_path / "shadow-model"
    shutil.copytree(model_dir, shadow_model)
    champion = _pipeline(
        tmp_path, model_dir, "seoul.yaml", name="seoul", destinations=["published"]
    )
    shadow = _pipeline(
        tmp_path,
        shadow_model,
        "shadow.yaml",
        name="shadow",
        destinations=["shadow-published"],
        products={"output": "pred_{cycle:%Y%m%d%H}.parquet", "members": 2},
    )
    stores = {p.name: StateStore(p.state, p.name) for p in (champion, shadow)}
    cycle = init.to_pydatetime()
    real = cycle_mod.STEP_FUNCTIONS["publish"]
    shadow_outcomes = []

    def publish_after_the_shadow(ctx):  # the champion's predict finished; it is paused here
        if ctx.pipe.name == "seoul" and not shadow_outcomes:
            shadow_outcomes.append(run_cycle(shadow, cycle, stores["shadow"]))
        return real(ctx)

    monkeypatch.setitem(cycle_mod.STEP_FUNCTIONS, "publish", publish_after_the_shadow)
    outcome = run_cycle(champion, cycle, stores["seoul"])
    assert outcome.status == "finished", outcome.error
    assert shadow_outcomes[0].status == "finished", shadow_outcomes[0].error
    mine = tmp_path / "published" / _key(init)
    theirs = tmp_path / "shadow-published" / _key(init)
    assert _model_of(mine) == str(model_dir) and _members(mine) == 4
    assert _model_of(theirs) == str(shadow_model) and _members(theirs) == 2
    for pipe, published in ((champion, mine), (shadow, theirs)):
        manifest = json.loads((pipe.work_dir(cycle) / "manifest.json").read_text())
        assert manifest["pipeline"] == pipe.name and manifest["model"] == str(pipe.model)
        assert manifest["products"] == {"table": str(pipe.output_path(cycle))}
        assert manifest["product_checksums"]["table"] == wp.digest(published)
        assert wp.digest(pipe.output_path(cycle)) == wp.digest(published)
    assert champion.work_dir(cycle) != shadow.work_dir(cycle)


def test_work_product_replaced_after_predict_is_refused(tmp_path, model_dir, stations, monkeypatch):
    init = cycles_of(stations)[1]
    drop_cycle(stations, tmp_path / "inputs", init)
    pipe = _pipeline(tmp_path, model_dir, "ops.yaml", name="tamper")
    store = StateStore(pipe.state, pipe.name)
    cycle, cid = init.to_pydatetime(), pl.cycle_id(init.to_pydatetime())
    work = pipe.output_path(cycle)
    real = cycle_mod.STEP_FUNCTIONS["publish"]
    before: list[dict] = []

    def replace_then_publish(ctx):  # another valid forecast lands on the work file
        before.append(wp.digest(work))
        other = pd.read_parquet(work).assign(t2m_m000=-99.0)
        io.write_with(work, lambda tmp: other.to_parquet(tmp, index=False))
        return real(ctx)

    monkeypatch.setitem(cycle_mod.STEP_FUNCTIONS, "publish", replace_then_publish)
    outcome = run_cycle(pipe, cycle, store)
    found = wp.digest(work)
    assert outcome.status == "failed" and outcome.error.startswith("publish: ProductChanged")
    for part in (str(work), before[0]["sha256"], found["sha256"], "predict step again"):
        assert part in outcome.error
    assert not (tmp_path / "published").exists() and not (tmp_path / "published2").exists()
    assert store.step(cid, "publish")["status"] == "failed"
    assert store.step(cid, "predict")["status"] == "failed"  # the next attempt predicts again
    assert store.cycle_status(cid) == "failed"
    monkeypatch.undo()
    again = run_cycle(pipe, cycle, store)
    assert again.status == "finished" and again.ran == STEPS[1:], again.error
    assert [r["attempts"] for r in store.steps_of(cid)] == [1, 2, 2, 1]
    for dest in ("published", "published2"):
        assert wp.digest(tmp_path / dest / _key(init)) == before[0]  # the predicted forecast
        assert (pd.read_parquet(tmp_path / dest / _key(init))["t2m_m000"] != -99.0).all()


def test_truncated_during_the_pause_fails_the_cli(tmp_path, model_dir, stations):
    """``probcast run`` paused after predict; the work file is truncated meanwhile."""
    init = cycles_of(stations)[2]
    drop_cycle(stations, tmp_path / "inputs", init)
    path = write_pipeline(tmp_path, model_dir, name="cut")
    pipe, cycle = pl.load(path), init.to_pydatetime()
    flag = tmp_path / "paused"
    env = {
        **os.environ,
        "PROBCAST_OPS_PAUSE_AT": "publish",
        "PROBCAST_OPS_PAUSE_SIGNAL": str(flag),
        "PROBCAST_OPS_PAUSE_SECONDS": "4",
    }
    args = ["run", "--pipeline", str(path), "--cycle", pl.cycle_id(cycle)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "probcast.ops.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_for(flag, proc)
    work = pipe.output_path(cycle)
    expected = wp.digest(work)
    with work.open("r+b") as fh:
        fh.truncate(expected["size"] // 2)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1, out
    assert f"work product {work} changed since the predict step wrote it" in out
    assert f"expected {expected['size']} bytes, sha256 {expected['sha256']}" in out
    assert f"found {expected['size'] // 2} bytes" in out
    assert not (tmp_path / "published" / _key(init)).exists()
    assert main(args) == 0  # the next run predicts again and publishes the whole file
    assert wp.digest(tmp_path / "published" / _key(init)) == wp.digest(work)
    assert wp.digest(work)["size"] > expected["size"] // 2


def test_a_cycle_begun_with_the_old_work_folder_predicts_again(
    tmp_path, model_dir, stations, monkeypatch
):
    """Predict finished by the previous version: products in ``<work>/<YYYYMMDDHH>``, no sums."""
    init = cycles_of(stations)[3]
    drop_cycle(stations, tmp_path / "inputs", init)
    pipe = _pipeline(tmp_path, model_dir, "ops.yaml", name="old")
    store = StateStore(pipe.state, pipe.name)
    cycle, cid = init.to_pydatetime(), pl.cycle_id(init.to_pydatetime())

    def stop(ctx):
        raise RuntimeError("stopped")

    monkeypatch.setitem(cycle_mod.STEP_FUNCTIONS, "publish", stop)
    assert run_cycle(pipe, cycle, store).status == "failed"
    monkeypatch.undo()
    old = pipe.work / f"{init:%Y%m%d%H}" / pipe.output_path(cycle).name  # the old layout
    old.parent.mkdir(parents=True)
    shutil.move(pipe.output_path(cycle), old)
    store.finish_step(cid, "predict", outputs={"table": str(old)})
    with engine_with(store, wp.metadata).begin() as conn:
        conn.execute(sa.delete(wp.products))
    outcome = run_cycle(pipe, cycle, store)
    assert outcome.status == "finished" and outcome.ran == STEPS[1:], outcome.error
    assert store.step(cid, "predict")["outputs"] == {"table": str(pipe.output_path(cycle))}
    assert wp.digest(tmp_path / "published" / _key(init)) == wp.digest(pipe.output_path(cycle))


LEADS = [6, 12, 24]


def test_a_lead_cycle_acquired_into_the_old_work_folder_is_acquired_again(
    tmp_path, model_dir, monkeypatch
):
    rows = station_table(n_stations=3, n_inits=16, leads=tuple(float(h) for h in LEADS))
    rows = rows[rows.init_time >= SPLIT].drop(columns=["obs_t2m", "obs_tp"])
    init = sorted(rows.init_time.unique())[0]
    for lead in LEADS:
        part = rows[(rows.init_time == init) & (rows.lead_time == lead)]
        file = tmp_path / "inputs" / f"{init:%Y%m%d%H}" / f"f{lead:03d}.parquet"
        file.parent.mkdir(parents=True, exist_ok=True)
        part.to_parquet(file, index=False)
    pipe = _pipeline(
        tmp_path,
        model_dir,
        "ops.yaml",
        input="inputs/{cycle:%Y%m%d%H}/f{lead:03d}.parquet",
        leads=LEADS,
        destinations=["published"],
    )
    store = StateStore(pipe.state, pipe.name)
    cycle, cid = init.to_pydatetime(), pl.cycle_id(init.to_pydatetime())

    def stop(ctx):
        raise RuntimeError("stopped")

    monkeypatch.setitem(cycle_mod.STEP_FUNCTIONS, "predict", stop)
    assert run_cycle(pipe, cycle, store, settle=False).status == "failed"
    monkeypatch.undo()
    old = pipe.work / f"{init:%Y%m%d%H}" / "input.parquet"  # the old layout's union
    old.parent.mkdir(parents=True)
    shutil.move(pipe.input_path(cycle), old)
    record = store.step(cid, "acquire")
    store.finish_step(cid, "acquire", outputs=[str(old), *record["outputs"][1:]])
    outcome = run_cycle(pipe, cycle, store, settle=False)
    assert outcome.status == "finished" and outcome.ran == STEPS, outcome.error
    assert store.step(cid, "acquire")["outputs"][0] == str(pipe.input_path(cycle))
    assert (tmp_path / "published" / _key(init)).exists()


def test_published_copies_are_checked(tmp_path):
    work = tmp_path / "pred.parquet"
    work.write_bytes(b"PAR1 the forecast PAR1")
    expected = {"path": str(work), **wp.digest(work)}
    local = pl.Destination(str(tmp_path / "out"))
    copy = tmp_path / "out" / "pred.parquet"
    copy.parent.mkdir()
    copy.write_bytes(work.read_bytes())
    wp.verify_copy(str(copy), local, expected)  # the same bytes: fine
    copy.write_bytes(b"PAR1 the forecast PAR2")  # same size, other bytes
    with pytest.raises(wp.ProductChanged, match=f"published copy {copy} differs"):
        wp.verify_copy(str(copy), local, expected)
    url = f"memory://probcast-verify-{os.getpid()}/out"
    fs = fsspec.filesystem("memory")
    fs.pipe(f"{url}/pred.parquet", work.read_bytes())
    remote = pl.Destination(url)
    wp.verify_copy(f"{url}/pred.parquet", remote, expected)
    fs.pipe(f"{url}/pred.parquet", b"PAR1 cut")
    with pytest.raises(wp.ProductChanged, match="found 8 bytes"):
        wp.verify_copy(f"{url}/pred.parquet", remote, expected)
