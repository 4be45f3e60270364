"""Audit of the operational commands: bad files and arguments are refused up front (exit 2).

Every value of a pipeline file is checked at load (naming the file, the key, what was given
and what was expected); options that would disable themselves or bind elsewhere are refused
before anything starts; a runtime failure is exit status 1; never a traceback.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time

import pytest
import yaml
from opshelp import PYTHON, write_pipeline
from registryhelp import write_registry_pipeline

from probcast.cli import main
from probcast.ops import pipeline as pl
from probcast.ops.broker import BrokerConfig, BrokerError
from probcast.ops.consume import consume
from probcast.ops.state import StateStore
from probcast.ops.watch import watch


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _one_line_error(err: str, *parts: str) -> None:
    """A user mistake: one error line naming ``parts``, no traceback, no raw Python text."""
    assert "Traceback" not in err and "unexpected error" not in err, err
    last = err.strip().splitlines()[-1]
    for part in parts:
        assert part in last, (part, err)


# -- 2. the pipeline file: every block's keys and values at load ------------------------------


@pytest.mark.parametrize(
    ("change", "parts"),
    [
        ({"complete": {"rule": "marker", "sufix": ".ok"}}, ["complete", "'sufix'", "suffix"]),
        ({"complete": {"settle_seconds": "abc"}}, ["complete.settle_seconds", "'abc'"]),
        ({"lease_seconds": -5}, ["lease_seconds", "> 0", "-5"]),
        ({"every_hours": "abc"}, ["every_hours", "whole number >= 1", "'abc'"]),
        ({"products": {"members": "abc"}}, ["products.members", "whole number", "'abc'"]),
        ({"products": {"members": -3}}, ["products.members", ">= 0", "-3"]),
        ({"products": {"members": 2, "output": "pred.txt"}}, ["products.output", ".parquet"]),
        ({"products": {"quantiles": ["abc"]}}, ["products.quantiles[0]", "'abc'"]),
        ({"products": {"quantiles": [0.5, 1.5]}}, ["products", "(0, 1)", "1.5"]),
        ({"products": {"thresholds": {"tp": "abc"}}}, ["products.thresholds.tp", "'abc'"]),
        ({"products": {"combine": "median"}}, ["products", "median"]),
        ({"products": {"params": "yes"}}, ["products.params", "true or false"]),
        ({"layout": "{cycle:%Y}/{nme}"}, ["layout", "{nme}"]),
        ({"destinations": [{"url": "out", "anon": True}]}, ["destinations[0]", "'anon'"]),
        ({"state": "notaurl"}, ["state", "'notaurl'", "sqlite:///"]),
        ({"schedule": {"crn": "30 5 * * *"}}, ["schedule", "'crn'"]),
        ({"broker": {"ur": "x"}}, ["broker", "'ur'"]),
        ({"broker": {"url": "redis://h", "max_tries": 0}}, ["broker.max_tries", ">= 1"]),
        ({"metrics": {"fil": "m.prom"}}, ["metrics", "'fil'", "file"]),
        ({"name": ["a"]}, ["name", "string"]),
        ({"work": {"a": 1}}, ["work", "string"]),
    ],
)
def test_bad_values_are_refused_at_load_naming_file_key_and_value(tmp_path, change, parts):
    # audit: these passed load() (run --status exited 0) and failed every cycle later
    path = write_pipeline(tmp_path, tmp_path / "model", **change)
    with pytest.raises(pl.PipelineError) as err:
        pl.load(path)
    message = str(err.value)
    assert message.startswith("ops.yaml: ") and "\n" not in message
    for part in parts:
        assert part in message, (part, message)


def test_cli_exits_2_for_a_bad_pipeline_file(tmp_path, capsys):
    path = write_pipeline(tmp_path, tmp_path / "model", products={"members": "abc"})
    for command in (["run", "--cycle", "2026-11-29T00Z"], ["run", "--status", "--cycle", "x"]):
        assert main([command[0], "--pipeline", str(path), *command[1:]]) == 2
        _one_line_error(capsys.readouterr().err, "ops.yaml: products.members", "'abc'")
    path = write_pipeline(tmp_path, tmp_path / "model", complete={"sufix": ".ok"})
    assert main(["run", "--pipeline", str(path), "--status", "--cycle", "2026-11-29T00Z"]) == 2
    _one_line_error(capsys.readouterr().err, "unknown keys ['sufix']")


def test_a_good_file_keeps_its_values(tmp_path):
    path = write_pipeline(
        tmp_path,
        tmp_path / "model",
        products={"members": "4", "quantiles": [0.1, 0.9], "thresholds": {"tp": [1]}},
        every_hours="6",
        complete={"rule": "marker", "suffix": ".ok"},
    )
    pipe = pl.load(path)
    assert pipe.request == {"members": 4, "quantiles": (0.1, 0.9), "thresholds": {"tp": (1.0,)}}
    assert (pipe.every_hours, pipe.marker_suffix, pipe.lease_seconds) == (6, ".ok", 600.0)


def test_a_missing_model_is_refused_before_any_cycle(tmp_path, capsys):
    # audit: FileNotFoundError ... runs/nonexist/config.json at the predict step, exit 1
    path = write_pipeline(tmp_path, tmp_path / "nonexist")
    assert pl.load(path).model == tmp_path / "nonexist"  # reading the file needs no model
    with pytest.raises(pl.PipelineError, match=r"ops.yaml: model: .*nonexist does not exist"):
        pl.load(path, require_model=True)
    assert main(["run", "--pipeline", str(path), "--cycle", "2026-11-29T00Z"]) == 2
    _one_line_error(capsys.readouterr().err, "nonexist does not exist")
    assert main(["run", "--pipeline", str(path), "--status", "--cycle", "2026-11-29T00Z"]) == 0
    capsys.readouterr()
    (tmp_path / "folder").mkdir()
    path = write_pipeline(tmp_path, tmp_path / "folder")
    with pytest.raises(pl.PipelineError, match="not the work directory of a trained model"):
        pl.load(path, require_model=True)


def test_unreadable_pipeline_files_exit_2_naming_the_file(tmp_path, capsys):
    (tmp_path / "adir").mkdir()
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"model: \xac\xed\x00\x05")
    (tmp_path / "empty.yaml").write_text("")
    for name, part in [
        ("adir", "is a folder"),
        ("bin.yaml", "not a text (UTF-8) file"),
        ("empty.yaml", "a pipeline file is a mapping"),
        ("nothere.yaml", "pipeline file not found"),
    ]:
        path = str(tmp_path / name)
        assert main(["run", "--pipeline", path, "--cycle", "2026-11-29T00Z"]) == 2, name
        _one_line_error(capsys.readouterr().err, name, part)


# -- 3. --state ---------------------------------------------------------------------------------


@pytest.mark.parametrize("url", ["notaurl", "nosuchdb://x/y"])
def test_a_bad_state_url_is_one_line_naming_the_option(tmp_path, capsys, url):
    path = str(write_pipeline(tmp_path, tmp_path / "model"))
    args = ["--pipeline", path, "--cycle", "2026-11-29T00Z", "--status", "--state", url]
    assert main(["run", *args]) == 2
    _one_line_error(capsys.readouterr().err, "argument --state", repr(url))


# -- 4. watch: limits that disable themselves ---------------------------------------------------


@pytest.mark.parametrize(
    "option",
    [
        ["--timeout", "nan"],
        ["--timeout", "0"],
        ["--interval", "-1"],
        ["--interval", "nan"],
        ["--interval", "1e12"],
        ["--max-cycles", "-1"],
        ["--retries", "-1"],
        ["--retries", "0"],
    ],
)
def test_watch_refuses_limits_that_disable_themselves(tmp_path, capsys, option):
    path = str(write_pipeline(tmp_path, tmp_path / "model"))
    assert main(["watch", "--pipeline", path, *option]) == 2
    _one_line_error(capsys.readouterr().err, f"argument {option[0]}", repr(option[1]))


def test_watch_function_refuses_them_too(tmp_path):
    pipe = pl.load(write_pipeline(tmp_path, tmp_path / "model"))
    store = StateStore(pipe.state, pipe.name)
    try:
        for limits in (
            {"timeout": float("nan")},
            {"interval": -1.0},
            {"interval": float("nan")},
            {"max_cycles": -1},
            {"retries": -1},
        ):
            with pytest.raises(ValueError):
                watch(pipe, store, **{"timeout": 0.1, **limits})
    finally:
        store.close()


# -- 1. serve: the port, the host, the log level, the defaults in the help ----------------------


@pytest.mark.parametrize(
    ("option", "part"),
    [
        (["--port", "99999"], "argument --port"),
        (["--port", "-1"], "argument --port"),
        (["--port", "0"], "argument --port"),
        (["--host", "256.1.1.1"], "argument --host"),
        (["--host", "bad host"], "argument --host"),
        (["--log-level", "loud"], "argument --log-level"),
        (["--max-points", "0"], "argument --max-points"),
        (["--max-distance-km", "nan"], "argument --max-distance-km"),
    ],
)
def test_serve_refuses_bad_options_before_starting(tmp_path, capsys, option, part):
    # audit: --port 99999 listened on 34463 and logged 99999; -1 and 256.1.1.1 exited 3
    path = str(write_pipeline(tmp_path, tmp_path / "model"))
    assert main(["serve", "--pipeline", path, *option]) == 2
    _one_line_error(capsys.readouterr().err, part)


def test_serve_help_shows_the_defaults(capsys):
    assert main(["serve", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    for text in (
        "(default: 127.0.0.1",
        "(default: 8000)",
        "(default: 10000)",
        "(default: warning)",
        "{critical,error,warning,info,debug,trace}",
    ):
        assert text in out, text


def test_serve_on_a_taken_port_exits_1(tmp_path, model_dir):
    # a subprocess: uvicorn's logging takes the stderr it finds (not pytest's capture)
    path = str(write_pipeline(tmp_path, model_dir))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        args = ["serve", "--pipeline", path, "--port", port, "--log-level", "critical"]
        proc = subprocess.run(
            [PYTHON, "-m", "probcast.ops.cli", *args], capture_output=True, text=True, timeout=120
        )
    assert proc.returncode == 1, proc.stderr
    _one_line_error(proc.stderr, f"cannot listen on 127.0.0.1:{port}")


def test_serve_refuses_a_missing_model(tmp_path, capsys):
    path = str(write_pipeline(tmp_path, tmp_path / "nonexist"))
    assert main(["serve", "--pipeline", path]) == 2
    _one_line_error(capsys.readouterr().err, "model:", "does not exist")


# -- 5. consume: --timeout bounds the retries of an unreachable broker --------------------------


class _DownBroker:
    config = BrokerConfig(url="redis://127.0.0.1:1/0")

    def __init__(self) -> None:
        self.calls = 0

    def receive(self, timeout: float) -> None:
        self.calls += 1
        raise BrokerError("redis XREADGROUP failed: connection refused")


def test_consume_timeout_bounds_the_reconnect_loop(tmp_path):
    pipe = pl.load(write_pipeline(tmp_path, tmp_path / "model"))
    broker = _DownBroker()
    start = time.monotonic()
    with pytest.raises(BrokerError):
        consume(pipe, None, broker, timeout=1.0, stop=threading.Event())  # type: ignore[arg-type]
    assert time.monotonic() - start < 5  # was 60 s of retries whatever the timeout
    assert broker.calls >= 2


def test_consume_cli_with_unreachable_redis_ends_at_its_timeout(tmp_path, capsys, model_dir):
    # audit: --timeout 2 retried the consumer group creation for 66 s before exit 1
    pytest.importorskip("redis")
    path = str(write_pipeline(tmp_path, model_dir))
    url = f"redis://127.0.0.1:{_free_port()}/0"
    start = time.monotonic()
    assert main(["consume", "--pipeline", path, "--url", url, "--timeout", "2"]) == 1
    assert time.monotonic() - start < 25
    _one_line_error(capsys.readouterr().err, "probcast consume: error:")
    assert main(["consume", "--pipeline", path, "--url", url, "--timeout", "nan"]) == 2
    _one_line_error(capsys.readouterr().err, "argument --timeout")


# -- 6. retrain: a bad config or override is a bad pipeline file ------------------------------


@pytest.mark.parametrize(
    ("retrain", "part"),
    [
        ({"overrides": {"train.epoch": 1}}, "retrain.overrides: 'train.epoch' is not a config"),
        ({"overrides": {"train.epochs": "many"}}, "train.epochs must be a int, got 'many'"),
        ({"overrides": {"nosection.x": 1}}, "'nosection.x' is not a config field"),
        ({"config": "nosuchconfig"}, "retrain.config: 'nosuchconfig' cannot be loaded"),
    ],
)
def test_retrain_exits_2_for_a_bad_config_or_override(tmp_path, capsys, retrain, part):
    block = {"config": "tiny", "table": "t.parquet", **retrain}
    path = str(write_registry_pipeline(tmp_path, retrain=block))
    with pytest.raises(pl.PipelineError, match=r"ops\.yaml: retrain"):
        pl.load(path)
    assert main(["retrain", "--pipeline", path]) == 2
    _one_line_error(capsys.readouterr().err, part)


def test_a_config_file_that_raises_is_a_bad_pipeline_file(tmp_path):
    (tmp_path / "cfg.py").write_text("def get_config():\n    raise RuntimeError('boom')\n")
    block = {"config": "cfg.py", "table": "t.parquet"}
    path = write_registry_pipeline(tmp_path, retrain=block)
    with pytest.raises(pl.PipelineError, match=r"retrain.config: .*cfg.py.*RuntimeError: boom"):
        pl.load(path)


# -- 7. help without RST markup ------------------------------------------------------------------


@pytest.mark.parametrize("command", ["model", "retrain"])
def test_help_has_no_rst_markup(capsys, command):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert f"probcast {command}:" in out
    assert "``" not in out and ":mod:" not in out


# -- 8. model register of something that is not a model --------------------------------------


def test_register_names_a_missing_folder_or_a_file(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    (tmp_path / "table.parquet").write_bytes(b"PAR1")
    (tmp_path / "empty").mkdir()
    for target, part in [
        ("nonexist", "does not exist"),
        ("table.parquet", "is a file, not the work directory of a trained model"),
        ("empty", "not the work directory of a trained model (no config.json"),
    ]:
        args = ["model", "register", str(tmp_path / target), "--name", "st", "--uri", uri]
        assert main(args) == 2, target
        err = capsys.readouterr().err
        _one_line_error(err, target, part)
        assert "incomplete model" not in err and "interrupted" not in err
    assert not (tmp_path / "mlruns.db").exists()


def _edited(tmp_path, **change):
    path = write_pipeline(tmp_path, tmp_path / "model")
    data = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**data, **change}))
    return path


def test_yaml_numbers_as_text_are_still_read(tmp_path):
    """A value that YAML read as text but is a number (``"900"``) is accepted, as before."""
    assert pl.load(_edited(tmp_path, lease_seconds="900")).lease_seconds == 900.0
    with pytest.raises(pl.PipelineError, match=r"ops.yaml: model: expected a non-empty string"):
        pl.load(_edited(tmp_path, model=["a"]))


@pytest.mark.parametrize("command", ["serve", "run"])
def test_an_unreachable_state_database_is_one_line(tmp_path, model_dir, capsys, command):
    # audit: serve against a PostgreSQL that is down exited with "unexpected error
    # (OperationalError) ... please report it"; the password must never be shown
    path = str(write_pipeline(tmp_path, model_dir))
    url = "postgresql+psycopg://probcast:secret@127.0.0.1:1/probcast"
    args = [command, "--pipeline", path, "--state", url]
    assert (
        main([*args, *(["--status", "--cycle", "2026-01-01T00Z"] if command == "run" else [])]) == 1
    )
    err = capsys.readouterr().err
    _one_line_error(err, "state store postgresql+psycopg://probcast:***@127.0.0.1:1/probcast")
    assert "cannot connect" in err and "secret" not in err and "unexpected" not in err
