"""Fixtures of the operational tests: a tiny trained model, a pipeline folder, PostgreSQL."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from opshelp import SPLIT

from probcast.testing.stations import station_table

PG_BIN = Path("/usr/lib/postgresql")


@pytest.fixture(scope="session")
def stations() -> pd.DataFrame:
    return station_table(n_stations=3, n_inits=16)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory, stations) -> Path:
    from probcast.cli import main

    root = tmp_path_factory.mktemp("opsmodel")
    stations[stations.init_time < SPLIT].to_csv(root / "train.csv", index=False)
    rc = main(
        [
            "train",
            "--config=tiny",
            f"--workdir={root / 'model'}",
            f"--config.data.path={root / 'train.csv'}",
            "--config.data.val_fraction=0.3",
            "--config.train.epochs=1",
            "--config.train.n_seeds=1",
            "--config.tracking.backend=none",
            "--config.data.periods=tp:6",  # a CSV records none: the config states it
        ]
    )
    assert rc == 0
    return root / "model"


# -- PostgreSQL: a throwaway cluster on 127.0.0.1, skipped when the binaries are absent ------


def _pg_bindir() -> Path | None:
    for version in sorted(PG_BIN.glob("*"), reverse=True):
        if (version / "bin" / "initdb").exists() and (version / "bin" / "pg_ctl").exists():
            return version / "bin"
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of a fresh PostgreSQL cluster (initdb + pg_ctl, trust auth, loopback only)."""
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg not installed")
    # not under pytest's tmp folder: its parents are private to root, and the server runs
    # as the postgres user when the tests run as root
    root = Path(tempfile.mkdtemp(prefix="probcast-pg-"))
    data = root / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root: run the cluster as the postgres user
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser")
        shutil.chown(root, "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    init = subprocess.run(
        [*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "probcast", "-A", "trust"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if init.returncode:
        pytest.skip(f"initdb failed: {init.stderr[-500:]}")
    opts = f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off"
    start = subprocess.run(
        [
            *prefix,
            str(bindir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            opts,
            "-l",
            str(root / "log"),
            "-w",
            "-t",
            "60",
            "start",
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    if start.returncode:
        pytest.fail(f"pg_ctl start failed: {start.stderr[-500:]}")
    url = f"postgresql+psycopg://probcast@127.0.0.1:{port}/postgres"
    yield url
    subprocess.run(
        [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"],
        capture_output=True,
        timeout=60,
    )
    shutil.rmtree(root, ignore_errors=True)
