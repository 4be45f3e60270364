"""Tables too small to hold data out, and targets without validation observations (audit)."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from probcast.cli import main
from probcast.configs import default as default_config
from probcast.testing.stations import station_table
from probcast.train.adapt import cv_folds


def test_one_initialisation_time_names_the_file_and_the_way_out(tmp_path, capsys):
    table = station_table(n_stations=3, n_inits=1, leads=(6.0, 12.0))
    path = tmp_path / "one.parquet"
    table.to_parquet(path, index=False)
    args = ["train", "--config=tiny", f"--workdir={tmp_path / 'm'}", f"--config.data.path={path}"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"probcast train: error: {path}: 6 rows of 1 initialisation time"), err
    assert "data.val_fraction=0 and train.cv_folds=0" in err, err
    assert not (tmp_path / "m").exists()


def test_folds_reduced_for_a_short_table_say_so(caplog):
    config = default_config.get_config()
    table = pd.DataFrame({"init_time": pd.date_range("2024-01-01", periods=7, freq="D")})
    with caplog.at_level(logging.INFO, logger="probcast.train.adapt"):
        assert cv_folds(config, table) == 0
    assert "train.cv_folds=5: one validation block" in caplog.text
    assert "7 initialisation times < 2 per fold" in caplog.text


def test_a_target_without_validation_observations_has_no_validation_crps(tmp_path, capsys, caplog):
    table = station_table(n_stations=4, n_inits=40, leads=(6.0, 12.0))
    late = table["init_time"] >= np.sort(table["init_time"].unique())[-12]
    table.loc[late, "obs_tp"] = np.nan  # the validation block (last 25 %) has no tp truth
    path = tmp_path / "t.parquet"
    table.to_parquet(path, index=False)
    args = [
        *("train", "--config=tiny", f"--workdir={tmp_path / 'm'}"),
        *(f"--config.data.path={path}", "--config.train.cv_folds=0", "--config.train.epochs=2"),
    ]
    with caplog.at_level(logging.INFO, logger="probcast.train.loop"):
        assert main(args) == 0, capsys.readouterr().err
    vals = [m.split("val crps")[1] for m in caplog.messages if "val crps t2m" in m]
    assert len(vals) == 2 and all("tp=" not in v for v in vals), vals  # (was "tp=0")
