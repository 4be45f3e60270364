"""Training applies what ``probcast data check`` detects: units hints, constant columns (audit).

Precipitation in metres trained without a word (products labelled mm, P(tp > 0.5) = 0
everywhere); a target observed as 0 on every row trained to "val crps tp=1.08e-05" and a
CRPSS of -0.64 on test.
"""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from probcast.cli import main
from probcast.testing.stations import station_table
from probcast.train.check import DataError
from probcast.train.plausible import SUMMARY_KEY, check_training_rows

SOURCE = "data/train.parquet"


def test_ordinary_training_rows_give_no_finding(caplog):
    table = station_table(n_stations=4, n_inits=30)
    with caplog.at_level(logging.WARNING, logger="probcast.train.plausible"):
        assert check_training_rows(table, ["t2m", "tp"], SOURCE) == []
    assert not caplog.messages


def test_precipitation_in_metres_is_a_warning_naming_file_column_and_hint(caplog):
    table = station_table(n_stations=4, n_inits=30)
    table[["fc_tp", "obs_tp"]] /= 1000.0
    with caplog.at_level(logging.WARNING, logger="probcast.train.plausible"):
        found = check_training_rows(table, ["t2m", "tp"], SOURCE)
    assert [line.split(": ")[1] for line in found] == ["obs_tp", "fc_tp"], found
    for line in found:
        assert line.startswith(f"{SOURCE}: ") and "given in metres?" in line
    assert caplog.messages == found


def test_a_constant_raw_forecast_is_a_warning():
    table = station_table(n_stations=4, n_inits=30).assign(fc_tp=1.0, fc_ws10=3.0)
    found = check_training_rows(table, ["t2m", "tp"], SOURCE)
    assert [line.split(": ")[1] for line in found] == ["fc_tp", "fc_ws10"], found
    assert "constant value 1 on all 360 training rows" in found[0]


def test_a_constant_target_is_refused_naming_file_column_value_and_way_out():
    table = station_table(n_stations=4, n_inits=30).assign(obs_tp=0.0)
    with pytest.raises(DataError) as err:
        check_training_rows(table, ["t2m", "tp"], SOURCE)
    msg = str(err.value)
    assert msg.startswith(f"{SOURCE}: column 'obs_tp' takes the single value 0 on all 360"), msg
    assert "check the observations" in msg and "--config.data.targets=t2m" in msg, msg
    alone = table.drop(columns=["fc_t2m", "obs_t2m"])
    with pytest.raises(DataError, match="train on data where it varies"):
        check_training_rows(alone, ["tp"], SOURCE)


def test_a_constant_target_with_missing_observations_is_still_constant():
    table = station_table(n_stations=4, n_inits=30).assign(obs_t2m=275.0)
    table.loc[table.index[::3], "obs_t2m"] = np.nan
    with pytest.raises(DataError, match=r"'obs_t2m' takes the single value 275 on all 240"):
        check_training_rows(table, ["t2m", "tp"], SOURCE)


def test_a_tiny_table_is_not_judged():
    table = station_table(n_stations=2, n_inits=3, leads=(6.0, 12.0)).assign(obs_tp=0.0)
    table[["fc_t2m"]] = 280.0
    assert len(table) < 20
    assert check_training_rows(table, ["t2m", "tp"], SOURCE) == []


def _train(tmp_path, table, *extra: str) -> tuple[int, str]:
    path = tmp_path / "t.parquet"
    table.to_parquet(path, index=False)
    args = [
        *("train", "--config=tiny", f"--workdir={tmp_path / 'm'}", f"--config.data.path={path}"),
        *("--config.train.epochs=1", "--config.train.n_seeds=1", *extra),
    ]
    return main(args), str(path)


def test_training_on_a_constant_target_fails_before_any_work(tmp_path, capsys):
    table = station_table(n_stations=4, n_inits=30).assign(obs_tp=0.0)
    rc, path = _train(tmp_path, table)
    assert rc == 1
    err = capsys.readouterr().err
    assert f"probcast train: error: {path}: column 'obs_tp' takes the single value 0" in err
    assert not (tmp_path / "m").exists()


def test_training_in_metres_warns_and_records_it_in_the_summary(tmp_path, caplog):
    table = station_table(n_stations=4, n_inits=30, targets=("tp",))
    table[["fc_tp", "obs_tp"]] /= 1000.0
    with caplog.at_level(logging.WARNING, logger="probcast.train.plausible"):
        rc, path = _train(tmp_path, table)
    assert rc == 0
    warned = [r.getMessage() for r in caplog.records if r.name == "probcast.train.plausible"]
    assert len(warned) == 2 and all(m.startswith(f"{path}: ") for m in warned), warned
    summary = json.loads((tmp_path / "m" / "summary.json").read_text())
    assert summary[SUMMARY_KEY] == warned and "seeds" in summary and "elapsed_s" in summary
