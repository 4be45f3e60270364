"""Failed steps in the metrics: one count per failure, under its documented cause, timed right.

An input rewritten while the predict step runs (``InputChanged``) used to be counted as
``cause="InputChanged"`` (the docs promise ``input_changed``), plus a bogus acquire failure
with ``cause="predict"`` and an acquire duration stretched to the predict step's failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from opshelp import cycles_of, drop_cycle, wait_for, write_pipeline
from prometheus_client.parser import text_string_to_metric_families

from probcast.ops import cycle as cycle_mod
from probcast.ops import metrics, metrics_export
from probcast.ops import pipeline as pl
from probcast.ops.cycle import InputChanged, StepError, run_cycle
from probcast.ops.registry import RegistryError
from probcast.ops.state import StateStore


@pytest.fixture(autouse=True)
def _no_export():
    yield
    metrics_export.configure()


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def _message(step: str, err: Exception) -> str:
    """A step error worded exactly as run_cycle words it."""
    return f"{step}: {type(err).__name__}: {err}"


def test_causes_of_the_errors_run_cycle_really_raises():
    cause = metrics.failure_cause
    changed = InputChanged("input changed since it was acquired: /x.parquet (acquired again)")
    assert cause(_message("predict", changed)) == "input_changed"
    assert cause(_message("acquire", StepError("input not found: /x"))) == "input_missing"
    assert cause(_message("model", RegistryError("stations@champion: no version"))) == (
        "RegistryError"
    )
    assert cause("acquire: acquired again: predict: InputChanged: x") == "unknown"  # no type
    assert cause("model: stations@champion: no version") == "unknown"  # never a free text


def test_input_changed_is_counted_once_under_its_cause(tmp_path, model_dir, stations, monkeypatch):
    init = cycles_of(stations)[3]
    drop_cycle(stations, tmp_path / "inputs", init)
    pipe = pl.load(write_pipeline(tmp_path, model_dir, name="ic1"))
    store = StateStore(pipe.state, pipe.name)
    real_acquire, real_predict = cycle_mod.STEP_FUNCTIONS["acquire"], cycle_mod._predict

    def acquire_then_rewrite(ctx):
        record = real_acquire(ctx)
        drop_cycle(stations.assign(fc_t2m=stations["fc_t2m"] + 0.1), tmp_path / "inputs", init)
        return record

    def slow_predict(ctx):  # the failure comes 1.5 s after acquire finished
        time.sleep(1.5)
        return real_predict(ctx)

    monkeypatch.setitem(cycle_mod.STEP_FUNCTIONS, "acquire", acquire_then_rewrite)
    monkeypatch.setitem(cycle_mod.STEP_FUNCTIONS, "predict", slow_predict)
    outcome = run_cycle(pipe, pl.parse_cycle(f"{init:%Y-%m-%dT%H}Z"), store)
    assert outcome.status == "failed" and "InputChanged" in outcome.error
    assert value("probcast_step_failures_total", pipeline="ic1", step="predict",
                 cause="input_changed") == 1  # fmt: skip
    failures = [
        s
        for family in metrics.REGISTRY.collect()
        for s in family.samples
        if s.name == "probcast_step_failures_total" and s.labels["pipeline"] == "ic1"
    ]
    assert len(failures) == 1, failures  # no second failure under another step or cause
    assert value("probcast_step_duration_seconds_count", pipeline="ic1", step="acquire") == 1
    assert value("probcast_step_duration_seconds_sum", pipeline="ic1", step="acquire") < 1.0
    assert value("probcast_step_duration_seconds_sum", pipeline="ic1", step="predict") >= 1.5
    assert outcome.steps["acquire"] < 1.0 and outcome.steps["predict"] >= 1.5
    # the next attempt acquires again (as before) and finishes
    monkeypatch.undo()
    assert run_cycle(pipe, pl.parse_cycle(f"{init:%Y-%m-%dT%H}Z"), store).status == "finished"
    store.close()


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_input_rewritten_during_predict_in_the_textfile(tmp_path, model_dir, stations):
    """The audit's repro: the pause hook at predict, the input rewritten meanwhile."""
    init = cycles_of(stations)[4]
    drop_cycle(stations, tmp_path / "inputs", init)
    path = write_pipeline(tmp_path, model_dir, name="ic2")
    prom, flag = tmp_path / "ic.prom", tmp_path / "paused"
    env = {
        **os.environ,
        "PROBCAST_OPS_PAUSE_AT": "predict",
        "PROBCAST_OPS_PAUSE_SIGNAL": str(flag),
        "PROBCAST_OPS_PAUSE_SECONDS": "3",
    }
    cmd = [sys.executable, "-m", "probcast.cli", "run", "--pipeline", str(path)]
    proc = subprocess.Popen(
        [*cmd, "--cycle", f"{init:%Y-%m-%dT%H}Z", "--metrics-file", str(prom)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    wait_for(flag, proc)
    drop_cycle(stations.assign(fc_t2m=stations["fc_t2m"] + 0.1), tmp_path / "inputs", init)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 1 and "InputChanged" in out, out
    got = _samples(prom.read_text())
    failures = {k: v for k, v in got.items() if k[0] == "probcast_step_failures_total"}
    key = frozenset({("pipeline", "ic2"), ("step", "predict"), ("cause", "input_changed")})
    assert failures == {("probcast_step_failures_total", key): 1.0}
    acquire = frozenset({("pipeline", "ic2"), ("step", "acquire")})
    assert got[("probcast_step_duration_seconds_count", acquire)] == 1
    assert got[("probcast_step_duration_seconds_sum", acquire)] < 1.0  # not up to predict's end
