"""``probcast monitor drift`` and ``probcast monitor skill`` end to end on synthetic tables."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from probcast.cli import main
from probcast.dists import Predictive
from probcast.monitor.state import MonitorState
from probcast.products.table import predictive_table
from probcast.products.table_files import write_predictions
from probcast.testing.stations import station_table

SPLIT = pd.Timestamp("2021-01-25", tz="UTC")


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    root = tmp_path_factory.mktemp("monitor")
    table = station_table(n_stations=20, n_inits=40, targets=("t2m",), seed=4)
    table["init_time"] = pd.to_datetime(table["init_time"], utc=True)
    train, test = table[table.init_time < SPLIT], table[table.init_time >= SPLIT]
    train.to_parquet(root / "train.parquet")
    test.to_parquet(root / "obs.parquet")
    return root, train, test


def _issue(root, test, scale: float, name: str):
    """One prediction file per cycle: normal around the raw forecast, no fc_ column."""
    folder = root / name
    folder.mkdir()
    inputs = root / f"{name}_inputs.parquet"
    test.drop(columns=["obs_t2m"]).to_parquet(inputs)
    for cycle, rows in test.groupby("init_time"):
        fc = Predictive.from_params(
            "t2m", "normal", {"loc": rows["fc_t2m"].to_numpy(), "scale": np.full(len(rows), scale)}
        )
        keys = rows[["station", "init_time", "lead_time", "valid_time"]]
        frame, fams = predictive_table(keys, [fc])
        write_predictions(frame, folder / f"pred_{cycle:%Y%m%d%H}.parquet", families=fams)
    return folder, inputs


def _skill(root, folder, inputs, state, *extra):
    return main(
        [
            "monitor", "skill", "--forecasts", str(folder), "--observations",
            str(root / "obs.parquet"), "--inputs", str(inputs), "--reference-table",
            str(root / "train.parquet"), "--state", str(state), "--window", "30",
            "--json", str(root / "skill.json"), "--markdown", str(root / "skill.md"),
            "--metrics", str(root / "skill.prom"), *extra,
        ]
    )  # fmt: skip


def test_skill_scores_once_and_exports_metrics(tables):
    root, _, test = tables
    folder, inputs = _issue(root, test, 1.0, "good")
    state = root / "good.sqlite"
    assert _skill(root, folder, inputs, state) == 0
    report = json.loads((root / "skill.json").read_text())
    top = report["groups"][0]
    assert top["n"] == test["obs_t2m"].notna().sum()
    assert np.isfinite(top["crpss_raw"]) and np.isfinite(top["crpss_emos"])
    assert report["run"]["pending"] == 0
    prom = (root / "skill.prom").read_text()
    for name in (
        'probcast_skill_crps_rolling{lead_group="all",variable="t2m"}',
        'probcast_skill_crpss_rolling{reference="raw",variable="t2m"}',
        'probcast_skill_crpss_rolling{reference="emos",variable="t2m"}',
        'probcast_pit_max_bin_deviation{variable="t2m"}',
        'probcast_monitor_alert{kind="pit",variable="t2m"}',
    ):
        assert name in prom
    assert "## Rolling skill" in (root / "skill.md").read_text()
    # a second run reads no file again: every case had its observation
    assert _skill(root, folder, inputs, state) == 0
    again = json.loads((root / "skill.json").read_text())
    assert again["run"]["files"] == 0 and again["run"]["skipped"] == report["run"]["files"]
    with MonitorState(state) as st:
        assert len(st.cases()) == top["n"]


def test_overconfident_forecasts_raise_alerts(tables):
    root, _, test = tables
    folder, inputs = _issue(root, test, 0.05, "sharp")
    rc = _skill(root, folder, inputs, root / "sharp.sqlite", "--fail-on-alert")
    assert rc == 3
    kinds = {a["kind"] for a in json.loads((root / "skill.json").read_text())["alerts"]}
    assert {"pit", "crpss_emos"} <= kinds
    assert (
        'probcast_monitor_alert{kind="pit",variable="t2m"} 1.0' in (root / "skill.prom").read_text()
    )


def test_drift_command_flags_a_bias(tables, capsys):
    root, train, _ = tables
    train.to_parquet(root / "clean.parquet")
    train.assign(fc_t2m=train["fc_t2m"] + 8.0).to_parquet(root / "faulty.parquet")
    args = ["monitor", "drift", "--reference", str(root / "train.parquet"), "--fail-on-alert",
            "--metrics", str(root / "drift.prom"), "--json", str(root / "drift.json")]  # fmt: skip
    assert main([*args, "--input", str(root / "clean.parquet")]) == 0
    assert main([*args, "--input", str(root / "faulty.parquet")]) == 3
    out = json.loads((root / "drift.json").read_text())
    assert {"kind": "drift_psi", "feature": "fc_t2m"} in out["alerts"]
    assert len(out["cycles"]) == train["init_time"].nunique()
    assert 'probcast_drift_psi{feature="fc_t2m"}' in (root / "drift.prom").read_text()


def test_bad_input_is_one_message(tables, capsys):
    root, _, _ = tables
    rc = main(["monitor", "drift", "--reference", str(root / "nope"), "--input", "x.parquet"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "probcast monitor drift: error:" in err and "nope" in err and "Traceback" not in err
    (root / "bad.yaml").write_text("monitor: {skill: {window_days: soon}}\n")
    rc = main(["monitor", "drift", "--reference", str(root / "train.parquet"), "--input",
               str(root / "obs.parquet"), "--config", str(root / "bad.yaml")])  # fmt: skip
    assert rc == 1
    assert "monitor.skill.window_days: expected a number" in capsys.readouterr().err


def test_grids_are_named_as_such(tmp_path):
    from probcast.monitor.cli import read_tables
    from probcast.products.table_files import read_predictions
    from probcast.testing.grids import forecast_grid

    forecast_grid((3, 4), 1).to_netcdf(tmp_path / "run_parameters.nc")
    with pytest.raises(ValueError, match=r"run_parameters.nc: a gridded product, not a station"):
        read_predictions(tmp_path / "run_parameters.nc")
    with pytest.raises(ValueError, match=r"reads station tables \(CSV/Parquet\), not NetCDF"):
        read_tables([str(tmp_path / "run_parameters.nc")])
