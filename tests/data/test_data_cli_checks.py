"""``probcast data`` (and ``data build``/``refs``): bad arguments are refused, exit 2, one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from probcast.cli import main
from probcast.testing.stations import station_table


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err and "Errno" not in err, err
    return err


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "table.csv"
    station_table(n_stations=2, n_inits=6).to_csv(path, index=False)
    return path


def test_fetch_all_with_names_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "fetch", "--all", "nosuch"]) == 2
    err = _err(capsys)
    assert "--all" in err and "nosuch" in err and err.count("\n") == 1
    assert main(["data", "fetch"]) == 2
    assert "--all" in _err(capsys)


def test_output_folder_that_is_a_file(
    tmp_path: Path, table: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["data", "prepare", "seoul-ldaps", "--out", str(afile)]) == 2
    assert f"--out {afile}: exists and is not a directory" in _err(capsys)
    argv = ["data", "split", str(table), "--test-from", "2021-01-04", "--out", str(afile)]
    assert main(argv) == 2
    assert f"--out {afile}: exists and is not a directory" in _err(capsys)
    assert main(["data", "build", "--config", str(table), "--out", str(afile)]) == 2
    assert f"--out {afile}" in _err(capsys)


def test_split_date_is_a_usage_error(
    tmp_path: Path, table: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "o"
    assert main(["data", "split", str(table), "--test-from", "2017-13-45", "--out", str(out)]) == 2
    assert "--test-from" in _err(capsys) and not out.exists()


def test_check_lists_every_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grib = tmp_path / "x.grib"
    grib.write_bytes(b"GRIB")
    assert main(["data", "check", str(grib)]) == 1
    err = _err(capsys)
    assert "'.grib'" in err and ".parquet" in err and ".nc" in err and ".zarr" in err


def test_build_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "b.yaml"
    spec.write_text("nwp: {}\n")
    out = str(tmp_path / "o")
    assert main(["data", "build", "--config", str(spec), "--out", out, "--workers", "0"]) == 2
    assert "--workers" in _err(capsys)
    assert main(["data", "build", "--config", str(tmp_path), "--out", out]) == 2
    assert "is a directory; expected a build spec file" in _err(capsys)


def test_refs_unknown_variable(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["data", "refs", "--archive", str(tmp_path / "*.grib"), "--out", str(tmp_path / "r")]
    assert main([*argv, "--variables", "foo"]) == 2
    err = _err(capsys)
    assert "--variables foo" in err and "t2m" in err


@pytest.mark.realdata
def test_refs_names_the_variable_and_what_the_files_hold(
    mirror: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    archive = str(mirror / "ecmwf-hres-grib1" / "oper_*.grib")
    argv = ["data", "refs", "--archive", archive, "--out", str(tmp_path / "r.json")]
    assert main([*argv, "--variables", "tp"]) == 1
    err = _err(capsys)
    assert "--variables tp" in err and "msl, u10, v10" in err
