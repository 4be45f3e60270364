"""The retraining gate never scores a champion on its own training rows (audit), and the
registry never moves an alias onto a damaged version."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from registryhelp import registry_db, write_registry_pipeline

from probcast.cli import main
from probcast.model.domain import load_domain
from probcast.ops import pipeline as pl
from probcast.ops.registry import Registry, RegistryError
from probcast.ops.retrain import RetrainError, build_config
from probcast.ops.retrain_spec import parse_retrain
from probcast.testing.stations import station_table

FAST = {"train.epochs": 1, "train.n_seeds": 1, "train.refit": False}


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    """30 daily cycles of 3 stations (2021-01-01 .. 2021-01-30), observed."""
    path = tmp_path_factory.mktemp("gate-data") / "table.parquet"
    station_table(n_stations=3, n_inits=30).to_parquet(path, index=False)
    return path


def _hand_trained(root: Path, table: Path, until: str) -> Path:
    """A model trained by hand on the table's runs before ``until`` (all observations)."""
    rows = pd.read_parquet(table)
    part = root / "hand.parquet"
    rows[rows.init_time < pd.Timestamp(until, tz="UTC")].to_parquet(part, index=False)
    workdir = root / "hand"
    args = ["train", "--config=tiny", f"--workdir={workdir}", f"--config.data.path={part}"]
    args += ["--config.train.epochs=1", "--config.train.n_seeds=1", "--config.train.refit=False"]
    assert main([*args, "--config.tracking.backend=none"]) == 0
    return workdir


def _pipeline(root: Path, table: Path, **retrain) -> str:
    block = {"config": "tiny", "table": str(table), "window_days": 20, "holdout_days": 6}
    return str(write_registry_pipeline(root, retrain={**block, "overrides": FAST, **retrain}))


def test_training_records_its_last_valid_time(tmp_path, table):
    workdir = _hand_trained(tmp_path, table, "2021-01-20")
    domain = load_domain(workdir)
    rows = pd.read_parquet(tmp_path / "hand.parquet")
    assert domain is not None and domain.valid_until == rows.valid_time.max()


def test_a_champion_trained_on_the_held_back_period_is_not_gated_on_it(
    tmp_path, tmp_path_factory, table, capsys
):
    # audit: a champion trained by hand on the whole table was scored on its own training
    # rows (in-sample) and the challenger rejected against that score
    registry_db(tmp_path_factory, tmp_path)
    path = _pipeline(tmp_path, table)
    champion = _hand_trained(tmp_path, table, "2021-02-01")  # every row
    assert main(["model", "register", str(champion), "--pipeline", path, "--promote"]) == 0
    capsys.readouterr()
    assert main(["retrain", "--pipeline", path, "--now", "2021-01-31T00:00Z"]) == 1
    err = capsys.readouterr().err
    last = pd.read_parquet(table).valid_time.max()
    assert "no held-back row is new to it" in err and f"{last:%Y-%m-%dT%H:%MZ}" in err
    assert not (tmp_path / "retrain" / "20210131T0000Z" / "model").exists()  # before training


def test_the_gate_scores_only_rows_after_the_champions_training(
    tmp_path, tmp_path_factory, table, capsys
):
    registry_db(tmp_path_factory, tmp_path)
    path = _pipeline(tmp_path, table, margin=0.0)
    champion = _hand_trained(tmp_path, table, "2021-01-27")  # runs to 01-26, held from 01-25
    assert main(["model", "register", str(champion), "--pipeline", path, "--promote"]) == 0
    assert main(["retrain", "--pipeline", path, "--now", "2021-01-31T00:00Z"]) in (0,)
    tags = Registry(pl.load(path).registry).version_tags("2")
    held, scored = int(tags["retrain.holdout_rows"]), int(tags["retrain.scored_rows"])
    assert 0 < scored < held  # the held-back runs' rows the champion had observed are out


def test_overrides_and_variables_are_checked_before_training(tmp_path, tmp_path_factory, table):
    # audit: train.epochs 0.5 became 0 and failed as "list index out of range"; an
    # unknown gate variable failed only after the whole training
    spec = parse_retrain(
        {"config": "tiny", "table": "t", "overrides": {"train.epochs": 0.5}}, tmp_path
    )
    with pytest.raises(RetrainError, match=r"train.epochs must be a int, got 0.5"):
        build_config(spec, tmp_path / "t.parquet", "sqlite:///x.db")
    registry_db(tmp_path_factory, tmp_path)
    path = _pipeline(tmp_path, table, variables=["ws10"])
    assert main(["retrain", "--pipeline", path, "--now", "2021-01-28T00:00Z"]) == 1
    assert not (tmp_path / "retrain" / "20210128T0000Z" / "model").exists()


def test_promote_and_rollback_refuse_a_damaged_version(tmp_path, tmp_path_factory, model_dir):
    # audit: promote moved the champion alias onto a modified version; every cycle failed
    from probcast.model import integrity

    registry_db(tmp_path_factory, tmp_path)
    pipe = pl.load(write_registry_pipeline(tmp_path))
    registry = Registry(pipe.registry)
    other = tmp_path / "other"  # a second model with other content (another folder)
    shutil.copytree(model_dir, other)
    for p in other.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    meta = json.loads((other / "meta.json").read_text())
    (other / "meta.json").write_text(json.dumps({**meta, "note": "another"}))
    integrity.write_marker(other)
    assert (registry.register(model_dir), registry.register(other)) == ("1", "2")
    registry.promote("1")
    registry.promote("2")
    first = Path(registry.versions()[0]["source"])
    if registry.versions()[0]["version"] != "1":
        first = Path(registry.versions()[1]["source"])
    marker = first / "COMPLETE.json"
    marker.chmod(0o644)
    marker.write_text(marker.read_text() + "\n")
    with pytest.raises(RegistryError, match="differs from the registered"):
        registry.rollback("to a damaged version")
    with pytest.raises(RegistryError, match="differs from the registered"):
        registry.promote("1")
    assert registry.aliases()["champion"] == "2" and registry.resolve().version == "2"
