"""Streamed training refuses a key that two files of a dataset directory hold (train.stream).

Training in memory refuses a repeated (station, init_time, lead_time) key; streaming checked
keys only within one file, so a cycle written twice (``cycle_0000.parquet`` and a copy), or a
folder of files split by station whose stations overlap, trained on those rows twice.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from probcast.cli import main
from probcast.testing.stations import station_table
from probcast.train import stream_keys
from probcast.train.stream_source import ParquetSource
from probcast.validate import ValidationError


def _table() -> pd.DataFrame:
    table = station_table(n_stations=4, n_inits=12, leads=(6.0, 12.0, 24.0))
    table["station"] = table["station"].astype(str)
    return table


def _build(table: pd.DataFrame, out: Path) -> list[Path]:
    """One file per cycle, as ``probcast data build`` writes them."""
    files = []
    for init, rows in table.groupby("init_time"):
        part = out / f"init_date={init:%Y-%m-%d}"
        part.mkdir(parents=True, exist_ok=True)
        files.append(part / f"cycle_{init:%H%M}.parquet")
        rows.to_parquet(files[-1], index=False)
    return files


def _open(path: Path, **kw) -> ParquetSource:
    return ParquetSource.open(path, None, val_fraction=0.25, **kw)


def test_a_cycle_written_twice_is_refused_naming_both_files(tmp_path):
    table = _table()
    files = _build(table, tmp_path)
    copy = files[3].with_name("cycle_0000_again.parquet")
    table[table.init_time == table.init_time.unique()[3]].iloc[::5].to_parquet(copy, index=False)
    with pytest.raises(ValidationError) as err:
        _open(tmp_path)
    message = str(err.value)
    assert message.startswith(f"{files[3]}: ") or message.startswith(f"{copy}: "), message
    assert str(files[3]) in message and str(copy) in message, message
    assert "3 (station, init_time, lead_time) key(s)" in message, message
    assert "e.g. station='ST" in message and "init_time=2021-01-04 00:00:00+00:00" in message


def test_files_split_by_station_train_unless_they_overlap(tmp_path):
    table = _table()
    stations = sorted(table.station.unique())
    (tmp_path / "ok").mkdir()
    for s in stations:  # every file holds every init time: all are read again, no repeat
        table[table.station == s].to_parquet(tmp_path / "ok" / f"{s}.parquet", index=False)
    assert _open(tmp_path / "ok").rows == len(table)
    bad = tmp_path / "bad"
    bad.mkdir()
    table[table.station.isin(stations[:2])].to_parquet(bad / "a.parquet", index=False)
    table[table.station.isin(stations[1:])].to_parquet(bad / "b.parquet", index=False)
    with pytest.raises(ValidationError, match=r"b.parquet: 36 \(station.*\) key\(s\) of its "
                       r"usable rows are in .*a.parquet too, e.g. station='ST001'"):  # fmt: skip
        _open(bad)


def test_in_passes_of_hash_ranges_with_other_dtypes(tmp_path, monkeypatch):
    table = _table()
    table["station"] = table["station"].astype("category")  # dictionary columns
    a, b = table[table.station != "ST003"], table[table.station != "ST000"].copy()
    b["init_time"] = b["init_time"].dt.as_unit("ns")  # another resolution
    a.to_parquet(tmp_path / "a.parquet", index=False, row_group_size=20)
    b.to_parquet(tmp_path / "b.parquet", index=False)
    monkeypatch.setattr(stream_keys, "CHECK_ROWS", 50)  # 216 rows at shared inits: 5 passes
    with pytest.raises(ValidationError, match=r"b.parquet: at least \d+ \(station"):
        _open(tmp_path, read_rows=64)


def test_only_repeats_among_usable_rows_are_refused(tmp_path):
    table = _table()
    late = table[table.init_time >= "2021-01-10"]
    table.to_parquet(tmp_path / "all.parquet", index=False)
    late.to_parquet(tmp_path / "late.parquet", index=False)  # after the split date only
    source = ParquetSource.open(tmp_path, None, split_date="2021-01-10", val_fraction=0.25)
    assert source.rows == (table.valid_time < "2021-01-10").sum()  # (valid after init)
    nobs = table.assign(obs_t2m=float("nan"), obs_tp=float("nan"))  # no observation: unusable
    nobs.to_parquet(tmp_path / "late.parquet", index=False)
    assert _open(tmp_path).rows == len(table)
    late.to_parquet(tmp_path / "late.parquet", index=False)
    with pytest.raises(ValidationError, match=r"late.parquet: 36 \(station.*all.parquet too"):
        _open(tmp_path)  # no split date: usable rows repeated


def test_only_files_sharing_an_init_time_are_read_again(tmp_path, monkeypatch):
    table = _table()
    files = _build(table, tmp_path)
    read, frames = [], ParquetSource._file_frames

    def read_again(self, file):
        read.append(Path(file))
        return frames(self, file)

    monkeypatch.setattr(ParquetSource, "_file_frames", read_again)
    source = _open(tmp_path)  # one file per cycle: none
    assert source.rows == len(table) and source.cut == pd.Timestamp("2021-01-10", tz="UTC")
    assert read == []
    copy = files[5].with_name("cycle_0000_copy.parquet")
    table[table.init_time == "2021-01-06"].to_parquet(copy, index=False)
    with pytest.raises(ValidationError, match=r"cycle_0000_copy\.parquet"):
        _open(tmp_path)
    assert set(read) == {files[5], copy}


def test_streamed_training_exits_naming_both_files(tmp_path, capsys):
    table = _table()
    files = _build(table, tmp_path / "data")
    table.iloc[:1].to_parquet(files[0].with_name("extra.parquet"), index=False)
    args = [f"--workdir={tmp_path / 'm'}", f"--config.data.path={tmp_path / 'data'}"]
    assert main(["train", "--config=tiny", *args, "--config.train.stream=True"]) != 0
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "extra.parquet" in last and "cycle_0000.parquet" in last, last
    assert "station='ST000', init_time=2021-01-01 00:00:00+00:00, lead_time=6 h" in last, last


def test_integer_and_float_ids_of_one_station_are_one_key(tmp_path):
    table = _table()
    table["station"] = table["station"].str[2:].astype(int)  # ST001 -> 1
    table[table.station <= 1].to_parquet(tmp_path / "ints.parquet", index=False)
    floats = table[table.station >= 1].assign(station=lambda t: t.station.astype(float))
    floats.to_parquet(tmp_path / "floats.parquet", index=False)  # station 1 twice
    with pytest.raises(ValidationError, match=r"ints.parquet: 36 \(station.*floats.parquet too"):
        _open(tmp_path)
