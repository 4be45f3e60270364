"""The README's main job end to end on real data (a short training run)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from probcast import cli
from probcast.bench import demo as pipeline


@pytest.mark.realdata
def test_demo_chain_on_verif_norway(
    mirror: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--skill-table", str(tmp_path / "skill.md")]
    args += ["--config.train.epochs=4", "--config.train.n_seeds=1"]
    args += ["--config.tracking.backend=none"]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    for method in ("raw", "dressing", "emos-global", "emos-local", "probcast"):
        assert method in printed
    run_dir = out / "verif-norway-precip"
    html = (run_dir / "report.html").read_text()
    assert "<img" in html and "http://" not in html.replace("http://www.w3.org", "")
    scores = pd.read_csv(run_dir / "scores.csv")
    overall = scores[(scores["by"] == "all") & (scores["metric"] == "crps")]
    crps = overall.set_index("method")["value"]
    # Every calibrated method must beat the raw forecast on the test split.
    assert crps["probcast"] < crps["raw"] and crps["emos-local"] < crps["raw"]
    assert json.loads((out / "timings.json").read_text())["verif-norway-precip"]["train"] > 0
    table = (tmp_path / "skill.md").read_text()
    assert "| verif-norway-precip | tp |" in table
    # The dataset's own references (raw ensemble, calibrated) are compared in Brier score.
    brier = pd.read_csv(run_dir / "external_brier.csv")
    assert {"raw-ensemble", "calibrated-ref", "probcast"} <= set(brier["method"])
    assert brier["brier"].between(0, 1).all() and "calibrated-ref" in table
    # a rerun with other settings (or an upgrade's defaults) trains again instead of failing
    caplog.set_level("WARNING", logger="probcast.bench.demo")
    assert cli.main([*args[:5], "--config.train.epochs=2", *args[6:]]) == 0
    assert "model was trained with other train: training it again" in caplog.text
    assert json.loads((run_dir / "model" / "config.json").read_text())["train"]["epochs"] == 2


def test_benchmark_names_have_a_split() -> None:
    names = pipeline.benchmark_names()
    assert "verif-norway-precip" in names and "icp-wrf-precip-grid" not in names


def test_config_override_types() -> None:
    overrides = ["--config.train.epochs=7", "--config.model.hidden=16"]
    cfg = pipeline.config_for("verif-norway-precip", overrides)
    assert cfg.train.epochs == 7 and cfg.model.hidden == 16
    assert cfg.data.path == "verif-norway-precip"
    with pytest.raises(ValueError, match="config override"):
        pipeline.config_for("verif-norway-precip", ["--config.train.epochs=seven"])
    with pytest.raises(ValueError, match="config override"):
        pipeline.config_for("verif-norway-precip", ["--config.train.no_such_field=1"])


def test_external_summary_marks_the_best_per_threshold() -> None:
    brier = pd.DataFrame(
        {
            "method": ["ref", "ref", "probcast", "probcast"],
            "threshold": [1.0, 5.0, 1.0, 5.0],
            "n": [10, 10, 10, 10],
            "brier": [0.10, 0.04, 0.08, 0.05],
        }
    )
    text = pipeline.external_summary(brier)
    assert "| ref | 0.1000 | **0.0400** |" in text
    assert "| probcast | **0.0800** | 0.0500 |" in text
