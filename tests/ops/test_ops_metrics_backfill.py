"""A parallel backfill exports its cycles' metrics as a sequential one does.

Its cycles run in spawned Dask worker processes, which export nothing: the parent records
each outcome (and prediction) and writes the textfile / pushes as each cycle completes.
"""

from __future__ import annotations

from opshelp import cycles_of, drop_cycle, write_pipeline
from prometheus_client.parser import text_string_to_metric_families

from probcast.cli import main as probcast
from probcast.ops import metrics_export


def _samples(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_parallel_backfill_writes_the_textfile(tmp_path, model_dir, stations, capsys):
    inits = cycles_of(stations)[:3]
    for init in inits[:2]:
        drop_cycle(stations, tmp_path / "inputs", init)  # the third has no input: it fails
    path = write_pipeline(tmp_path, model_dir, name="par", destinations=["published"])
    prom = tmp_path / "tf" / "par.prom"
    prom.parent.mkdir()
    prom.write_text("# an older backfill's file\nprobcast_stale 1\n")
    span = ["--from", f"{inits[0]:%Y%m%d%H}", "--to", f"{inits[-1]:%Y%m%d%H}"]
    args = ["run", "--pipeline", str(path), *span, "--workers", "2", "--metrics-file", str(prom)]
    try:
        assert probcast(args) == 1  # the third cycle failed
    finally:
        metrics_export.configure()
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[1] for line in lines] == ["finished", "finished", "failed"]
    got = _samples(prom.read_text())
    assert not any(name == "probcast_stale" for name, _ in got)  # replaced, not left stale

    def get(name, **labels):
        return got.get((name, frozenset({("pipeline", "par"), *labels.items()})))

    assert get("probcast_cycles_total", status="finished") == 2
    assert get("probcast_cycles_total", status="failed") == 1
    assert get("probcast_cycle_duration_seconds_count") == 3
    assert get("probcast_step_duration_seconds_count", step="predict") == 2
    assert get("probcast_step_failures_total", step="acquire", cause="input_missing") == 1
    assert get("probcast_latest_cycle_timestamp_seconds") == inits[1].timestamp()
    assert get("probcast_cycle_interval_seconds") == 24 * 3600
    assert get("probcast_input_last_seen_timestamp_seconds") is not None
    assert get("probcast_cycle_last_failure_timestamp_seconds") is not None
    # the workers' predictions reach the parent: model in use, product sizes, row sources
    assert any(name == "probcast_model_info" and ("pipeline", "par") in lab for name, lab in got)
    assert get("probcast_output_bytes", product="table") > 0
    rows = {
        k: v
        for k, v in got.items()
        if k[0] == "probcast_forecast_rows_total" and ("pipeline", "par") in k[1]
    }
    n_rows = int((stations.init_time.isin(inits[:2])).sum())
    per_variable = {}
    for (_, labels), count in rows.items():
        variable = dict(labels)["variable"]
        per_variable[variable] = per_variable.get(variable, 0) + count
    assert per_variable and set(per_variable.values()) == {n_rows}
