"""When a case, a file, a check or an alert counts as done (the audit's findings 2, 4 and 5)."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from probcast.cli import main
from probcast.dists import Predictive
from probcast.monitor import metrics, skill
from probcast.monitor.config import SkillConfig
from probcast.monitor.state import MonitorState
from probcast.products.table import predictive_table
from probcast.products.table_files import write_predictions
from probcast.testing.stations import station_table

RULES = Path(__file__).resolve().parents[2] / "deploy" / "monitoring" / "rules.yml"


@pytest.fixture(scope="module")
def cycles(tmp_path_factory):
    """Forecasts of t2m and tp, one file per cycle, and the full observation table."""
    root = tmp_path_factory.mktemp("checks")
    table = station_table(n_stations=6, n_inits=6, targets=("t2m", "tp"), seed=3)
    for cycle, rows in table.groupby("init_time"):
        t2m = Predictive.from_params(
            "t2m", "normal", {"loc": rows["fc_t2m"].to_numpy(), "scale": np.full(len(rows), 2.0)}
        )
        tp = Predictive.from_members("tp", rows[["fc_tp"]].to_numpy() * [[1.0]])
        keys = rows[["station", "init_time", "lead_time", "valid_time"]]
        frame, fams = predictive_table(keys, [t2m, tp])
        write_predictions(frame, root / f"pred_{cycle:%Y%m%d%H}.parquet", families=fams)
    return root, skill.observation_table(table), table


def _update(root, state_path, obs, grace=10.0):
    with MonitorState(state_path) as state:
        counts = skill.update(
            state,
            skill.forecast_files([root]),
            obs,
            skill.References(),
            SkillConfig(obs_grace_days=grace),
        )
        return counts, len(state.cases())


def test_nan_observations_keep_the_file_open(cycles, tmp_path):
    """Finding 2: a table kept current with NaN for not-yet-observed times."""
    root, obs, table = cycles
    cut = obs["valid_time"].sort_values().iloc[len(obs) // 2]
    early = obs.copy()
    early.loc[early["valid_time"] > cut, ["obs_t2m", "obs_tp"]] = np.nan
    counts, n = _update(root, tmp_path / "s.sqlite", early)
    waiting = 2 * int((table["valid_time"] > cut).sum())
    assert counts["pending"] == waiting > 0 and counts["unobserved"] == 0
    counts, n_all = _update(root, tmp_path / "s.sqlite", obs)  # the values arrive
    assert n_all == 2 * len(table) > n
    assert counts["pending"] == 0
    counts, _ = _update(root, tmp_path / "s.sqlite", obs)  # now every file is done
    assert counts["files"] == 0 and counts["skipped"] == table["init_time"].nunique()


def test_a_variable_without_observations_waits(cycles, tmp_path):
    """Finding 2: forecasts of tp, observations of t2m only: tp is pending, not dropped."""
    root, obs, table = cycles
    counts, n = _update(root, tmp_path / "s.sqlite", obs.drop(columns=["obs_tp"]))
    assert n == len(table) and counts["pending"] == len(table)
    counts, n = _update(root, tmp_path / "s.sqlite", obs)
    assert n == 2 * len(table) and counts["pending"] == 0


def test_cases_never_observed_are_given_up_after_the_grace_period(cycles, tmp_path, caplog):
    root, obs, table = cycles
    silent = obs.copy()
    silent.loc[silent["station"] == "ST000", "obs_t2m"] = np.nan  # a station that never reports
    never = int((table["station"] == "ST000").sum())
    counts, _ = _update(root, tmp_path / "a.sqlite", silent, grace=30.0)
    assert counts["pending"] == never and counts["unobserved"] == 0
    caplog.set_level(logging.WARNING, logger="probcast.monitor.skill")
    counts, n = _update(root, tmp_path / "b.sqlite", silent, grace=0.5)
    # the last cycle's file still waits for its 12 and 24 h cases (within 12 h of the newest
    # observation); every other file is done, its ST000 cases given up
    silent_rows = table["station"] == "ST000"
    last = silent_rows & (table["init_time"] == table["init_time"].max())
    late = silent_rows & (table["valid_time"] >= obs["valid_time"].max() - pd.Timedelta(hours=12))
    assert counts["unobserved"] == never - int(last.sum()) > 0
    assert counts["pending"] == int(late.sum()) == 2
    assert "never observed" in caplog.text
    assert n == 2 * len(table) - never
    counts, _ = _update(root, tmp_path / "b.sqlite", silent, grace=0.5)
    assert counts["files"] == 1 and counts["skipped"] == table["init_time"].nunique() - 1


def _skill_cli(root, obs_path, name, *extra):
    return main(
        [
            "monitor", "skill", "--forecasts", str(root), "--observations", str(obs_path),
            "--state", str(root.parent / f"{name}.sqlite"), "--window", "30",
            "--json", str(root.parent / f"{name}.json"),
            "--metrics", str(root.parent / f"{name}.prom"), *extra,
        ]
    )  # fmt: skip


def test_unmade_checks_export_no_clear_gauge(cycles, tmp_path, caplog):
    """Finding 5: no raw forecast, no EMOS, too few cases: no 0 'checked and clear'."""
    root, _, table = cycles
    table.to_parquet(tmp_path / "obs.parquet")
    (tmp_path / "few.yaml").write_text("monitor: {skill: {min_cases: 100000}}\n")
    caplog.set_level(logging.WARNING, logger="probcast.monitor.cli")
    folder = tmp_path / "fc"
    folder.symlink_to(root, target_is_directory=True)
    assert _skill_cli(folder, tmp_path / "obs.parquet", "few", "--config",
                      str(tmp_path / "few.yaml")) == 0  # fmt: skip
    prom = (tmp_path / "few.prom").read_text()
    assert "probcast_monitor_alert{" not in prom
    for name in ("probcast_skill_crpss_rolling{", "probcast_pit_max_bin_deviation{"):
        assert name not in prom
    assert 'probcast_skill_cases_rolling{variable="t2m"}' in prom
    assert "crpss_raw not evaluated for t2m: no raw forecast fc_t2m" in caplog.text
    assert "crpss_emos not evaluated for t2m: no EMOS reference" in caplog.text
    report = json.loads((tmp_path / "few.json").read_text())
    skipped = {(c["kind"], c["variable"]) for c in report["not_evaluated"]}
    assert {("pit", "t2m"), ("nwp_bias", "tp"), ("crpss_raw", "tp")} <= skipped
    # enough cases: the PIT check is made (0 or 1), the reference checks still are not
    assert _skill_cli(folder, tmp_path / "obs.parquet", "many") == 0
    prom = (tmp_path / "many.prom").read_text()
    assert re.search(r'probcast_monitor_alert\{kind="pit",variable="t2m"\} [01]', prom) is None
    (tmp_path / "some.yaml").write_text("monitor: {skill: {min_cases: 10}}\n")
    assert _skill_cli(folder, tmp_path / "obs.parquet", "some", "--config",
                      str(tmp_path / "some.yaml")) == 0  # fmt: skip
    prom = (tmp_path / "some.prom").read_text()
    assert re.search(r'probcast_monitor_alert\{kind="pit",variable="t2m"\} [01]', prom)
    assert 'kind="crpss_raw"' not in prom and 'kind="nwp_bias"' not in prom


def _drift(root, frame, name, *extra):
    path = root / f"{name}.parquet"
    frame.to_parquet(path)
    return main(
        [
            "monitor", "drift", "--reference", str(root / "train.parquet"), "--input", str(path),
            "--json", str(root / f"{name}.json"), "--metrics", str(root / f"{name}.prom"),
            *extra,
        ]
    )  # fmt: skip


@pytest.fixture(scope="module")
def train(tmp_path_factory):
    root = tmp_path_factory.mktemp("drift")
    table = station_table(n_stations=20, n_inits=20, targets=("t2m",), seed=5)
    table.to_parquet(root / "train.parquet")
    return root, table


def test_missing_or_empty_features_alert(train, capsys):
    """Finding 5: an absent or all-NaN feature is an alert, not psi=nan and alert 0."""
    root, table = train
    assert _drift(root, table.drop(columns=["fc_ws10"]), "absent", "--fail-on-alert") == 3
    assert _drift(root, table.assign(fc_t2m=np.nan), "nan", "--fail-on-alert") == 3
    for name, feature in (("absent", "fc_ws10"), ("nan", "fc_t2m")):
        report = json.loads((root / f"{name}.json").read_text())
        assert {"kind": "missing_feature", "feature": feature} in report["alerts"]
        assert report["missing_features"] == [feature]
        prom = (root / f"{name}.prom").read_text()
        assert f'probcast_monitor_alert{{kind="missing_feature",variable="{feature}"}} 1.0' in prom
        assert f'probcast_drift_rows{{feature="{feature}"}} 0.0' in prom
        assert f'probcast_monitor_alert{{kind="drift_psi",variable="{feature}"}}' not in prom
        assert f'probcast_drift_psi{{feature="{feature}"}}' not in prom
    assert "fc_t2m           n=0       missing" in capsys.readouterr().out
    assert _drift(root, table, "clean", "--fail-on-alert") == 0
    prom = (root / "clean.prom").read_text()
    assert 'probcast_monitor_alert{kind="missing_feature",variable="fc_t2m"} 0.0' in prom


def test_renamed_columns_are_an_error(train, capsys):
    root, table = train
    renamed = table.rename(columns=lambda c: c.upper() if c.startswith("fc_") else c)
    renamed = renamed.drop(columns=["latitude", "longitude", "altitude"])
    assert _drift(root, renamed, "renamed") == 1
    err = capsys.readouterr().err
    assert "renamed.parquet: none of the reference features is an input column" in err
    assert not (root / "renamed.prom").exists()


def test_small_samples_are_reported_not_judged(train):
    """Below min_rows: no PSI/KS gauge, no drift alert gauge; the row count says why."""
    root, table = train
    assert _drift(root, table.head(30).assign(fc_t2m=lambda t: t["fc_t2m"] + 50), "small") == 0
    prom = (root / "small.prom").read_text()
    assert 'probcast_drift_rows{feature="fc_t2m"} 30.0' in prom
    assert "probcast_drift_psi{" not in prom and 'kind="drift_psi"' not in prom
    assert 'probcast_monitor_alert{kind="missing_feature",variable="fc_t2m"} 0.0' in prom


def _kinds(expr: str) -> set[str] | None:
    """The kinds an alert rule's expression selects from probcast_monitor_alert."""
    m = re.search(r'probcast_monitor_alert\{kind(=~?)"([^"]*)"\}', expr)
    if m is None:
        return None
    return set(m.group(2).split("|")) if m.group(1) == "=~" else {m.group(2)}


def test_every_monitor_alert_kind_reaches_alertmanager():
    """Finding 4: each kind the monitor emits has exactly one rule, on its decision."""
    rules = [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]
    covered: dict[str, list[str]] = {}
    for rule in rules:
        kinds = _kinds(rule["expr"])
        if kinds is not None:
            assert rule["expr"].strip().endswith("== 1"), rule["alert"]
            for kind in kinds:
                covered.setdefault(kind, []).append(rule["alert"])
    assert set(covered) == set(metrics.ALERT_KINDS)
    assert all(len(names) == 1 for names in covered.values()), covered
    # thresholds live in the monitor: block, not in fixed comparisons of its statistics
    for rule in rules:
        for name in ("probcast_drift_", "probcast_skill_crpss", "probcast_pit_", "probcast_nwp_"):
            assert name not in rule["expr"], rule["alert"]
