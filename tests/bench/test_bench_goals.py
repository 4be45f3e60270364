"""The skill goals of benchmarks/skill.md: paired gain over the best classical method, counts."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from probcast.bench import goals, skill_table


def _cases(ratios: dict[str, np.ndarray], n_dates: int = 12) -> dict[tuple[str, str], pd.DataFrame]:
    """Per-case CRPS of each method: ``ratio`` x a common per-case CRPS, 4 cases per date."""
    rng = np.random.default_rng(0)
    inits = pd.date_range("2024-01-01", periods=n_dates, freq="D", tz="UTC").repeat(4)
    base = rng.gamma(2.0, 1.0, inits.size)
    keys = pd.DataFrame(
        {"station": np.tile(list("abcd"), n_dates), "init_time": inits, "lead_time": 6.0}
    )
    return {(m, "t2m"): keys.assign(crps=base * r) for m, r in ratios.items()}


def _scores(cases: dict[tuple[str, str], pd.DataFrame], **extra: float) -> pd.DataFrame:
    rows = [(m, v, "all", "all", "crps", float(f["crps"].mean())) for (m, v), f in cases.items()]
    rows += [("probcast", "t2m", "all", "all", k, val) for k, val in extra.items()]
    return pd.DataFrame(rows, columns=["method", "variable", "by", "key", "metric", "value"])


def test_versus_best_classical_is_paired_against_the_lowest_crps() -> None:
    n = 48
    cases = _cases(
        {
            "dressing": np.full(n, 1.3),
            "emos-global": np.full(n, 1.1),
            "emos-local": np.full(n, 1.0),
            "probcast": np.full(n, 0.9),
        }
    )
    scores = _scores(cases)
    assert goals.best_classical(scores, "t2m") == "emos-local"
    out = goals.versus_best_classical(cases, scores).set_index("metric")["value"]
    # a constant ratio: every bootstrap replicate gives the same skill
    assert out[goals.VERSUS] == pytest.approx(0.1)
    assert out[f"{goals.VERSUS}_lo"] == pytest.approx(0.1)
    assert out[f"{goals.VERSUS}_hi"] == pytest.approx(0.1)


def test_a_loss_within_noise_has_an_interval_across_zero() -> None:
    rng = np.random.default_rng(1)
    n = 48
    per_date = rng.normal(0.0, 0.15, n // 4)
    noisy = np.repeat(per_date - per_date.mean() + 1.01, 4)  # date-level noise, about 1 % worse
    cases = _cases({"dressing": np.ones(n), "emos-local": np.full(n, 1.2), "probcast": noisy})
    scores = pd.concat([_scores(cases), goals.versus_best_classical(cases, _scores(cases))])
    b = goals.bar_check(scores, "t2m", train_days=30)
    assert b["best"] == "dressing"
    assert b["gain_lo"] < 0 < b["gain_hi"]
    assert b["never_worse"] == (b["gain"] >= 0)
    assert not b["long"] and not b["checks"]["crps"]


def test_scores_without_paired_rows_say_their_gain_is_unpaired() -> None:
    n = 48
    cases = _cases(
        {"dressing": np.ones(n), "emos-local": np.full(n, 1.2), "probcast": np.full(n, 0.9)}
    )
    paired = goals.bar_check(
        pd.concat([_scores(cases), goals.versus_best_classical(cases, _scores(cases))]), "t2m"
    )
    unpaired = goals.bar_check(_scores(cases), "t2m")
    assert paired["paired"] and not unpaired["paired"]
    assert unpaired["gain"] == pytest.approx(paired["gain"]) == pytest.approx(0.1)
    assert math.isnan(unpaired["gain_lo"])


def _check(
    gain: float, pit: float = 0.02, ssr: float = 1.0, days: float = 400, ci: float = 0.05
) -> dict:
    return {
        "never_worse": gain >= 0,
        "long": days >= goals.LONG_TRAINING_DAYS,
        "pit_noise": 0.01,
        "ssr_lo": ssr - ci,
        "ssr_hi": ssr + ci,
        "checks": {
            "crps": gain >= goals.BAR_CRPS_GAIN,
            "pit": pit <= 0.03,
            "ssr": 0.9 <= ssr <= 1.1,
        },
    }


def test_summary_counts_each_goal() -> None:
    checked = [_check(0.08), _check(0.06, days=20), _check(-0.01, pit=0.05, days=20)]
    lines = goals.summary(checked)
    assert "Goal 1" in lines[0] and "2 of 3 (not met)" in lines[0]
    # two of three reach 5 % (needs 2) and the one long-trained target does: met
    assert "2 of 3 (needs 2)" in lines[1] and "1 of 1 (met)" in lines[1]
    assert "on 2 of 3" in lines[2] and "(not met)" in lines[2]
    assert goals.summary([]) == []


def test_summary_counts_spread_skill_ratios_whose_interval_reaches_the_bar() -> None:
    # 0.7 +- 0.1 misses 0.9-1.1 beyond sampling noise; 0.7 +- 0.3 and 1.0 +- 0.05 reach it
    checked = [_check(0.08), _check(0.08, ssr=0.7, ci=0.1), _check(0.08, ssr=0.7, ci=0.3)]
    line = goals.summary(checked)[2]
    assert "spread-skill 0.9-1.1 on 1 of 3, its 95 % interval reaching 0.9-1.1 on 2" in line


def test_render_has_goal_columns_and_pit_histograms(tmp_path: Path) -> None:
    n = 48
    cases = _cases({"dressing": np.ones(n), "emos-local": np.full(n, 1.2), "probcast": np.ones(n)})
    scores = _scores(cases, crpss=0.3, crpss_lo=0.2, crpss_hi=0.4, pit_max_dev=0.02)
    spread = dict(spread_skill=0.84, spread_skill_lo=0.7, spread_skill_hi=0.95)
    dressing = pd.DataFrame(
        [
            ("dressing", "t2m", "all", "all", m, v)
            for m, v in (("spread_skill", 0.81), ("pit_max_dev", 0.07))
        ],
        columns=scores.columns,
    )
    scores = pd.concat([scores, _scores({}, **spread), dressing])
    scores = pd.concat([scores, goals.versus_best_classical(cases, scores)])
    model = tmp_path / "model"
    model.mkdir()
    gate = {"t2m": {"apply": False, "before": 1.0, "after": 1.008, "improved": 1, "folds": 5}}
    gate["t2m"] |= {"pit_before": 0.012, "pit_noise": 0.02}
    (model / "calibration.json").write_text(
        json.dumps({"spread_factor": {"t2m": 1.1}, "recalibration_gate": gate})
    )
    (model / "blend.json").write_text(json.dumps({"blend": {"t2m": {"weight": 0.25}}}))
    run = SimpleNamespace(
        name="set",
        scores=scores,
        out_dir=tmp_path,
        seconds={"train": 1.0},
        notes=[],
        multivariate=None,
        train_days=400.0,
        diagnostics={"probcast": {"t2m": {"pit_hist": [1, 1, 1, 1, 1, 1, 1, 1, 1, 11]}}},
    )
    text = skill_table.render([run])
    assert "| 1 never worse | 2 >= 5 % | 3 calibrated |" in text
    row = next(line for line in text.splitlines() if line.startswith("| set | t2m | 400 |"))
    assert "+0.0% [+0.0%, +0.0%] vs dressing" in row and row.endswith("| yes | no | no |")
    assert "| 0.84 [0.70, 0.95] | yes |" in row  # probcast's ratio and its interval
    assert "- Goal 1, never worse than the best classical method: 1 of 1 (met)." in text
    pit = next(line for line in text.splitlines() if line.startswith("| set | t2m | 0.50"))
    assert "5.50 | 0.25 | 1.10 | not applied (held-out CRPS +0.8%, 1/5 folds better) |" in pit
    assert "| 0.012 (0.020) |" in pit  # the held-out folds' PIT deviation and its noise
    assert "within its sampling noise on 1 of the 1 targets the gate scored" in text
    gate["t2m"] |= {"apply": True, "pit_after": 0.004, "reason": "calibration"}
    record = {"spread_factor": {"t2m": 1.1}, "recalibration_gate": gate}
    record["recalibration"] = {"t2m": [0.0, 1.0]}
    (model / "calibration.json").write_text(json.dumps(record))
    pit = next(line for line in skill_table.pit_rows([run]) if line.startswith("| set | t2m |"))
    assert "| applied for calibration (held-out CRPS +0.8%) | 0.012 -> 0.004 (0.020) |" in pit
    assert pit.endswith("| 0.070 / 0.81 (dressing) |")  # the best classical method's
