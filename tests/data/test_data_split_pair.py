"""``data split`` and ``data prepare`` write their parts as one set: never a train of one
run beside a test of another (a new train overlapping an old test in time is leakage).

A kill is simulated by making the rename of the second part into place raise an exception
no code handles; a full disk by a writer that fails on the second part.
"""

from __future__ import annotations

import errno
import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from probcast import io
from probcast.data import prepare
from probcast.data.check import split_file
from probcast.ingest import tables
from probcast.ingest.tables import read_table
from probcast.split import time_split
from probcast.testing.grids import forecast_grid
from probcast.testing.interrupt import Killed, kill_at_rename
from probcast.testing.stations import station_table

FIRST, SECOND = "2021-01-05", "2021-01-12"  # a new train reaching into the old test


@pytest.fixture
def table_csv(tmp_path: Path) -> Path:
    path = tmp_path / "mine.csv"
    station_table(n_stations=3, n_inits=14).to_csv(
        path, index=False, date_format="%Y-%m-%dT%H:%M:%SZ"
    )
    return path


def _one_run(out: Path, parts: tuple[str, ...] = ("train", "test")) -> None:
    """The parts present come from one split: no training valid time in the test period."""
    found = {p: read_table(out / f"{p}.parquet") for p in parts if (out / f"{p}.parquet").exists()}
    if len(found) == 2:
        start = found["test"]["init_time"].min()
        assert (found["train"]["valid_time"] < start).all(), "train and test overlap"


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_split_killed_between_the_parts_leaves_no_mixed_pair(
    table_csv: Path, tmp_path: Path, monkeypatch
) -> None:
    out = tmp_path / "split"
    split_file(table_csv, FIRST, out)
    kill_at_rename(monkeypatch, out / "test.parquet")
    with pytest.raises(Killed):
        split_file(table_csv, SECOND, out)
    monkeypatch.undo()
    _one_run(out)
    assert _names(out) == ["train.parquet"]  # the new train; the old test is gone
    new = read_table(out / "train.parquet")
    assert new["init_time"].max() < pd.Timestamp(SECOND, tz="UTC")
    split_file(table_csv, SECOND, out)  # a rerun completes the pair
    _one_run(out)
    assert _names(out) == ["test.parquet", "train.parquet"]


def test_split_that_fails_while_writing_keeps_the_old_pair(
    table_csv: Path, tmp_path: Path, monkeypatch
) -> None:
    out = tmp_path / "split"
    split_file(table_csv, FIRST, out)
    before = {n: (out / n).read_bytes() for n in _names(out)}
    real = tables.write_table

    def full_disk(df, path):  # type: ignore[no-untyped-def]
        if Path(path).name == "test.parquet":
            raise io.WriteError(errno.ENOSPC, "no space left on the device", str(path))
        return real(df, path)

    monkeypatch.setattr(tables, "write_table", full_disk)
    with pytest.raises(io.WriteError) as info:
        split_file(table_csv, SECOND, out)
    assert str(info.value) == f"{out / 'test.parquet'}: cannot write: no space left on the device"
    assert {n: (out / n).read_bytes() for n in _names(out)} == before  # no temporaries either


def test_staging_folder_of_a_killed_split_is_removed(table_csv: Path, tmp_path: Path) -> None:
    out = tmp_path / "split"
    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid is no process now
    left = out / f".probcast-set.tmp-{dead.pid}-0123456789ab"
    left.mkdir(parents=True)
    (left / "train.parquet").write_text("half")
    split_file(table_csv, FIRST, out)
    assert _names(out) == ["test.parquet", "train.parquet"]


def _prepare_with(monkeypatch: pytest.MonkeyPatch, data: object, out: Path) -> prepare.Prepared:
    """``prepare.prepare`` of a registry name, its download and conversion replaced."""
    from probcast.data import registry

    canonical = prepare.Canonical(data, ["t2m"], ["synthetic"])  # type: ignore[arg-type]
    monkeypatch.setattr(prepare, "converter", lambda name: lambda files: canonical)
    monkeypatch.setattr(registry, "fetch", lambda name: {})
    if isinstance(data, pd.DataFrame):
        start = pd.Timestamp(SECOND, tz="UTC")
        monkeypatch.setattr(prepare, "split", lambda name, c: time_split(c.data, start))
    return prepare.prepare("pnw-t2m", out)


def test_prepare_killed_between_the_parts_leaves_no_mixed_set(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "prepared"
    first = station_table(n_stations=3, n_inits=14)
    _prepare_with(monkeypatch, first, out)
    assert _names(out) == ["meta.json", "test.parquet", "train.parquet"]
    second = station_table(n_stations=2, n_inits=14)
    kill_at_rename(monkeypatch, out / "test.parquet")
    with pytest.raises(Killed):
        _prepare_with(monkeypatch, second, out)
    monkeypatch.undo()
    # The new train alone: no old test beside it, no meta.json (the set is incomplete).
    assert _names(out) == ["train.parquet"]
    assert read_table(out / "train.parquet")["station"].nunique() == 2


def test_prepare_writes_meta_last_and_replaces_a_set_of_the_other_kind(
    tmp_path: Path, monkeypatch
) -> None:
    out = tmp_path / "prepared"
    grid = forecast_grid((4, 5), 3)
    monkeypatch.setattr(
        prepare,
        "split",
        lambda name, c: (c.data.isel(forecast_reference_time=slice(0, 1)), c.data),
    )
    done = _prepare_with(monkeypatch, grid, out)
    assert _names(out) == ["meta.json", "test.nc", "train.nc"]
    names = {"train": "train.nc", "test": "test.nc", "meta": "meta.json"}
    assert done.paths == {part: out / name for part, name in names.items()}
    assert json.loads((out / "meta.json").read_text())["kind"] == "grid"
    monkeypatch.undo()
    _prepare_with(monkeypatch, station_table(n_stations=3, n_inits=14), out)
    assert _names(out) == ["meta.json", "test.parquet", "train.parquet"]  # no old grid parts
    meta = json.loads((out / "meta.json").read_text())
    assert list(meta) == ["name", "kind", "targets", "report"] and meta["kind"] == "station"
