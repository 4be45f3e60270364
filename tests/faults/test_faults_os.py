"""OS faults in every command: one-line errors naming the path, nothing left, nothing lost.

The matrix (``faulthelp.CASES``): read-only folders, a parent that is a file, a target that
is a folder, a file-size limit (``ulimit -f``, in a process of its own), a full disk (a
small tmpfs; root only), inputs that are folders, truncated, or missing, for ``data
check``/``data split``, ``train``, ``predict`` (stations, grids), ``verify``, ``demo``,
``run`` and ``monitor drift``. ``benchmarks/fault_matrix.py`` prints the counts.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from faulthelp import (
    CASES,
    OLD,
    Case,
    full_folder,
    read_only_folder,
    run_case,
    run_limited,
    unmount,
    write_inputs,
)

from probcast import io
from probcast.cli import main

PLAIN = [c for c in CASES if c.group == "plain"]
LIMITED = [c for c in CASES if c.group == "limit"]
FULL = [c for c in CASES if c.group == "full"]


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("osfaults")
    ro = read_only_folder(root)
    if ro is None:
        pytest.skip("no read-only folder can be made here")
    made = {**write_inputs(root, ro), "ro": ro, "work": root / "work"}
    full = full_folder(root)
    if full is not None:
        made["full"] = full
    yield made
    for mount in (root / "ro", root / "full"):
        unmount(mount)


def _check(result) -> None:
    assert result.verdict == "clear", (result.verdict, result.why, result.message)


@pytest.mark.parametrize("case", PLAIN, ids=[c.id for c in PLAIN])
def test_fault_is_a_clear_error(paths, case: Case) -> None:
    _check(run_case(case, paths))


@pytest.mark.parametrize("case", FULL, ids=[c.id for c in FULL])
def test_full_disk_is_a_clear_error(paths, case: Case) -> None:
    if "full" not in paths:
        pytest.skip("a small tmpfs cannot be mounted here (needs root)")
    _check(run_case(case, paths))


@pytest.fixture(scope="module")
def limited(paths):
    results, stderr = run_limited(LIMITED, paths)
    return {r.id: r for r in results}, stderr


@pytest.mark.slow
@pytest.mark.parametrize("case", LIMITED, ids=[c.id for c in LIMITED])
def test_file_size_limit_is_a_clear_error(limited, case: Case) -> None:
    results, stderr = limited
    assert "Traceback" not in stderr and "HDF5-DIAG" not in stderr, stderr[-3000:]
    _check(results[case.id])


_LIMIT_SCRIPT = """
import resource, sys
import pandas as pd
from probcast.ingest.tables import write_table
from probcast.io import write_text
resource.setrlimit(resource.RLIMIT_FSIZE, (2000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
target = sys.argv[1]
try:
    write_table(pd.DataFrame({"x": range(5000)}), target)
except OSError as err:
    print(err)
"""


def test_size_limit_in_the_writer_names_the_path_and_keeps_the_old_file(tmp_path) -> None:
    """The fast one of the file-size-limit cases: probcast.io alone, in a small process."""
    target = tmp_path / "t.csv"
    target.write_text(OLD)
    res = subprocess.run(
        [sys.executable, "-c", _LIMIT_SCRIPT, str(target)],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    assert (
        res.stdout.strip() == f"{target}: cannot write: file too large (the file-size "
        "limit, ulimit -f, was reached)"
    ), res.stdout + res.stderr
    assert target.read_text() == OLD and sorted(tmp_path.iterdir()) == [target]


def test_write_errors_name_the_target(tmp_path) -> None:
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(io.WriteError, match=f"{blocker} is a file, not a folder") as info:
        io.write_text(blocker / "sub" / "x.txt", "data")
    assert info.value.errno == errno.ENOTDIR and info.value.filename.endswith("x.txt")
    folder = tmp_path / "out.csv"
    (folder / "keep").mkdir(parents=True)
    with pytest.raises(io.WriteError, match=r"out\.csv: cannot write: is a folder"):
        io.write_text(folder, "data")
    assert (folder / "keep").is_dir() and len(list(tmp_path.iterdir())) == 2

    def fails(tmp: Path) -> None:
        tmp.write_text("partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(io.WriteError, match=r"x\.bin: cannot write: no space left on the device"):
        io.write_with(tmp_path / "x.bin", fails)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "out.csv"]

    def hdf(tmp: Path) -> None:
        raise RuntimeError("NetCDF: HDF error")

    with pytest.raises(io.WriteError, match=r"y\.nc: cannot write: NetCDF: HDF error"):
        io.write_with(tmp_path / "y.nc", hdf)
    with pytest.raises(RuntimeError, match="a bug"):  # other errors are not disguised
        io.write_with(tmp_path / "z", lambda tmp: (_ for _ in ()).throw(RuntimeError("a bug")))


def test_dispatcher_names_the_path_of_os_errors(capsys, tmp_path) -> None:
    from probcast.cli import error_message

    err = PermissionError(errno.EACCES, "Permission denied", str(tmp_path / "x"))
    assert (
        error_message("verify", err) == f"probcast verify: error: {tmp_path / 'x'}: "
        "permission denied"
    )
    assert (
        error_message("x", OSError(errno.EIO, "I/O error")) == "probcast x: error: "
        "[Errno 5] I/O error"
    )


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".nc"])
def test_station_predictions_are_readable_by_all(paths, tmp_path, suffix: str) -> None:
    old = os.umask(0o077)  # a restrictive umask must not make products private
    try:
        out = tmp_path / f"p{suffix}"
        args = [f"--model={paths['model']}", f"--input={paths['in'] / 'good.parquet'}"]
        assert main(["predict", *args, f"--output={out}", "--quantiles=0.5"]) == 0
    finally:
        os.umask(old)
    assert out.stat().st_mode & 0o777 == 0o644
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []
