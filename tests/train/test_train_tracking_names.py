"""Names of tracked runs: ``<data>-<config>-<UTC time>`` unless ``tracking.run_name`` is set."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import ml_collections
import pytest

from probcast.testing.stations import station_table
from probcast.train import cli, tracking

STAMP = datetime(2026, 3, 4, 5, 6, 59, tzinfo=UTC)


@pytest.mark.parametrize(
    ("path", "label"),
    [
        ("pnw-t2m", "pnw-t2m"),  # a registry dataset id
        ("tables/mine/train.parquet", "mine-train"),  # generic stem: folder in front
        ("/data/norway_2016.csv", "norway_2016"),
        ("", "data"),
    ],
)
def test_data_label(path, label):
    assert tracking.data_label(path) == label


def test_default_run_name_is_utc_and_minute_resolution():
    assert tracking.default_run_name("pnw-t2m", "tiny", STAMP) == "pnw-t2m-tiny-20260304T0506"
    local = STAMP.astimezone(timezone(timedelta(hours=-5)))
    assert tracking.default_run_name("x.csv", "", local) == "x-20260304T0506"


def _runs(uri):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("probcast")
    return client.search_runs([exp.experiment_id])


@pytest.mark.slow  # a training and a new MLflow store (~1 min on a shared 2-core machine)
def test_probcast_train_names_the_mlflow_run(tmp_path):
    table = tmp_path / "mine" / "train.parquet"
    table.parent.mkdir()
    station_table(n_stations=2, n_inits=12).to_parquet(table)
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"  # the default store: one local SQLite file
    before = datetime.now(UTC).replace(second=0, microsecond=0)
    code = cli.main(
        [
            "--config=tiny",
            f"--workdir={tmp_path / 'run'}",
            f"--config.data.path={table}",
            "--config.train.epochs=1",
            "--config.train.refit=False",
            "--config.tracking.backend=mlflow",  # no uri: <workdir>/../mlruns.db
        ]
    )
    assert code == 0
    (run,) = _runs(uri)
    name = run.info.run_name
    assert re.fullmatch(r"mine-train-tiny-\d{8}T\d{4}", name), name
    when = datetime.strptime(name[-13:], "%Y%m%dT%H%M").replace(tzinfo=UTC)
    assert before <= when <= datetime.now(UTC)
    assert run.data.metrics  # the same run got the epochs' metrics


def test_configured_run_name_wins(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    config = ml_collections.ConfigDict(
        {"backend": "mlflow", "uri": uri, "experiment": "probcast", "run_name": "my-run"}
    )
    workdir = tmp_path / "run"
    workdir.mkdir()
    tracker = tracking.make_tracker(config, workdir, {}, default_name="pnw-t2m-tiny-20260304T0506")
    tracker.end()
    config.run_name = ""
    other = tmp_path / "other"
    other.mkdir()
    tracking.make_tracker(config, other, {}, default_name="pnw-t2m-tiny-20260304T0506").end()
    assert sorted(r.info.run_name for r in _runs(uri)) == ["my-run", "pnw-t2m-tiny-20260304T0506"]
