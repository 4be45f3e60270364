"""Data-parallel training over several devices and over several processes (jax.distributed).

The slow tests train the tiny config three ways, each in its own Python process on CPU:
one device, two (forced) devices in one process, and two processes of one device each that
meet on 127.0.0.1. Two devices must match one device to float tolerance; two processes must
give the very same parameters as one process with two devices.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from probcast.model.artefact import load
from probcast.model.integrity import RUN_FILES
from probcast.testing.stations import station_table
from probcast.train import distributed
from probcast.train.cli import main
from probcast.train.distributed import Cluster, DistributedError, split_args

TIMEOUT_S = 150  # one training subprocess (about 20 s alone on a 2-core machine)
ARGS = ["--config=tiny", "--config.train.epochs=2", "--config.train.n_seeds=2"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(devices: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_")}
    env.pop("JOB_COMPLETION_INDEX", None)
    return {
        **env,
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
        "JAX_PLATFORMS": "cpu",
        "PROBCAST_QUIET": "1",
    }


def _start(args: list[str], devices: int = 1) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "probcast.cli", "train", *args]
    return subprocess.Popen(
        cmd, env=_env(devices), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(proc: subprocess.Popen, timeout: float = TIMEOUT_S) -> tuple[int, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"training process hung (> {timeout} s):\n{err[-3000:]}")
    return proc.returncode, out + err


def _train(tmp: Path, name: str, devices: int, table: Path) -> Path:
    workdir = tmp / name
    code, log = _finish(
        _start([*ARGS, f"--workdir={workdir}", f"--config.data.path={table}"], devices)
    )
    assert code == 0, log[-3000:]
    return workdir


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The table and the one- and two-device single-process models."""
    tmp = tmp_path_factory.mktemp("distributed")
    table = tmp / "table.parquet"
    station_table(n_stations=3, n_inits=12).to_parquet(table)
    return tmp, table, _train(tmp, "one", 1, table), _train(tmp, "two", 2, table)


def _leaves(workdir: Path) -> list[np.ndarray]:
    return [np.asarray(a) for a in jax.tree.leaves(load(workdir)._states)]


def _history(workdir: Path, seed: int, sub: str = "selection") -> list[dict]:
    return json.loads((workdir / sub / f"seed_{seed}" / "history.json").read_text())


def _run_file(workdir: Path, name: str) -> object:
    value = json.loads((workdir / name).read_text())
    if name == "summary.json":  # wall-clock times differ from run to run
        for seed in value["seeds"]:
            seed.pop("wall_s")
        value.pop("elapsed_s", None)  # the whole training's (probcast cost reads it)
    return value


# ---------------------------------------------------------------- fast: the cluster's description


def test_cluster_from_flags_and_environment():
    argv = ["--config=tiny", "--coordinator", "h0:8476", "--num-processes=4", "--workdir=w"]
    cluster, rest = split_args([*argv, "--process-id=3"], {})
    assert cluster == Cluster("h0:8476", 4, 3)
    assert rest == ["--config=tiny", "--workdir=w"] and not cluster.primary
    env = {"JAX_COORDINATOR_ADDRESS": "h0:1", "JAX_NUM_PROCESSES": "2", "JOB_COMPLETION_INDEX": "0"}
    cluster, _ = split_args([], {**env, "PROBCAST_DISTRIBUTED_TIMEOUT": "7"})
    assert cluster == Cluster("h0:1", 2, 0, 7) and cluster.primary
    # flags win over the environment; JAX_PROCESS_ID over the Kubernetes index
    cluster, _ = split_args(["--process-id=1"], {**env, "JAX_PROCESS_ID": "0"})
    assert cluster is not None and cluster.process_id == 1
    assert split_args([], {**env, "JAX_PROCESS_ID": "1"})[0].process_id == 1  # type: ignore[union-attr]
    # a single process, or no coordinator: an ordinary run (an indexed Job of one)
    assert split_args(["--coordinator=h:1", "--num-processes=1"], {})[0] is None
    assert split_args(["--workdir=w"], {"JOB_COMPLETION_INDEX": "3"}) == (None, ["--workdir=w"])


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--num-processes=2", "--process-id=5"], {"JAX_COORDINATOR_ADDRESS": "h:1"}, "0..1"),
        (["--coordinator=h:1", "--num-processes=2"], {"JOB_COMPLETION_INDEX": "2"}, "0..1"),
        (["--coordinator=h:1", "--num-processes=2"], {}, "--process-id"),
        (["--coordinator=h:1", "--process-id=0"], {}, "--num-processes"),
        (["--coordinator=h", "--num-processes=2", "--process-id=0"], {}, "HOST:PORT"),
        (["--coordinator=h:99999", "--num-processes=2", "--process-id=0"], {}, "HOST:PORT"),
        (["--coordinator=h:1", "--num-processes=two", "--process-id=0"], {}, "integer >= 1"),
        (["--coordinator=h:1", "--num-processes=2", "--process-id=-1"], {}, "integer >= 0"),
        (["--num-processes=2", "--process-id=1"], {}, "needs --coordinator"),
        (["--coordinator"], {}, "needs a value"),
    ],
)
def test_bad_cluster_descriptions_are_named(argv, env, message):
    with pytest.raises(DistributedError, match=message.replace(".", r"\.")):
        split_args(argv, env)


