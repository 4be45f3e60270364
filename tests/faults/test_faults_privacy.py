"""Privacy: no network call the user did not ask for; no credentials in files or logs."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import types
from typing import ClassVar

import pytest

from probcast.configs import tiny
from probcast.features import FeatureSpec
from probcast.model import artefact
from probcast.model.integrity import redact, redact_tree
from probcast.testing.stations import station_table
from probcast.train import tracking

SECRET_URIS = [
    (
        "postgresql://user:secret@db.example.org/mlflow",
        "postgresql://user:***@db.example.org/mlflow",
    ),
    ("https://user:tok3n@mlflow.example.org:443/", "https://user:***@mlflow.example.org:443/"),
    ("https://ghp_abc123@example.org/x", "https://***@example.org/x"),
    ("s3://bucket/k?X-Amz-Signature=abc&part=1", "s3://bucket/k?X-Amz-Signature=***&part=1"),
    ("http://host/x?token=abc#frag", "http://host/x?token=***#frag"),
]


@pytest.mark.parametrize("uri, expected", SECRET_URIS)
def test_credentials_in_uris_are_redacted(uri, expected):
    assert redact(uri) == expected
    assert redact(f"tracking at {uri} now") == f"tracking at {expected} now"


@pytest.mark.parametrize(
    "uri", ["sqlite:////tmp/mlruns.db", "http://127.0.0.1:5000", "file:///a@b/c", "databricks"]
)
def test_uris_without_credentials_are_kept(uri):
    assert redact(uri) == uri


def test_redact_tree_keeps_structure():
    tree = {"a": ["postgresql://u:p@h/d", 3], "b": {"c": None, "d": "x"}}
    assert redact_tree(tree) == {"a": ["postgresql://u:***@h/d", 3], "b": {"c": None, "d": "x"}}


def test_shipped_config_has_no_credentials(tmp_path):
    config = tiny.get_config()
    config.tracking.uri = SECRET_URIS[0][0]
    table = station_table(n_stations=2, n_inits=3)
    spec = FeatureSpec.fit(table, ["t2m"])
    artefact.write_run_files(tmp_path, config, spec, {"t2m": "normal"}, fingerprint="f", source="s")
    text = (tmp_path / "config.json").read_text()
    assert "secret" not in text
    assert json.loads(text)["tracking"]["uri"] == SECRET_URIS[0][1]
    # A resumed run compares with the redacted file: still the same run.
    artefact.write_run_files(tmp_path, config, spec, {"t2m": "normal"}, fingerprint="f", source="s")


def test_telemetry_is_off_unless_the_user_chose(monkeypatch):
    for name in tracking.TELEMETRY_ENV:
        monkeypatch.delenv(name, raising=False)
    tracking.disable_telemetry()
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"
    monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY")
    monkeypatch.setenv("DO_NOT_TRACK", "false")
    tracking.disable_telemetry()
    assert "MLFLOW_DISABLE_TELEMETRY" not in os.environ


class _FakeClient:
    params: ClassVar[list] = []

    def __init__(self, tracking_uri: str) -> None:
        self.uri = tracking_uri

    def get_experiment_by_name(self, name):
        return types.SimpleNamespace(experiment_id="1")

    def create_run(self, exp_id, run_name=None, tags=None):
        return types.SimpleNamespace(info=types.SimpleNamespace(run_id="r1"))

    def get_run(self, run_id):
        return types.SimpleNamespace(data=types.SimpleNamespace(params={}))

    def log_batch(self, run_id, params=(), metrics=()):
        _FakeClient.params.extend(params)


@pytest.mark.slow
def test_tracking_uri_credentials_stay_out_of_logs_and_state(tmp_path, monkeypatch, caplog):
    mlflow = pytest.importorskip("mlflow")
    monkeypatch.setattr(mlflow, "MlflowClient", _FakeClient)
    cfg = tiny.get_config().tracking
    cfg.backend, cfg.uri = "mlflow", SECRET_URIS[1][0]
    with caplog.at_level(logging.INFO, logger="probcast.train.tracking"):
        tracker = tracking.make_tracker(cfg, tmp_path, {})
    tracker.log_params({"tracking.uri": cfg.uri, "train.lr": 0.1})
    assert "tok3n" not in caplog.text and SECRET_URIS[1][1] in caplog.text
    assert "tok3n" not in (tmp_path / "tracking.json").read_text()
    logged = {p.key: p.value for p in _FakeClient.params}
    assert logged == {"tracking.uri": SECRET_URIS[1][1], "train.lr": "0.1"}


SITECUSTOMIZE = textwrap.dedent(
    '''
    """Block and record every non-loopback network attempt of this process."""
    import os
    import socket

    _LOG = os.environ["PROBCAST_NET_LOG"]
    _LOCAL = {"localhost", "127.0.0.1", "::1", "", None}


    def _record(what):
        with open(_LOG, "a") as fh:
            fh.write(what + "\\n")


    _getaddrinfo = socket.getaddrinfo


    def getaddrinfo(host, *args, **kwargs):
        if host not in _LOCAL and not str(host).startswith("127."):
            _record(f"getaddrinfo {host}")
            raise socket.gaierror(f"network blocked by the test: {host}")
        return _getaddrinfo(host, *args, **kwargs)


    _connect = socket.socket.connect


    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else None
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in _LOCAL:
            if not str(host).startswith("127."):
                _record(f"connect {address}")
                raise OSError(f"network blocked by the test: {address}")
        return _connect(self, address)


    socket.getaddrinfo = getaddrinfo
    socket.socket.connect = connect
    '''
)

# Variables that make MLflow believe it runs in CI or a test (telemetry off by itself).
_CI_ENV = ("PYTEST_CURRENT_TEST", "CI", "GITHUB_ACTIONS", "GITLAB_CI", "JENKINS_URL", "TF_BUILD")


@pytest.mark.slow
def test_training_with_mlflow_makes_no_network_call(tmp_path):
    pytest.importorskip("mlflow")
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    log = tmp_path / "net.log"
    path = tmp_path / "table.parquet"
    station_table(n_stations=3, n_inits=8).to_parquet(path)
    drop = {*_CI_ENV, *tracking.TELEMETRY_ENV}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(PYTHONPATH=str(tmp_path / "site"), PROBCAST_NET_LOG=str(log), JAX_PLATFORMS="cpu")
    cmd = [
        sys.executable,
        "-c",
        "import sys; from probcast.cli import main; sys.exit(main())",
        "train",
        "--config=tiny",
        f"--workdir={tmp_path / 'run'}",
        f"--config.data.path={path}",
        "--config.tracking.backend=mlflow",
        "--config.train.refit=false",
    ]
    # The probe itself works: a lookup of a public host is recorded.
    probe = [
        sys.executable,
        "-c",
        "import socket\ntry: socket.getaddrinfo('example.org', 80)\nexcept OSError: pass",
    ]
    subprocess.run(probe, env=env, check=True)
    assert log.read_text() == "getaddrinfo example.org\n"
    log.unlink()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "mlruns.db").exists()
    assert not log.exists(), f"outbound network attempts: {log.read_text()}"
