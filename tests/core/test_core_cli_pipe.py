"""The dispatcher ends quietly when stdout's reader goes away (``probcast ... | head -1``),
for every command; and the checks of ``demo`` and ``monitor`` arguments made before work."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from probcast import cli
from probcast.monitor.config import MonitorConfigError, load_config
from probcast.testing.stations import station_table


def _closed_pipe(argv: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``probcast argv`` with a stdout pipe whose reader is already gone."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [sys.executable, "-m", "probcast.cli", *argv],
            stdout=write, stderr=subprocess.PIPE, text=True, timeout=300, check=False,
        )  # fmt: skip
    finally:
        os.close(write)


@pytest.mark.parametrize(
    "argv", [["--help"], ["--version"], ["data", "list"], ["predict", "--help"]]
)
def test_closed_pipe_is_quiet(argv: list[str]) -> None:
    res = _closed_pipe(argv)
    assert res.stderr == "" and res.returncode == cli.PIPE_EXIT


class _Broken:
    """A stdout whose reader has gone."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


def test_broken_pipe_inside_a_commands_own_error_handling(monkeypatch, capsys) -> None:
    # 'data' turns an OSError into "error: ..." (exit 1): a broken pipe must not be one
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdout", _Broken())
    assert cli.main(["data", "list"]) == cli.PIPE_EXIT
    assert cli.main(["--help"]) == cli.PIPE_EXIT
    assert capsys.readouterr().err == ""
    assert isinstance(sys.stdout, _Broken)  # given back as it was


def test_demo_refuses_contradictions_before_work(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        from probcast.bench.demo import main as demo

        demo(["--all", "--dataset", "seoul-ldaps", "--out", str(tmp_path / "d")])
    assert exc.value.code == 2 and "--all" in capsys.readouterr().err
    for bad, word in ((str(tmp_path), "is a directory"), ("/proc/x.md", "cannot be written")):
        assert cli.main(["demo", "--skill-table", bad, "--out", str(tmp_path / "d")]) == 2
        assert word in capsys.readouterr().err
    (tmp_path / "afile").write_text("x")
    assert cli.main(["demo", "--out", str(tmp_path / "afile")]) == 2
    assert "not a directory" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_monitor_missing_reference_table_leaves_no_state(tmp_path: Path, capsys) -> None:
    table = station_table(n_stations=2, n_inits=4, targets=("t2m",))
    table.to_parquet(tmp_path / "obs.parquet")
    state = tmp_path / "m.sqlite"
    base = ["monitor", "skill", "--forecasts", str(tmp_path / "obs.parquet"), "--observations",
            str(tmp_path / "obs.parquet"), "--state", str(state)]  # fmt: skip
    assert cli.main([*base, "--reference-table", str(tmp_path / "nonexist.parquet")]) == 1
    err = capsys.readouterr().err
    assert "--reference-table" in err and "nonexist.parquet" in err and "Errno" not in err
    assert not state.exists()
    (tmp_path / "garbage.parquet").write_bytes(b"not parquet")  # fails with the state open
    assert cli.main([*base, "--reference-table", str(tmp_path / "garbage.parquet")]) == 1
    assert "garbage.parquet" in capsys.readouterr().err and not state.exists()


def test_monitor_config_without_a_monitor_block(tmp_path: Path, caplog) -> None:
    typo = tmp_path / "mon.yaml"
    typo.write_text("monitr:\n  drift: {psi: 0.01}\n")
    with pytest.raises(MonitorConfigError, match="did you mean 'monitor' for 'monitr'"):
        load_config(typo)
    other = tmp_path / "pipeline.yaml"
    other.write_text("pipeline: {name: x}\n")
    assert load_config(other).drift.psi == 0.25
    assert "no 'monitor:' block" in caplog.text and "pipeline" in caplog.text
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    caplog.clear()
    load_config(empty)
    assert "monitor" not in caplog.text
