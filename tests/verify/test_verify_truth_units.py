"""A truth in other units than the canonical ones is converted by what it records, or refused.

A truth file written with units (``write_predictions(..., units=...)``, as ``probcast
predict --units`` writes tables) is scored in canonical units in every format (CSV with its
sidecar, Parquet, NetCDF); a truth DataFrame is converted by ``attrs["probcast_units"]`` and
validated as a file is (a degC truth given as K is refused, never scored).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import probcast
from probcast.products.table_files import write_predictions
from probcast.products.table_sidecar import sidecar_path
from probcast.products.units import UNITS_ATTR, table_to_units
from probcast.testing import verification as syn
from probcast.verify import cli
from probcast.verify.evaluate import verify

FAST: dict[str, Any] = {"n_boot": 0, "multivariate": False}


@pytest.fixture(scope="module")
def cases() -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """A canonical truth (t2m in K), a members forecast, and its canonical CRPS."""
    truth, mu, sigma = syn.truth_table(n_stations=3, n_inits=6)
    members = syn.members_table(truth, mu, sigma, n_members=6)
    crps = verify(truth, {"ens": members}, **FAST).value("ens", "t2m", "crps")
    return truth, members, crps


@pytest.fixture(scope="module")
def tp_cases() -> tuple[pd.DataFrame, pd.DataFrame, float]:
    """The same with precipitation: the truth in cm would pass the range check (silent)."""
    truth, mu, sigma = syn.truth_table(n_stations=3, n_inits=6, variable="tp")
    truth["obs_tp"] = np.abs(truth["obs_tp"] - 280.0)  # kg m-2, in the range in cm too
    truth["fc_tp"] = np.abs(truth["fc_tp"] - 280.0)
    members = syn.members_table(truth, np.abs(mu - 280.0), sigma, n_members=6, variable="tp")
    members[[c for c in members if c.startswith("tp_m")]] = members.filter(like="tp_m").abs()
    crps = verify(truth, {"ens": members}, **FAST).value("ens", "tp", "crps")
    return truth, members, crps


def _cli_crps(truth: Path, forecast: Path, out: Path, var: str = "t2m") -> float:
    argv = [f"--truth={truth}", "--forecast", f"ens={forecast}", f"--out={out}", "--n-boot=0"]
    assert cli.main(argv) == 0
    scores = pd.read_csv(out / "scores.csv")
    hit = scores[(scores.metric == "crps") & (scores.by == "all") & (scores.variable == var)]
    return float(hit["value"].iloc[0])  # scores.csv: 8 significant digits


@pytest.mark.parametrize("suffix", ["csv", "parquet", "nc"])
def test_cli_converts_a_truth_file_written_in_degc(cases, tmp_path: Path, suffix: str):
    truth, members, crps = cases
    user, _ = table_to_units(truth, {"t2m": "degC"}, {})
    assert user["obs_t2m"].max() < 100  # degC values, outside the physical range in K
    path = write_predictions(user, tmp_path / f"truth.{suffix}", units={"t2m": "degC"})
    members.to_parquet(tmp_path / "ens.parquet")
    got = _cli_crps(path, tmp_path / "ens.parquet", tmp_path / "out")
    assert got == pytest.approx(crps, rel=1e-7)
    meta = json.loads((tmp_path / "out" / "scores.json").read_text())["meta"]
    assert meta["truth_units"]["units"] == {"t2m": "degC"}


@pytest.mark.parametrize("suffix", ["csv", "parquet", "nc"])
def test_truth_in_cm_is_not_scored_as_kg_m2(tp_cases, tmp_path: Path, suffix: str):
    """cm values fit the physical range of kg m-2: only the metadata tells them apart."""
    truth, members, crps = tp_cases
    cm = truth.copy()
    cm[["obs_tp", "fc_tp"]] = cm[["obs_tp", "fc_tp"]] / 10.0
    path = write_predictions(cm, tmp_path / f"truth.{suffix}", units={"tp": "cm"})
    members.to_parquet(tmp_path / "ens.parquet")
    got = _cli_crps(path, tmp_path / "ens.parquet", tmp_path / "out", "tp")
    assert got == pytest.approx(crps, rel=1e-7)
    ver = probcast.evaluate(path, {"ens": members}, **FAST)  # a path, read alike
    assert ver.value("ens", "tp", "crps") == pytest.approx(crps, rel=1e-9)


def test_truth_csv_with_a_hand_written_units_sidecar(tp_cases, tmp_path: Path):
    truth, members, crps = tp_cases
    cm = truth.copy()
    cm["obs_tp"] = cm["obs_tp"] / 10.0
    cm.to_csv(tmp_path / "truth.csv", index=False)
    (tmp_path / "truth.csv.json").write_text(json.dumps({"units": {"tp": "cm"}}))
    members.to_parquet(tmp_path / "ens.parquet")
    got = _cli_crps(tmp_path / "truth.csv", tmp_path / "ens.parquet", tmp_path / "out", "tp")
    assert got == pytest.approx(crps, rel=1e-7)


def test_truth_csv_whose_sidecar_belongs_to_another_csv_is_refused(cases, tmp_path, capsys):
    truth, members, _ = cases
    user, _ = table_to_units(truth, {"t2m": "degC"}, {})
    path = write_predictions(user, tmp_path / "truth.csv", units={"t2m": "degC"})
    user.iloc[:-1].to_csv(path, index=False)  # another CSV beside the old sidecar
    assert sidecar_path(path).exists()
    members.to_parquet(tmp_path / "ens.parquet")
    argv = [f"--truth={path}", f"--forecast=ens={tmp_path / 'ens.parquet'}", "--n-boot=0"]
    assert cli.main([*argv, f"--out={tmp_path / 'out'}"]) == 1
    assert "belongs to another version" in capsys.readouterr().err


def test_truth_without_units_metadata_is_canonical(cases, tmp_path: Path):
    truth, members, crps = cases
    write_predictions(truth, tmp_path / "truth.parquet")  # metadata, but no units
    truth.to_csv(tmp_path / "plain.csv", index=False)  # no sidecar
    members.to_parquet(tmp_path / "ens.parquet")
    for i, name in enumerate(("truth.parquet", "plain.csv")):
        got = _cli_crps(tmp_path / name, tmp_path / "ens.parquet", tmp_path / f"o{i}")
        assert got == pytest.approx(crps, rel=1e-7)
        meta = json.loads((tmp_path / f"o{i}" / "scores.json").read_text())["meta"]
        assert "truth_units" not in meta


def test_evaluate_refuses_a_degc_truth_frame(cases):
    truth, members, _ = cases
    degc = truth.assign(obs_t2m=truth["obs_t2m"] - 273.15)
    with pytest.raises(ValueError, match=r"outside the physical range.*'degC'"):
        probcast.evaluate(degc, {"ens": members}, **FAST)


def test_evaluate_converts_a_truth_frame_by_its_recorded_units(cases):
    truth, members, crps = cases
    user, meta = table_to_units(truth, {"t2m": "degC"}, {})
    assert user.attrs[UNITS_ATTR] == meta
    ver = probcast.evaluate(user, {"ens": members}, **FAST)
    assert ver.value("ens", "t2m", "crps") == pytest.approx(crps, rel=1e-9)
    assert user["obs_t2m"].max() < 100  # the caller's frame is left as it was


def test_evaluate_refuses_unknown_recorded_truth_units(cases):
    truth, members, _ = cases
    bad = truth.copy()
    bad.attrs[UNITS_ATTR] = {"units": {"t2m": "furlongs"}}
    with pytest.raises(ValueError, match="truth"):
        probcast.evaluate(bad, {"ens": members}, **FAST)
