"""What each export carries when a process runs one cycle (a Kubernetes Job), and where from.

A Job's push replaces the previous Job's group (a stable ``instance``), so every push must
carry the pipeline's freshness read from the state store, not only what that Job did.
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from opshelp import write_pipeline

from probcast.cli import main as probcast
from probcast.ops import metrics, metrics_export
from probcast.ops import pipeline as pl
from probcast.ops.cycle import CycleOutcome
from probcast.ops.state import StateStore


@pytest.fixture(autouse=True)
def _no_export():
    yield
    metrics_export.configure()


def value(name: str, **labels: str) -> float | None:
    return metrics.REGISTRY.get_sample_value(name, labels)


def _finished(store: StateStore, cid: str, input_file) -> None:
    store.start_cycle(cid)
    store.start_step(cid, "acquire")
    store.finish_step(cid, "acquire", input_sha256="0" * 64, outputs=[str(input_file)])
    store.finish_cycle(cid)


def test_a_failing_job_still_exports_the_pipelines_freshness(tmp_path):
    """A fresh process whose only cycle fails exports the store's newest finished cycle."""
    store = StateStore(f"sqlite:///{tmp_path / 's.sqlite'}", "job1")
    older, newer = tmp_path / "a.parquet", tmp_path / "b.parquet"
    older.write_bytes(b"x")
    newer.write_bytes(b"x")
    os.utime(older, (1_600_000_000, 1_600_000_000))
    _finished(store, "2020-09-13T00Z", older)
    _finished(store, "2020-09-14T00Z", newer)
    store.start_cycle("2020-09-15T00Z")
    store.fail_cycle("2020-09-15T00Z", "acquire: StepError: input not found: /x")
    failed = CycleOutcome("2020-09-15T00Z", "failed", [], "acquire: StepError: input not found")
    metrics.record_cycle("job1", pl.parse_cycle("2020-09-15T00Z"), failed, store)
    newest = datetime(2020, 9, 14, tzinfo=UTC).timestamp()
    assert value("probcast_latest_cycle_timestamp_seconds", pipeline="job1") == newest
    row = store.cycle("2020-09-14T00Z")
    done_at = row["finished_at"].replace(tzinfo=UTC).timestamp()
    assert value("probcast_cycle_last_success_timestamp_seconds", pipeline="job1") == done_at
    assert value("probcast_cycle_delivery_delay_seconds", pipeline="job1") == done_at - newest
    seen = newer.stat().st_mtime
    assert value("probcast_input_last_seen_timestamp_seconds", pipeline="job1") == seen
    assert value("probcast_input_delay_seconds", pipeline="job1") == seen - newest
    failed_at = store.cycle("2020-09-15T00Z")["finished_at"].replace(tzinfo=UTC).timestamp()
    assert value("probcast_cycle_last_failure_timestamp_seconds", pipeline="job1") >= failed_at
    store.close()


def test_a_job_that_finds_nothing_to_do_still_reports_the_store_failure(tmp_path):
    """A cycle still failed in the store keeps ProbcastCycleFailed's failure time alive."""
    store = StateStore(f"sqlite:///{tmp_path / 's.sqlite'}", "job2")
    (tmp_path / "a.parquet").write_bytes(b"x")
    _finished(store, "2020-09-13T00Z", tmp_path / "a.parquet")
    store.start_cycle("2020-09-14T00Z")
    store.fail_cycle("2020-09-14T00Z", "predict: KeyError: 'fc_t2m'")
    done = CycleOutcome("2020-09-13T00Z", "done")
    metrics.record_cycle("job2", pl.parse_cycle("2020-09-13T00Z"), done, store)
    success = value("probcast_cycle_last_success_timestamp_seconds", pipeline="job2")
    failure = value("probcast_cycle_last_failure_timestamp_seconds", pipeline="job2")
    assert failure is not None and success is not None and failure > success
    store.close()


def test_input_delay_is_the_newest_cycles(tmp_path):
    """An older cycle run after a newer one (a retry, a backfill) does not replace the delay."""
    store = StateStore(f"sqlite:///{tmp_path / 's.sqlite'}", "late1")
    new_in, old_in = tmp_path / "new.parquet", tmp_path / "old.parquet"
    new_in.write_bytes(b"x")
    old_in.write_bytes(b"x")
    _finished(store, "2026-11-29T00Z", new_in)
    _finished(store, "2021-01-01T00Z", old_in)  # a backfill of an old cycle, input copied now
    for cid in ("2026-11-29T00Z", "2021-01-01T00Z"):
        outcome = SimpleNamespace(cycle=cid, status="finished", ran=["acquire"], error="")
        metrics.record_cycle("late1", pl.parse_cycle(cid), outcome, store)
    nominal = datetime(2026, 11, 29, tzinfo=UTC).timestamp()
    assert value("probcast_input_delay_seconds", pipeline="late1") == pytest.approx(
        new_in.stat().st_mtime - nominal
    )
    store.close()


def test_pushgateway_instance_is_stable_when_asked(monkeypatch):
    args = argparse.Namespace(metrics_file=None, pushgateway="http://gateway:9091")
    monkeypatch.setenv("PROBCAST_METRICS_INSTANCE", "probcast-cycle")
    assert metrics_export.configure_from_args(args, "consume", "/etc/probcast/ops.yaml") == ""
    export = metrics_export._EXPORT[0]
    assert export.job == "probcast_consume"
    assert export.grouping == {"instance": "probcast-cycle", "pipeline_file": "ops"}
    monkeypatch.delenv("PROBCAST_METRICS_INSTANCE")
    metrics_export.configure_from_args(args, "consume", "ops.yaml")
    assert metrics_export._EXPORT[0].grouping["instance"]  # the host name by default


def test_a_bad_metrics_setting_names_where_it_came_from(tmp_path, capsys, monkeypatch):
    path = write_pipeline(tmp_path, tmp_path / "model", metrics={"file": "tf/m.txt"})
    run = ["run", "--pipeline", str(path), "--cycle", "2026-11-29T00Z"]
    assert probcast(run) == 2
    err = capsys.readouterr().err
    assert f"{path}: metrics.file must end with .prom" in err and "--metrics-file" not in err
    path = write_pipeline(tmp_path, tmp_path / "model", metrics={"pushgateway": "gw:9091"})
    assert probcast(run) == 2
    assert f"{path}: metrics.pushgateway must be an http(s) URL" in capsys.readouterr().err
    monkeypatch.setenv("PROBCAST_METRICS_FILE", str(tmp_path / "m.txt"))
    assert probcast(run) == 2
    assert "$PROBCAST_METRICS_FILE must end with .prom" in capsys.readouterr().err
    assert probcast([*run, "--metrics-file", str(tmp_path / "x.txt")]) == 2
    assert "--metrics-file must end with .prom" in capsys.readouterr().err


def test_an_unresolved_model_is_counted_under_step_model(tmp_path):
    store = StateStore(f"sqlite:///{tmp_path / 's.sqlite'}", "reg1")
    error = "model: RegistryError: stations@champion: no version with alias 'champion'"
    outcome = SimpleNamespace(cycle="2026-11-29T00Z", status="failed", ran=[], error=error)
    metrics.record_cycle("reg1", pl.parse_cycle("2026-11-29T00Z"), outcome, store)
    labels = {"pipeline": "reg1", "step": "model", "cause": "RegistryError"}
    assert value("probcast_step_failures_total", **labels) == 1
    store.close()
