"""What ``probcast monitor`` reads: units, folders, bad cells, options (the audit's findings)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from probcast.cli import main
from probcast.dists import Predictive
from probcast.monitor import skill
from probcast.monitor.tables import coerce_table, read_forecasts, read_tables
from probcast.products.table import predictive_table
from probcast.products.table_files import write_predictions
from probcast.products.units import table_to_units
from probcast.testing.pushgateway import stand_in
from probcast.testing.stations import station_table
from probcast.validate import ValidationError

SPLIT = pd.Timestamp("2021-01-09", tz="UTC")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    table = station_table(n_stations=12, n_inits=16, targets=("t2m",), seed=7)
    train, test = table[table.init_time < SPLIT], table[table.init_time >= SPLIT]
    train.to_parquet(root / "train.parquet")
    test.to_parquet(root / "obs.parquet")
    test.drop(columns=["obs_t2m"]).to_parquet(root / "inputs.parquet")
    return root, test


def _forecast(rows: pd.DataFrame, scale: float = 1.0) -> tuple[pd.DataFrame, dict[str, str]]:
    fc = Predictive.from_params(
        "t2m", "normal", {"loc": rows["fc_t2m"].to_numpy(), "scale": np.full(len(rows), scale)}
    )
    return predictive_table(rows[["station", "init_time", "lead_time", "valid_time"]], [fc])


def _publish(root, test, name, units=None, layout="{cycle:%Y%m%d%H}/pred.parquet"):
    """One prediction file per cycle under ``root/name`` (``units``: as predict --units)."""
    for cycle, rows in test.groupby("init_time"):
        frame, fams = _forecast(rows)
        frame, meta = table_to_units(frame, units, fams)
        path = root / name / layout.format(cycle=cycle)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_predictions(frame, path, families=fams, metadata=meta)
    return root / name


def _skill(root, forecasts, name, *extra):
    return main(
        [
            "monitor", "skill", "--forecasts", *map(str, forecasts), "--observations",
            str(root / "obs.parquet"), "--inputs", str(root / "inputs.parquet"),
            "--state", str(root / f"{name}.sqlite"), "--window", "30",
            "--json", str(root / f"{name}.json"), "--metrics", str(root / f"{name}.prom"),
            *extra,
        ]
    )  # fmt: skip


def _top(root, name):
    report = json.loads((root / f"{name}.json").read_text())
    return report, report["groups"][0]


def test_forecasts_in_user_units_are_scored_in_canonical_units(data):
    """Finding 1: a --units degC product scored against kelvin observations."""
    root, test = data
    canonical = _publish(root, test, "pub_k")
    celsius = _publish(root, test, "pub_c", units={"t2m": "degC"})
    assert _skill(root, [canonical], "k") == 0
    assert _skill(root, [celsius], "c") == 0
    (k_report, k), (c_report, c) = _top(root, "k"), _top(root, "c")
    assert c["n"] == k["n"] > 0
    assert c["crps"] == pytest.approx(k["crps"], rel=1e-6)
    assert c["crpss_raw"] == pytest.approx(k["crpss_raw"], abs=1e-6) and k["crpss_raw"] > 0
    assert c_report["alerts"] == k_report["alerts"]
    assert "crpss_raw" not in {a["kind"] for a in c_report["alerts"]}


def test_emos_forecasts_in_user_units_are_converted(data):
    """Finding 1: --emos-forecasts written with --units."""
    root, test = data
    forecasts = _publish(root, test, "pub_e")
    frame, fams = _forecast(test, scale=2.0)  # a wider "EMOS"
    write_predictions(frame, root / "emos_k.parquet", families=fams)
    frame_c, meta = table_to_units(frame, {"t2m": "degC"}, fams)
    write_predictions(frame_c, root / "emos_c.csv", families=fams, metadata=meta)
    assert _skill(root, [forecasts], "ek", "--emos-forecasts", str(root / "emos_k.parquet")) == 0
    assert _skill(root, [forecasts], "ec", "--emos-forecasts", str(root / "emos_c.csv")) == 0
    ek, ec = _top(root, "ek")[1], _top(root, "ec")[1]
    assert np.isfinite(ek["crpss_emos"]) and abs(ek["crpss_emos"]) < 0.5
    assert ec["crpss_emos"] == pytest.approx(ek["crpss_emos"], abs=1e-6)
    table, _ = read_forecasts(root / "emos_c.csv")
    assert table["t2m_loc"].to_numpy() == pytest.approx(frame["t2m_loc"].to_numpy())


def test_the_default_publish_layout_is_found(data, tmp_path):
    """Finding 3: ``published/`` with one folder per cycle (``{cycle:%Y%m%d%H}/{name}``)."""
    root, test = data
    published = _publish(root, test, "published")
    (published / ".hidden").mkdir()
    (published / ".hidden" / "x.parquet").write_text("not a table")
    (published / "2021010900" / ".pred.parquet.tmp-1-x").write_text("temporary")
    found = skill.forecast_files([published])
    assert len(found) == test["init_time"].nunique()
    assert all(p.name == "pred.parquet" for p in found)
    assert _skill(root, [published], "pub") == 0
    assert _top(root, "pub")[1]["n"] == len(test)


def test_no_forecast_file_is_an_error(data, tmp_path, capsys):
    """Finding 3: an empty or wrong folder is not 'all fine, 0 cases'."""
    root, _ = data
    (tmp_path / "empty" / "2021010900").mkdir(parents=True)
    (tmp_path / "empty" / "2021010900" / "notes.txt").write_text("x")
    assert _skill(root, [tmp_path / "empty"], "none") == 1
    err = capsys.readouterr().err
    assert "empty: no forecast file found" in err and "Traceback" not in err
    assert not (root / "none.json").exists()


@pytest.mark.parametrize("window", ["0", "-3", "nan", "inf"])
def test_window_must_be_positive(data, window, capsys):
    """Finding 6: --window is checked like window_days in the file."""
    root, _ = data
    assert _skill(root, [root / "obs.parquet"], "w", f"--window={window}") == 1
    assert "--window: expected a" in capsys.readouterr().err
    assert not (root / "w.json").exists()


def test_metrics_file_must_end_with_prom(data, capsys):
    root, _ = data
    rc = main(["monitor", "drift", "--reference", str(root / "train.parquet"), "--input",
               str(root / "inputs.parquet"), "--metrics", str(root / "drift.txt")])  # fmt: skip
    assert rc == 1
    assert "--metrics must end with .prom" in capsys.readouterr().err
    assert not (root / "drift.txt").exists()


def _bad_csv(tmp_path, column, value, name="bad.csv"):
    table = station_table(n_stations=2, n_inits=2, targets=("t2m",), seed=1)
    table[column] = table[column].astype(object)
    table.loc[3, column] = value
    path = tmp_path / name
    table.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        ("obs_t2m", "M", r"column 'obs_t2m' .*non-numeric value\(s\), e\.g\. 'M'"),
        ("fc_t2m", "n/a?", r"column 'fc_t2m' .*non-numeric"),
        ("valid_time", "yesterday", r"column 'valid_time': 1 value\(s\) are not parseable"),
        ("lead_time", "soon", r"column 'lead_time': 1 value\(s\) are neither hours nor"),
        ("latitude", "north", r"column 'latitude' .*non-numeric"),
    ],
)
def test_bad_cells_name_the_file_and_column(tmp_path, column, value, expected):
    """Finding 7: one message naming the file, the column and what was expected."""
    path = _bad_csv(tmp_path, column, value)
    with pytest.raises(ValidationError, match=rf"^{tmp_path}/bad\.csv: {expected}"):
        read_tables([path])


def test_bad_observations_stop_the_skill_command(data, tmp_path, capsys):
    _, test = data
    forecasts = _publish(tmp_path, test, "pub")
    bad = _bad_csv(tmp_path, "obs_t2m", "M")
    rc = main(["monitor", "skill", "--forecasts", str(forecasts), "--observations",
               str(bad), "--state", str(tmp_path / "s.sqlite")])  # fmt: skip
    assert rc == 1
    err = capsys.readouterr().err
    assert f"{bad}: column 'obs_t2m'" in err and "Traceback" not in err


def test_lead_times_as_durations_are_hours(tmp_path):
    table = station_table(n_stations=2, n_inits=2, targets=("t2m",), seed=1)
    table["lead_time"] = [f"{h:g}h" for h in table["lead_time"]]
    out = coerce_table(table.drop(columns=["valid_time"]), "x.csv")
    assert out["lead_time"].tolist() == [6.0, 12.0, 24.0] * 4


def test_bad_forecast_files_name_the_file(data, tmp_path):
    _, test = data
    frame, fams = _forecast(test.head(6))
    frame["t2m_loc"] = frame["t2m_loc"].astype(object)
    frame.loc[2, "t2m_loc"] = "oops"
    write_predictions(frame, tmp_path / "p.csv", families=fams)
    with pytest.raises(ValueError, match=rf"{tmp_path}/p\.csv: column 't2m_loc' .*'oops'"):
        read_forecasts(tmp_path / "p.csv")
    frame, fams = _forecast(test.head(6))
    frame["lead_time"] = "six"
    write_predictions(frame, tmp_path / "q.csv", families=fams)
    with pytest.raises(
        ValueError, match=rf"^{tmp_path}/q\.csv: column 'lead_time': expected hours"
    ):
        read_forecasts(tmp_path / "q.csv")


def test_metrics_pushed_to_a_pushgateway(data):
    # audit: the Kubernetes monitor CronJob had no way to hand its alerts to Prometheus
    root, _ = data
    args = ["monitor", "drift", "--reference", str(root / "train.parquet"), "--input",
            str(root / "inputs.parquet")]  # fmt: skip
    with stand_in() as (url, gateway):
        assert main([*args, "--pushgateway", url]) == 0
    got = gateway.received
    _, path, body = got[0]
    assert path.startswith("/metrics/job/probcast_monitor_drift/instance/")
    assert "probcast_monitor_alert" in body
    # an unreachable gateway is an error: the alerts would not reach Prometheus
    assert main([*args, "--pushgateway", url]) == 1
