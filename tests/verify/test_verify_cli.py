"""``probcast verify`` end to end on temporary files; the real Norway raw forecast."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from probcast import cli as top_cli
from probcast.testing import verification as syn
from probcast.verify import cli


@pytest.fixture
def files(tmp_path):
    truth, mu, sigma = syn.truth_table(n_stations=3, n_inits=10)
    truth_path = tmp_path / "truth.csv"
    truth.to_csv(truth_path, index=False)
    ens_path = tmp_path / "ens.parquet"
    syn.members_table(truth, mu, sigma, n_members=6).to_parquet(ens_path)
    emos_path = tmp_path / "emos.parquet"
    syn.normal_params_table(truth, mu, sigma).to_parquet(emos_path)
    (tmp_path / "emos.json").write_text(json.dumps({"families": {"t2m": "normal"}}))
    return truth_path, ens_path, emos_path, tmp_path / "out"


def test_cli_writes_scores_and_report(files, capsys):
    truth, ens, emos, out = files
    rc = cli.main([
        f"--truth={truth}", "--forecast", f"raw={truth}", "--forecast", f"ens={ens}",
        "--forecast", f"emos={emos}", "--reference=raw", f"--out={out}",
        "--by", "lead_time,station", "--thresholds", "t2m:280,285", "--n-boot", "50",
    ])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "crpss" in printed and "emos" in printed and "report.html" in printed
    assert {p.name for p in out.iterdir()} == {"scores.csv", "scores.json", "report.html"}
    doc = json.loads((out / "scores.json").read_text())
    assert doc["meta"]["reference"] == "raw"
    assert doc["meta"]["forms"]["emos"]["t2m"]["kind"] == "params"
    assert doc["meta"]["thresholds"]["t2m"] == [280.0, 285.0]
    assert set(doc["diagnostics"]) == {"raw", "ens", "emos"}
    s = pd.read_csv(out / "scores.csv", dtype={"key": str})
    crpss = s[(s.by == "all") & (s.metric == "crpss")].set_index("method")["value"]
    assert crpss["emos"] > 0 and crpss["ens"] > 0
    assert set(s.by) == {"all", "lead_time", "station"}


def test_dispatcher_and_family_flag(files, capsys):
    truth, _, emos, out = files
    (emos.parent / "emos.json").unlink()
    rc = top_cli.main(["verify", f"--truth={truth}", f"--forecast=emos={emos}", f"--out={out}"])
    assert rc == 1
    assert "no family was given" in capsys.readouterr().err
    rc = cli.main(
        [f"--truth={truth}", f"--forecast=emos={emos}", f"--out={out}", "--family=t2m=normal"]
    )
    assert rc == 0


def test_cli_usage_errors(files, capsys):
    truth, ens, _, out = files
    assert cli.main([f"--truth={truth}", "--forecast=ens=", f"--out={out}"]) == 2
    assert "--forecast: expected [NAME=]FILE" in capsys.readouterr().err
    assert cli.main([f"--truth={truth}", f"--forecast=e={ens}", f"--out={out}",
                     "--thresholds=t2m"]) == 2  # fmt: skip
    rc = cli.main([f"--truth={truth}", f"--forecast=e={ens}", f"--out={out}", "--reference=x"])
    assert rc == 2 and "reference 'x'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["--out=x"])


@pytest.mark.realdata
def test_norway_raw_forecast(mirror, tmp_path, capsys):
    from probcast.data import prepare

    if "verif-norway-precip" not in prepare.preparable():
        pytest.skip("verif-norway-precip converter not registered")
    prep = prepare.prepare("verif-norway-precip", out_dir=tmp_path / "prep")
    test_path = prep.paths["test"]
    out = tmp_path / "verif"
    rc = cli.main([
        f"--truth={test_path}", f"--forecast=raw={test_path}", f"--out={out}",
        "--by=lead_time,station", "--thresholds=tp:0.1,1,5", "--n-boot=20",
    ])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    test = prep.test
    ok = test["fc_tp"].notna() & test["obs_tp"].notna()
    mae = float(np.mean(np.abs(test.loc[ok, "fc_tp"] - test.loc[ok, "obs_tp"])))
    s = pd.read_csv(out / "scores.csv", dtype={"key": str})
    overall = s[(s.by == "all") & (s.variable == "tp")].set_index("metric")["value"]
    assert overall["n"] == ok.sum() and overall["n_dropped"] == (~ok).sum()
    assert overall["crps"] == pytest.approx(mae, rel=1e-6)  # point forecast: CRPS = MAE
    assert 0.05 < overall["crps"] < 5.0  # mm per 6 h
    assert 0.0 <= overall["brier_1"] <= 1.0
    assert s[s.by == "station"]["key"].nunique() > 100
    assert (out / "report.html").stat().st_size > 10_000