def test_cli_rejects_a_process_id_out_of_range(tmp_path, capsys):
    args = ["--config=tiny", f"--workdir={tmp_path / 'w'}", "--coordinator=127.0.0.1:9"]
    assert main([*args, "--num-processes=2", "--process-id=2"]) == 2
    err = capsys.readouterr().err
    assert "--process-id=2 is out of range: expected 0..1" in err and "Traceback" not in err
    assert not (tmp_path / "w").exists()
    assert main(["--help"]) == 0
    assert "--num-processes=N" in capsys.readouterr().out


def test_scratch_dir_links_the_shared_checkpoints(tmp_path):
    workdir = tmp_path / "run"
    scratch = distributed.scratch_dir(workdir, 1)
    assert scratch == tmp_path / "run.process-1"
    for _ in range(2):  # idempotent: a resumed run relinks
        distributed.link_checkpoints(scratch, workdir, 2)
    link = scratch / "selection" / "seed_1" / "best"
    assert link.is_symlink() and link.resolve() == (workdir / "selection/seed_1/best").resolve()
    assert (scratch / "seed_0" / "latest").resolve() == (workdir / "seed_0/latest").resolve()


def test_unreachable_coordinator_fails_fast_with_one_clear_line(tmp_path):
    port = _free_port()  # nobody listens there
    args = [*ARGS, f"--workdir={tmp_path / 'w'}", "--config.data.path=x.parquet"]
    args += [f"--coordinator=127.0.0.1:{port}", "--num-processes=2", "--process-id=1"]
    start = time.monotonic()
    code, log = _finish(_start([*args, "--distributed-timeout=2"]), timeout=60)
    assert code == 1, log
    assert "coordinator is unreachable" in log and f"127.0.0.1:{port}" in log
    assert "stack trace" not in log and "Traceback" not in log
    assert time.monotonic() - start < 45
    assert not (tmp_path / "w").exists()


# ---------------------------------------------------------------- slow: real trainings


@pytest.mark.slow
def test_two_devices_match_one_device(runs):
    _, _, one, two = runs
    for seed in (0, 1):
        h1, h2 = _history(one, seed), _history(two, seed)
        assert len(h1) == len(h2) == 2
        for a, b in zip(h1, h2, strict=True):
            for key in ("train_loss", "val_loss", "val_crps_t2m", "val_crps_tp"):
                assert a[key] == pytest.approx(b[key], rel=1e-5), key
    for a, b in zip(_leaves(one), _leaves(two), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_two_processes_give_the_artefact_of_one_process_with_two_devices(runs):
    tmp, table, _, two = runs
    workdir = tmp / "multi"
    coordinator = f"127.0.0.1:{_free_port()}"
    common = [*ARGS, f"--workdir={workdir}", f"--config.data.path={table}"]
    common += [f"--coordinator={coordinator}", "--num-processes=2", "--distributed-timeout=60"]
    procs = [_start([*common, f"--process-id={i}"]) for i in range(2)]
    (code0, log0), (code1, log1) = (_finish(p) for p in procs)
    assert code0 == 0, log0[-3000:]
    assert code1 == 0, log1[-3000:]
    assert "devices 2" in log0 and f"model written to {workdir}" in log0
    assert "model written" not in log1 and " epoch " not in log1  # only process 0 reports
    # the artefact: the same files (wall-clock times aside) and bit-identical parameters
    for name in RUN_FILES:
        if (two / name).exists():
            assert _run_file(workdir, name) == _run_file(two, name), name
    for a, b in zip(_leaves(workdir), _leaves(two), strict=True):
        np.testing.assert_array_equal(a, b)
    rows = station_table(n_stations=3, n_inits=12).iloc[:30]
    got, want = load(workdir).params(rows), load(two).params(rows)
    for var, params in want.items():
        for name, value in params.items():
            np.testing.assert_array_equal(got[var][name], value)
    # process 1 wrote into its own folder, whose checkpoints are the shared ones
    scratch = distributed.scratch_dir(workdir, 1)
    assert (scratch / "seed_1" / "best").resolve() == (workdir / "seed_1" / "best").resolve()
