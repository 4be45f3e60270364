"""Model integrity and the training's work directory: marker, checksums, lock, sweep.

The slow tests run ``probcast train`` in subprocesses and kill them with SIGKILL (a real
kill, not a simulated exception).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from probcast.model import integrity
from probcast.model.artefact import load
from probcast.testing.stations import station_table
from probcast.train import workdir as wd

MAIN = "import sys; from probcast.cli import main; sys.exit(main())"


def _fake_artefact(root: Path) -> Path:
    for name in ("config.json", "features.json", "meta.json", "summary.json"):
        (root / name).write_text(json.dumps({"name": name}))
    best = root / "seed_0" / "best" / "3" / "params"
    best.mkdir(parents=True)
    (best / "manifest.ocdbt").write_bytes(bytes(range(256)))
    (root / "seed_0" / "latest").mkdir()
    (root / "seed_0" / "latest" / "x").write_bytes(b"resume state: not checked")
    return root


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_marker_lists_every_artefact_file_and_verifies(tmp_path):
    root = _fake_artefact(tmp_path)
    with pytest.raises(ValueError, match=rf"{tmp_path}.*incomplete model.*COMPLETE\.json"):
        integrity.verify(root)
    integrity.write_marker(root)
    listed = json.loads((root / integrity.MARKER).read_text())["sha256"]
    assert set(listed) == {
        "config.json",
        "features.json",
        "meta.json",
        "summary.json",
        "seed_0/best/3/params/manifest.ocdbt",
    }
    integrity.verify(root)
    (root / "seed_0" / "latest" / "x").write_bytes(b"changed: still fine")
    integrity.verify(root)


@pytest.mark.parametrize(
    "damage, match",
    [
        (
            lambda r: _flip(r / "seed_0/best/3/params/manifest.ocdbt", 100),
            "manifest.ocdbt does not",
        ),
        (lambda r: _flip(r / "meta.json", 3), "meta.json does not match"),
        (
            lambda r: (r / "seed_0/best/3/params/manifest.ocdbt").unlink(),
            "manifest.ocdbt is missing",
        ),
        (lambda r: (r / "calibration.json").write_text("{}"), "calibration.json is not listed"),
        (lambda r: (r / integrity.MARKER).write_text("{"), "unreadable"),
    ],
)
def test_damaged_artefact_is_refused(tmp_path, damage, match):
    root = _fake_artefact(tmp_path)
    integrity.write_marker(root)
    damage(root)
    with pytest.raises(ValueError, match=match):
        integrity.verify(root)


def test_load_refuses_a_workdir_without_marker(tmp_path):
    root = _fake_artefact(tmp_path)
    with pytest.raises(ValueError, match=rf"^{tmp_path}: incomplete model \(no COMPLETE\.json\)"):
        load(root)


def test_claim_locks_sweeps_and_keeps_the_marker(tmp_path):
    root = _fake_artefact(tmp_path)
    integrity.write_marker(root)
    dead = 2**22 + 12345  # above the default pid_max: never a live process
    stale = [
        root / f".meta.json.tmp-{dead}-abc",
        root / "seed_0" / f".DONE.json.tmp-{dead}-def",
        root / "selection" / f".config.json.tmp-{dead}-0",
    ]
    for p in stale:
        p.parent.mkdir(exist_ok=True)
        p.write_text("partial")
    live = root / f".summary.json.tmp-{os.getpid()}-abc"
    live.write_text("being written")
    with wd.claim(root):
        # kept until the run files are rewritten (artefact.write_run_files): a training
        # refused before that leaves the model loadable (tests/train/test_api_train.py)
        assert (root / integrity.MARKER).exists()
        assert not any(p.exists() for p in stale) and live.exists()
        busy = rf"{root} is in use .*pid {os.getpid()}"
        with pytest.raises(wd.WorkdirBusyError, match=busy), wd.claim(root):
            pass
    with wd.claim(root):  # released on exit
        pass


def _train_cmd(workdir: Path, table: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        MAIN,
        "train",
        "--config=tiny",
        f"--workdir={workdir}",
        f"--config.data.path={table}",
        "--config.data.val_fraction=0.25",
        *extra,
    ]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "table.parquet"
    station_table(n_stations=3, n_inits=16).to_parquet(path)
    return path


def _env() -> dict[str, str]:
    return {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1"}


def _start_until(cmd: list[str], pattern: str, timeout: float = 240) -> subprocess.Popen:
    """Start ``cmd`` and return once a line of its output contains ``pattern``."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env()
    )
    assert proc.stdout is not None
    end = time.monotonic() + timeout
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if pattern in line:
            return proc
        if time.monotonic() > end:
            break
    proc.kill()
    raise AssertionError(f"{pattern!r} never appeared:\n{''.join(seen[-20:])}")


@pytest.mark.slow
def test_killed_training_is_refused_then_resumed_and_corruption_detected(tmp_path, table):
    run = tmp_path / "run"
    # Long enough that the kill lands mid-training, whatever the machine's speed.
    cmd = _train_cmd(run, table, "--config.train.epochs=20", "--config.train.patience=20")
    proc = _start_until(cmd, "epoch   1/20")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert (run / "config.json").exists() and not (run / integrity.MARKER).exists()
    with pytest.raises(ValueError, match=rf"{run}: incomplete model"):
        load(run)
    # The same command finishes the run; the model then loads.
    subprocess.run(cmd, check=True, capture_output=True, env=_env())
    model = load(run)
    rows = station_table(n_stations=3, n_inits=2)
    assert model.params(rows)["t2m"]["loc"].shape == (len(rows),)
    load(run)  # loading changes nothing that is checked
    assert not [p for p in run.rglob("*") if ".tmp-" in p.name]
    ckpt = sorted((run / "seed_0" / "best").rglob("ocdbt.process_0/d/*"))[0]
    _flip(ckpt, ckpt.stat().st_size // 2)
    with pytest.raises(ValueError, match=rf"{run}: seed_0/best/.*does not match its checksum"):
        load(run)


@pytest.mark.slow
def test_second_training_into_the_same_workdir_is_refused(tmp_path, table):
    run = tmp_path / "run"
    cmd = _train_cmd(run, table, "--config.train.epochs=40", "--config.train.patience=40")
    first = _start_until(cmd, "epoch   1/40")
    os.kill(first.pid, signal.SIGSTOP)  # frozen mid-training, lock held, however fast it is
    try:
        second = subprocess.run(
            cmd, capture_output=True, text=True, timeout=240, check=False, env=_env()
        )
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(30)
    assert second.returncode == 1
    last = second.stderr.strip().splitlines()[-1]
    assert last.startswith("probcast train: ") and last.endswith(
        f"{run} is in use by another training (pid {first.pid}); wait for it to finish or "
        f"train into another workdir"
    )
    assert "Traceback" not in second.stderr
