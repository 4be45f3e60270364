"""Configs, the train command's flags and experiment tracking."""

from __future__ import annotations

import json

import pytest

from probcast import configs
from probcast.configs import default, gpu_bf16, tiny
from probcast.train import tracking
from probcast.train.cli import main


def test_bundled_configs_override_default():
    base = default.get_config()
    assert {"data", "features", "model", "train", "tracking"} <= set(base)
    assert "predict" not in base  # request-time options live in PredictRequest
    assert tiny.get_config().model.hidden < base.model.hidden
    assert gpu_bf16.get_config().train.compute_dtype == "bfloat16"
    for name in configs.available():
        cfg = configs.resolve(name)
        assert cfg.endswith(f"{name}.py")
    assert configs.resolve("tiny:arg").endswith("tiny.py:arg")
    with pytest.raises(FileNotFoundError, match="bundled"):
        configs.resolve("no_such_config")


def test_cli_usage_errors(tmp_path, capsys):
    assert main(["--help"]) == 0
    assert main(["--config=tiny"]) == 2  # no workdir
    assert main(["--config=tiny", f"--workdir={tmp_path}", "--config.model.nope=1"]) == 2
    assert main(["--config=tiny", f"--workdir={tmp_path}"]) == 1  # no data path
    assert "config.data.path" in capsys.readouterr().err


def test_flatten_config():
    flat = tracking.flatten(tiny.get_config().to_dict())
    assert flat["train.batch_size"] == 64 and flat["tracking.backend"] == "none"


def test_unknown_tracking_backend(tmp_path):
    cfg = tiny.get_config().tracking
    cfg.backend = "tensorboard"
    with pytest.raises(ValueError, match="mlflow"):
        tracking.make_tracker(cfg, tmp_path, {})


@pytest.mark.slow
def test_mlflow_sqlite_run_is_resumed(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    cfg = tiny.get_config().tracking
    cfg.backend = "mlflow"
    workdir = tmp_path / "run"
    workdir.mkdir()
    tracker = tracking.make_tracker(cfg, workdir, {"git_commit": "abc"})
    tracker.log_params({"train.lr": 0.1})
    tracker.log_metrics({"val_crps_tp": 0.5}, step=1)
    (workdir / "meta.json").write_text("{}")
    tracker.log_artifact(workdir / "meta.json")
    tracker.end("FAILED")
    again = tracking.make_tracker(cfg, workdir, {"git_commit": "abc"})  # resumed run
    again.log_params({"train.lr": 0.1})
    again.log_metrics({"val_crps_tp": 0.4}, step=2)
    again.end()
    state = json.loads((workdir / "tracking.json").read_text())
    assert state["uri"] == f"sqlite:///{tmp_path / 'mlruns.db'}"
    client = mlflow.MlflowClient(tracking_uri=state["uri"])
    run = client.get_run(state["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["git_commit"] == "abc"
    assert run.data.params["train.lr"] == "0.1"
    history = client.get_metric_history(run.info.run_id, "val_crps_tp")
    assert [(m.step, m.value) for m in history] == [(1, 0.5), (2, 0.4)]
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["meta.json"]
