"""A checkpoint that cannot be written (full disk, file-size limit) is one line, not 320.

Audit: under ``ulimit -f 100`` a training whose network outgrows the limit printed some 320
lines of tracebacks Orbax logged from its background threads, and ended with TensorStore's
``OUT_OF_RANGE: Error writing ... .orbax-checkpoint-tmp/... [os_error_code='27']``, naming a
temporary path and no reason in words.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys

import pytest

from probcast.io import WriteError
from probcast.model.checkpoint import _write_errors
from probcast.testing.stations import station_table


def test_tensorstore_errno_becomes_a_write_error(tmp_path):
    text = (
        'OUT_OF_RANGE: Error writing "heads.tmax.bias.value/0" in OCDBT database at local '
        'file "/x/best/1.orbax-checkpoint-tmp/params/": Failed to write 942093 bytes to '
        "file 7: File too large [os_error_code='27']"
    )
    with pytest.raises(WriteError) as err, _write_errors(tmp_path / "seed_0"):
        raise ValueError(text)
    assert str(err.value) == (
        f"{tmp_path / 'seed_0'}: cannot write: file too large (the file-size limit, "
        "ulimit -f, was reached)"
    )
    with pytest.raises(ValueError, match="other"), _write_errors(tmp_path):
        raise ValueError("other")  # not a write: as it was


def _limit() -> None:
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.setrlimit(resource.RLIMIT_FSIZE, (100 * 1024, hard))


def test_a_training_past_the_file_size_limit_ends_in_one_line(tmp_path):
    table = station_table(n_stations=6, n_inits=60, leads=(6.0, 12.0))
    data = tmp_path / "train.parquet"
    table.to_parquet(data, index=False)
    workdir = tmp_path / "model"
    args = [
        *(sys.executable, "-m", "probcast.cli", "train", "--config=tiny"),
        *(f"--workdir={workdir}", f"--config.data.path={data}"),
        *("--config.model.hidden=512", "--config.model.n_layers=2"),  # ~1 MB of weights
        "--config.model.rows_per_unit=1",  # (not shrunk to the small table)
    ]
    env = {**os.environ, "PROBCAST_QUIET": "1"}
    env.pop("PROBCAST_DEBUG", None)
    done = subprocess.run(
        args, capture_output=True, text=True, env=env, preexec_fn=_limit, timeout=300
    )
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr, done.stderr[:3000]
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("probcast train: error: "), last
    assert "seed_0: cannot write: file too large (the file-size limit" in last, last
    assert "orbax-checkpoint-tmp" not in last and "os_error_code" not in last, last


def test_a_save_that_cannot_fit_is_refused_before_orbax_writes(tmp_path, monkeypatch):
    """Orbax's threads printed 'Event loop is closed' tracebacks after a failed write (1 run
    in 3 under a size limit): a save that cannot fit is refused before it starts."""
    import numpy as np

    from probcast.model import checkpoint

    params = {"w": np.zeros(1 << 18, dtype=np.float32)}  # 1 MiB
    checkpoint._room_for(tmp_path / "seed_0", params)  # fits: nothing raised

    class Full:
        f_bavail, f_frsize = 100, 4096  # 400 KiB free

    monkeypatch.setattr(checkpoint.os, "statvfs", lambda path: Full())
    with pytest.raises(WriteError, match=r"seed_0: cannot write: no space left"):
        checkpoint._room_for(tmp_path / "seed_0", params)
