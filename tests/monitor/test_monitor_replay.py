"""The fault-injection replay on a real benchmark set (short form of benchmarks/drift_replay.py).

pnw-t2m (969 Pacific-Northwest stations, 48-h 2 m temperature): a tiny model is trained on
January 2004, February is replayed as daily cycles through it, and from the 8th cycle on
the GFS input gets a -2 K bias. Thresholds come from the training period only. The NWP
bias alert must fire within 6 cycles of the fault (2 of them: observations arrive 48 h after issue)
and never before it, nor anywhere in the clean replay.
"""

from __future__ import annotations

import pytest

from probcast.cli import main
from probcast.data.prepare import prepare
from probcast.monitor import replay as rp
from probcast.monitor import scenario

FAULT_START = 8
MAX_CYCLES = 16
WITHIN = 6


@pytest.fixture
def pnw(mirror, tmp_path):
    prepared = prepare("pnw-t2m")
    workdir = tmp_path / "model"
    rc = main(
        [
            "train",
            "--config=tiny",
            f"--workdir={workdir}",
            f"--config.data.path={prepared.paths['train']}",
            "--config.train.epochs=1",
            "--config.train.n_seeds=1",
            "--config.tracking.backend=none",
        ]
    )
    assert rc == 0
    return prepared, workdir


def test_bias_fault_is_detected_without_false_alarms(pnw, tmp_path):
    prepared, workdir = pnw
    fault = rp.Fault("fc_t2m", "bias", -2.0, FAULT_START)
    res = scenario.run(
        prepared.train,
        prepared.test,
        scenario.model_forecaster(workdir),
        fault,
        max_cycles=MAX_CYCLES,
        workdir=tmp_path / "replay",
    )
    rows = {r["alert"]: r for r in res["rows"]}
    bias = rows["nwp_bias:t2m"]
    assert bias["first_after_fault"] is not None and bias["first_after_fault"] <= WITHIN
    assert bias["false_alarms"] == 0 and bias["clean_replay_alarms"] == 0
    # the input drift thresholds, calibrated on January's own windows, stay quiet when clean
    for name, row in rows.items():
        if name.startswith("drift_"):
            assert row["clean_replay_alarms"] == 0, name
    faulty = res["results"]["fault"]
    assert len(faulty.cycles) == MAX_CYCLES and faulty.fault is fault
