"""probcast cost: measured cycle times and product sizes from the state store, priced."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest
from opshelp import cycles_of, drop_cycle, write_pipeline

from probcast.cli import main
from probcast.ops import cost
from probcast.ops import pipeline as pl
from probcast.ops.state import StateStore, cycles


def _store(tmp_path, durations, size=2_000_000):
    store = StateStore(f"sqlite:///{tmp_path / 'state.sqlite'}", "p")
    for i, seconds in enumerate(durations):
        cid = f"2026-11-{i + 1:02d}T00Z"
        out = tmp_path / f"pred_{i}.nc"
        out.write_bytes(b"x" * size)
        store.start_cycle(cid)
        store.start_step(cid, "predict")
        store.finish_step(cid, "predict", outputs={"members": str(out)})
        store.finish_cycle(cid)
        start = datetime(2026, 11, i + 1, 0, 5)
        with store.engine.begin() as conn:
            conn.execute(
                cycles.update()
                .where(cycles.c.cycle == cid)
                .values(started_at=start, finished_at=start + timedelta(seconds=seconds))
            )
    store.start_cycle("2026-11-30T00Z")  # unfinished: not measured
    return store


def test_measure_takes_medians_of_finished_cycles(tmp_path):
    store = _store(tmp_path, [100.0, 300.0, 200.0])
    m = cost.measure(store, every_hours=6)
    assert (m.cycles, m.cycle_seconds, m.product_bytes, m.cycles_per_day) == (3, 200.0, 2e6, 4.0)


def test_estimate_arithmetic():
    m = cost.Measured(cycles=5, cycle_seconds=540.0, product_bytes=1e9, cycles_per_day=4.0,
                      training_seconds=7200.0)  # fmt: skip
    prices = cost.Prices(cpu_node_hour=1.0, node_start_seconds=60.0, serve_replicas=2,
                         serve_node_hour=0.5, storage_gb_month=0.02, retention_days=30.4375,
                         gpu_node_hour=4.0, spot_discount=0.5, retrains_per_month=3.0,
                         egress_gb=0.1, egress_gb_per_cycle=2.0)  # fmt: skip
    c = cost.estimate(m, prices)
    assert c["cycles (CPU jobs)"]["day"] == pytest.approx(4 * 600 / 3600 * 1.0)
    assert c["serve"]["day"] == pytest.approx(24.0)
    assert c["storage"]["month"] == pytest.approx(4 * 30.4375 * 0.02)  # 1 GB x cycles kept
    assert c["training (GPU spot)"]["month"] == pytest.approx(3 * 2 * 2.0)
    assert c["egress"]["day"] == pytest.approx(0.8)
    parts = sum(v["day"] for k, v in c.items() if k != "total")
    assert c["total"]["day"] == pytest.approx(parts)


def test_nothing_finished_is_an_error(tmp_path):
    store = StateStore(f"sqlite:///{tmp_path / 's.sqlite'}", "p")
    with pytest.raises(ValueError, match="no finished cycle"):
        cost.measure(store, 24)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("cpu_node_hour: -1\n", ">= 0"),
        ("cpu_node_hr: 1\n", "unknown price keys"),
        ("[1\n", "cannot"),
    ],
)
def test_bad_prices_are_refused(tmp_path, text, match):
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        cost.Prices.load(path)


def test_cli_prints_the_table_and_json(tmp_path, capsys):
    _store(tmp_path, [120.0, 120.0]).close()
    pipe = tmp_path / "p.yaml"
    pipe.write_text(
        f"name: p\nmodel: m\ninput: in/{{cycle:%Y%m%d%H}}.parquet\nevery_hours: 12\n"
        f"state: sqlite:///{tmp_path / 'state.sqlite'}\n"
        "products: {members: 5}\ndestinations: [out]\n"
    )
    prices = tmp_path / "prices.yaml"
    prices.write_text("cpu_node_hour: 0.5\nserve_replicas: 0\n")
    assert main(["cost", "--pipeline", str(pipe), "--prices", str(prices)]) == 0
    out = capsys.readouterr().out
    assert "median 120.0 s" in out and "total" in out and "placeholders" not in out
    assert main(["cost", "--pipeline", str(pipe), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["measured"]["cycles_per_day"] == 2.0
    assert data["costs"]["cycles (CPU jobs)"]["day"] == pytest.approx(2 * 180 / 3600 * 0.2)


@pytest.mark.parametrize(
    ("text", "key", "match"),
    [
        ("spot_discount: 60\n", "spot_discount", "fraction 0 <= spot_discount < 1"),
        ("spot_discount: 1.0\n", "spot_discount", "fraction 0 <= spot_discount < 1"),
        ("retention_days: .nan\n", "retention_days", "finite number"),
        ("egress_gb: .inf\n", "egress_gb", "finite number"),
        ("serve_replicas: true\n", "serve_replicas", "expected a number"),
        ("serve_replicas: 1.5\n", "serve_replicas", "whole number"),
        ("cpu_node_hour: '0.2'\n", "cpu_node_hour", "expected a number"),
        ("gpu_node_hour: null\n", "gpu_node_hour", "expected a number"),
    ],
)
def test_prices_that_make_no_sense_name_the_file_and_key(tmp_path, text, key, match):
    path = tmp_path / "prices.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}: {key}: .*{re.escape(match)}"):
        cost.Prices.load(path)


def test_prices_built_in_code_are_checked_too():
    with pytest.raises(ValueError, match="spot_discount"):
        cost.Prices(spot_discount=60)
    with pytest.raises(ValueError, match="serve_replicas"):
        cost.Prices(serve_replicas=True)
    m = cost.Measured(cycles=1, cycle_seconds=10.0, product_bytes=0.0, cycles_per_day=4.0,
                      training_seconds=3600.0)  # fmt: skip
    assert all(v["day"] >= 0 for v in cost.estimate(m, cost.Prices(spot_discount=0.9)).values())


def test_first_runs_of_a_process_price_a_cycle_job(tmp_path):
    store = _store(tmp_path, [0.1, 0.1, 0.1])  # the rows: model load not in most of them

    def run(cid, seconds, first):
        return SimpleNamespace(cycle=cid, seconds=seconds, first_predict=first)

    cost.record_run(store, run("2026-11-01T00Z", 3.0, True), startup=0.5)
    cost.record_run(store, run("2026-11-02T00Z", 0.2, False), startup=None)
    cost.record_run(store, run("2026-11-03T00Z", 0.4, False), startup=None)
    cost.record_run(store, run("2026-11-30T00Z", 9.0, True), startup=0.5)  # not finished
    m = cost.measure(store, every_hours=6)
    assert (m.basis, m.first_runs, m.cycle_seconds) == ("first runs", 1, 3.5)
    assert m.later_seconds == pytest.approx(0.3)
    text = cost.table(m, cost.estimate(m, cost.Prices()), placeholder=True)
    assert "median 3.5 s over 1 first runs of a process" in text
    assert "later cycles of a process: median 0.3 s" in text
    # a rerun of the same cycle replaces its row
    cost.record_run(store, run("2026-11-01T00Z", 5.0, True), startup=1.0)
    assert cost.measure(store, every_hours=6).cycle_seconds == 6.0


def test_a_backfill_is_priced_as_one_cycle_jobs(tmp_path, model_dir, stations, capsys):
    """Two cycles in one process: only the first loads the model; a Job per cycle pays that."""
    inits = cycles_of(stations)[:2]
    for init in inits:
        drop_cycle(stations, tmp_path / "inputs", init)
    path = write_pipeline(tmp_path, model_dir, name="priced")
    span = ["--from", f"{inits[0]:%Y%m%d%H}", "--to", f"{inits[-1]:%Y%m%d%H}"]
    proc = subprocess.run(
        [sys.executable, "-m", "probcast.cli", "run", "--pipeline", str(path), *span],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert main(["cost", "--pipeline", str(path), "--json"]) == 0
    measured = json.loads(capsys.readouterr().out)["measured"]
    assert (measured["basis"], measured["first_runs"]) == ("first runs", 1)
    store = StateStore(pl.load(path).state, "priced")
    rows = {r["cycle"]: r for r in store.list_cycles()}
    first = rows[f"{inits[0]:%Y-%m-%dT%H}Z"]
    cold = (first["finished_at"] - first["started_at"]).total_seconds()
    assert measured["cycle_seconds"] >= cold > measured["later_seconds"]
    store.close()


def test_training_time_says_what_it_is(tmp_path, model_dir, capsys):
    _store(tmp_path, [120.0]).close()
    pipe = tmp_path / "p.yaml"
    pipe.write_text(
        f"name: p\nmodel: m\ninput: in/{{cycle:%Y%m%d%H}}.parquet\nevery_hours: 12\n"
        f"state: sqlite:///{tmp_path / 'state.sqlite'}\n"
        "products: {members: 5}\ndestinations: [out]\n"
    )
    assert main(["cost", "--pipeline", str(pipe), "--model", str(model_dir)]) == 0
    assert "the training's elapsed time (summary.json)" in capsys.readouterr().out
    elapsed = json.loads((model_dir / "summary.json").read_text())["elapsed_s"]
    loops = sum(json.loads(p.read_text())["wall_s"] for p in model_dir.rglob("DONE.json"))
    assert elapsed > loops > 0  # the whole training: reading, compiling, calibrating too
    older = tmp_path / "older"  # a model trained before elapsed_s was recorded
    shutil.copytree(model_dir, older)
    summary = json.loads((older / "summary.json").read_text())
    del summary["elapsed_s"]
    (older / "summary.json").chmod(0o644)
    (older / "summary.json").write_text(json.dumps(summary))
    assert main(["cost", "--pipeline", str(pipe), "--model", str(older)]) == 0
    assert "seed loops (DONE.json): a lower bound" in capsys.readouterr().out
    args = ["cost", "--pipeline", str(pipe), "--model", str(model_dir), "--json"]
    assert main([*args, "--training-seconds", "5400"]) == 0
    measured = json.loads(capsys.readouterr().out)["measured"]
    assert (measured["training_seconds"], measured["training_basis"]) == (5400.0, "given")
    assert main([*args, "--training-seconds", "-1"]) == 2
    assert "--training-seconds must be >= 0" in capsys.readouterr().err
