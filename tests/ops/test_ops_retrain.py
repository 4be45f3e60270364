"""Scheduled retraining: rolling windows, the CRPS gate, promote, rollback, on a replay."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from opshelp import drop_cycle
from registryhelp import registry_db, write_registry_pipeline

from probcast.cli import main
from probcast.ops import lineage
from probcast.ops import pipeline as pl
from probcast.ops.cycle import open_store, run_cycle
from probcast.ops.registry import Registry
from probcast.ops.retrain import RetrainError, build_config, decide, windows
from probcast.ops.retrain_spec import parse_retrain
from probcast.testing.stations import station_table

FAST = {"train.epochs": 1, "train.n_seeds": 1, "train.refit": False}
BAD = {**FAST, "train.learning_rate": 1e-6, "train.calibrate_spread": False}
"""A champion that barely trained: the next challenger beats it."""


@pytest.fixture(scope="module")
def replay_table(tmp_path_factory) -> Path:
    """30 daily cycles of 3 stations (2021-01-01 .. 2021-01-30), observed."""
    path = tmp_path_factory.mktemp("retrain-data") / "table.parquet"
    station_table(n_stations=3, n_inits=30).to_parquet(path, index=False)
    return path


def _pipeline(root: Path, table: Path, **retrain) -> Path:
    block = {"config": "tiny", "table": str(table), "window_days": 20, "holdout_days": 6}
    return write_registry_pipeline(root, retrain={**block, **retrain})


def test_windows_hold_back_the_newest_period_without_leakage(replay_table, tmp_path):
    table = pd.read_parquet(replay_table)
    spec = parse_retrain({"config": "tiny", "table": "t", "holdout_days": 5}, tmp_path)
    now = datetime(2021, 1, 26, tzinfo=UTC)
    train, held, info = windows(table, now, spec)
    start = pd.Timestamp("2021-01-21", tz="UTC")
    assert held.init_time.min() == start and held.init_time.max() == pd.Timestamp(
        "2021-01-25", tz="UTC"
    )
    assert train.valid_time.max() < start  # no observation of the held-back period
    assert info["holdout"] == "2021-01-21T00Z/2021-01-26T00Z"
    with pytest.raises(RetrainError, match="no rows in the held-back period"):
        windows(table, datetime(2021, 2, 10, tzinfo=UTC), spec)


def test_the_gate_decides_on_the_crps_margin():
    assert decide({"t2m": 1.0}, None, 0.1, "mean")[0]
    ok, reason, ratio = decide({"t2m": 0.89}, {"t2m": 1.0}, 0.1, "mean")
    assert ok and ratio == pytest.approx(0.89) and reason.startswith("passes")
    ok, reason, _ = decide({"t2m": 0.91}, {"t2m": 1.0}, 0.1, "mean")
    assert not ok and "rejected by gate" in reason
    both = ({"t2m": 0.5, "tp": 1.2}, {"t2m": 1.0, "tp": 1.0})
    assert decide(*both, 0.0, "mean")[0] and not decide(*both, 0.0, "every")[0]


def test_config_overrides_are_checked(tmp_path):
    spec = parse_retrain(
        {"config": "tiny", "table": "t", "overrides": {"train.epochs": "2"}}, tmp_path
    )
    config = build_config(spec, tmp_path / "train.parquet", "sqlite:///x.db")
    assert config.train.epochs == 2 and config.data.path == str(tmp_path / "train.parquet")
    for overrides, message in [
        ({"train.epoch": 1}, "not a config field"),
        ({"train.epochs": "many"}, "must be a int"),
    ]:
        bad = parse_retrain({"config": "tiny", "table": "t", "overrides": overrides}, tmp_path)
        with pytest.raises(RetrainError, match=message):
            build_config(bad, tmp_path, "sqlite:///x.db")


def test_retrain_gate_promote_rollback_on_a_replay(
    tmp_path, tmp_path_factory, replay_table, capsys
):
    registry_db(tmp_path_factory, tmp_path)
    path = str(_pipeline(tmp_path, replay_table, overrides=BAD, every_days=1))
    assert main(["retrain", "--pipeline", path, "--now", "2021-01-28T00:00Z"]) == 0
    assert capsys.readouterr().out.startswith("promoted version 1: no champion")
    # every_days: a second call the same day does nothing
    assert main(["retrain", "--pipeline", path, "--now", "2021-01-28T12:00Z"]) == 0
    assert capsys.readouterr().out.startswith("not due")

    path = str(_pipeline(tmp_path, replay_table, overrides={**FAST, "train.epochs": 3}, margin=0.0))
    assert main(["retrain", "--pipeline", path, "--now", "2021-01-29T00:00Z"]) == 0
    assert capsys.readouterr().out.startswith("promoted version 2: passes: CRPS t2m")
    pipe = pl.load(path)
    registry = Registry(pipe.registry)
    tags = registry.version_tags("2")
    assert tags["gate.decision"] == "promoted" and tags["gate.champion_version"] == "1"
    challenger, champion = (
        float(tags["gate.crps.challenger.t2m"]),
        float(tags["gate.crps.champion.t2m"]),
    )
    assert float(tags["gate.ratio"]) <= 1.0 and challenger > 0 and champion > 0
    assert tags["retrain.holdout"] == "2021-01-23T00Z/2021-01-29T00Z"
    assert registry.aliases()["champion"] == "2"
    gate = json.loads((tmp_path / "retrain" / "20210129T0000Z" / "gate.json").read_text())
    assert gate["status"] == "promoted" and gate["scores"]["champion"]["t2m"] == pytest.approx(
        champion
    )
    # the same --now again reports the recorded outcome without retraining
    assert main(["retrain", "--pipeline", path, "--now", "2021-01-29T00:00Z"]) == 0
    assert capsys.readouterr().out.startswith("done before version 2")

    assert main(["model", "rollback", "--pipeline", path, "--reason", "replay"]) == 0
    assert registry.aliases()["champion"] == "1"
    init = pd.Timestamp("2021-01-30", tz="UTC")
    drop_cycle(pd.read_parquet(replay_table), tmp_path / "inputs", init)
    store = open_store(pipe)
    outcome = run_cycle(pipe, init.to_pydatetime(), store)
    assert outcome.status == "finished", outcome.error
    assert lineage.model_of(store, "2021-01-30T00Z")["version"] == "1"  # after the rollback
    store.close()


@pytest.mark.slow
def test_a_worse_challenger_is_rejected_and_recorded(tmp_path, tmp_path_factory, replay_table):
    registry_db(tmp_path_factory, tmp_path)
    path = str(_pipeline(tmp_path, replay_table, overrides={"train.epochs": 3}))
    assert main(["retrain", "--pipeline", path, "--now", "2021-01-28T00:00Z"]) == 0
    path = str(_pipeline(tmp_path, replay_table, overrides=FAST, margin=0.5))
    assert main(["retrain", "--pipeline", path, "--now", "2021-01-30T00:00Z"]) == 0
    registry = Registry(pl.load(path).registry)
    assert registry.aliases() == {"champion": "1", "challenger": "2"}
    tags = registry.version_tags("2")
    assert tags["gate.decision"] == "rejected by gate"
    assert "rejected by gate" in tags["gate.reason"] and float(tags["gate.ratio"]) > 0.5
    assert {"gate.crps.champion.tp", "gate.crps.challenger.tp"} <= set(tags)
    assert registry.history() == ["1"]


def test_retrain_errors_are_one_line(tmp_path, tmp_path_factory, replay_table, capsys):
    path = str(write_registry_pipeline(tmp_path))
    assert main(["retrain", "--pipeline", path]) == 2
    assert "retrain: block" in capsys.readouterr().err
    registry_db(tmp_path_factory, tmp_path)
    path = str(_pipeline(tmp_path, replay_table))
    assert main(["retrain", "--pipeline", path, "--now", "2030-01-01T00Z"]) == 1
    assert "no rows in the" in capsys.readouterr().err
    assert main(["retrain", "--pipeline", path, "--now", "soon"]) == 2
