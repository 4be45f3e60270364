"""Streamed training checks its table as training in memory does (train.stream).

The streaming source read keys and times without any check: a ``valid_time`` equal to
``init_time`` or every key twice trained without a word, lead times ``"6h"`` failed with
``could not convert string to float: '6h'`` and epoch-number init times with "no fit rows".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from probcast.cli import main
from probcast.testing.stations import station_table
from probcast.train.stream_source import ParquetSource
from probcast.validate import ValidationError


def _table() -> pd.DataFrame:
    table = station_table(n_stations=4, n_inits=30, leads=(6.0, 12.0, 24.0))
    table["station"] = table["station"].astype(str)
    return table


def _open(table: pd.DataFrame, path: Path, read_rows: int = 65_536, **kw) -> ParquetSource:
    table.to_parquet(path, index=False, **kw)
    return ParquetSource.open(path, None, val_fraction=0.2, read_rows=read_rows)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.assign(valid_time=t["init_time"]), r"column 'valid_time': 360 row\(s\)"),
        (lambda t: pd.concat([t, t.iloc[:5]]), "rows share 5 duplicated"),
        (lambda t: t.assign(init_time=t["init_time"].astype("int64") // 10**9), "is numeric"),
        (lambda t: t.assign(obs_t2m=t["obs_t2m"] - 273.15), "'obs_t2m': .* physical range"),
        (lambda t: t.assign(fc_tp=np.where(t.index == 7, np.inf, t["fc_tp"])), "infinite"),
    ],
    ids=["valid-is-init", "duplicates", "epoch-init", "degC", "inf"],
)
def test_a_bad_table_is_refused_naming_the_file(tmp_path, change, message):
    path = tmp_path / "bad.parquet"
    with pytest.raises(ValidationError, match=f"^{path}: .*{message}"):
        _open(change(_table()).reset_index(drop=True), path)


def test_a_key_in_two_row_groups_of_a_file_is_refused(tmp_path):
    table = _table()
    twice = pd.concat([table, table.iloc[[3]]], ignore_index=True)  # last row group: row 3 again
    with pytest.raises(ValidationError, match=r"2 rows of different record batches share keys"):
        _open(twice, tmp_path / "twice.parquet", row_group_size=50)
    with pytest.raises(ValidationError, match=r"one.parquet: 2 rows of different record batch"):
        _open(twice, tmp_path / "one.parquet", read_rows=64)  # one row group, 6 batches
    ok = _open(table, tmp_path / "ok.parquet", read_rows=40, row_group_size=50)
    assert len(ok.units) > 1 and ok.rows == len(table)


def test_an_error_names_the_row_group(tmp_path):
    table = _table()
    table.loc[len(table) - 1, "valid_time"] = table["init_time"].iloc[-1]
    with pytest.raises(ValidationError, match=r"bad.parquet \(row group 7\): column 'valid_time'"):
        _open(table, tmp_path / "bad.parquet", row_group_size=50)


def test_lead_times_as_durations_train_streamed_as_in_memory(tmp_path):
    table = _table()
    table["lead_time"] = table["lead_time"].map(lambda h: f"{h:g}h")  # "6h", "12h", "24h"
    table.to_parquet(tmp_path / "t.parquet", index=False)
    source = ParquetSource.open(tmp_path / "t.parquet", None, val_fraction=0.2)
    assert source.rows == len(table)
    frame = next(source.batches(0))
    assert frame["lead_time"].dtype == "float64" and set(frame["lead_time"]) == {6.0, 12.0, 24.0}
    args = [f"--workdir={tmp_path / 'm'}", f"--config.data.path={tmp_path / 't.parquet'}"]
    assert main(["train", "--config=tiny", *args, "--config.train.stream=True",
                 "--config.train.epochs=1"]) == 0  # fmt: skip


def test_the_cli_names_the_file(tmp_path, capsys):
    path = tmp_path / "dup.parquet"
    pd.concat([_table()] * 2).to_parquet(path, index=False)
    args = [f"--workdir={tmp_path / 'm'}", f"--config.data.path={path}"]
    assert main(["train", "--config=tiny", *args, "--config.train.stream=True"]) != 0
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"{path}: 720 rows share 360 duplicated" in last
