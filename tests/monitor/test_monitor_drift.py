"""Input drift: PSI and KS against domain.json-style references, the reference and config."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from probcast.monitor import drift
from probcast.monitor.config import DriftConfig, MonitorConfigError, load_config
from probcast.monitor.reference import (
    LEVELS,
    ReferenceError,
    check_reference,
    load_reference,
    reference_from_table,
)


def _spec(x: np.ndarray) -> dict:
    return {"levels": list(LEVELS), "values": list(np.quantile(x, LEVELS))}


def test_same_distribution_has_small_psi_and_ks():
    rng = np.random.default_rng(0)
    spec = _spec(rng.normal(size=200_000))
    x = rng.normal(size=5000)
    assert drift.psi(x, spec) < 0.01
    assert drift.ks(x, spec) < 0.03


def test_ks_matches_scipy_against_the_reference_cdf():
    rng = np.random.default_rng(1)
    spec = {"levels": list(LEVELS), "values": list(stats.norm.ppf(np.clip(LEVELS, 1e-6, 1 - 1e-6)))}
    x = rng.normal(0.5, 1.0, 3000)
    ours = drift.ks(x, spec)
    # scipy against the same piecewise-linear CDF through the knots
    ref = stats.kstest(x, lambda t: np.interp(t, spec["values"], LEVELS)).statistic
    assert ours == pytest.approx(ref, abs=1e-9)
    assert ours > 0.15


def test_shift_and_scaling_raise_psi_ks_and_spread():
    rng = np.random.default_rng(2)
    spec = _spec(rng.normal(280, 5, 100_000))
    cfg = DriftConfig(psi=0.25, ks=0.2, spread_ratio=1.5)
    clean = drift.feature_drift("fc_t2m", rng.normal(280, 5, 2000), spec, cfg)
    shifted = drift.feature_drift("fc_t2m", rng.normal(285, 5, 2000), spec, cfg)
    wide = drift.feature_drift("fc_t2m", rng.normal(280, 10, 2000), spec, cfg)
    assert clean.alerts == []
    assert {"drift_psi", "drift_ks"} <= set(shifted.alerts)
    assert "nwp_variance" in wide.alerts and wide.spread_ratio == pytest.approx(2, rel=0.1)


def test_point_mass_at_zero_is_not_drift():
    """Dry precipitation: tied reference quantiles are a point mass, not a zero-width bin."""
    rng = np.random.default_rng(3)

    def sample(n):
        return np.where(rng.uniform(size=n) < 0.6, 0.0, rng.gamma(0.8, 2.0, n))

    spec = _spec(sample(100_000))
    assert drift.psi(sample(3000), spec) < 0.02
    assert drift.ks(sample(3000), spec) < 0.05
    assert drift.ks(2 * sample(3000), spec) > drift.ks(sample(3000), spec)


def test_reference_from_table_round_trip(tmp_path):
    frame = pd.DataFrame(
        {
            "station": ["a", "b"] * 50,
            "init_time": pd.Timestamp("2024-01-01", tz="UTC"),
            "lead_time": np.tile([6.0, 12.0], 50),
            "latitude": 60.0,
            "fc_t2m": np.linspace(270, 280, 100),
            "obs_t2m": 275.0,
        }
    )
    ref = reference_from_table(frame)
    assert set(ref["features"]) == {"latitude", "fc_t2m"}
    assert ref["lead_hours"] == {"min": 6.0, "max": 12.0} and ref["stations"] == ["a", "b"]
    assert len(ref["features"]["fc_t2m"]["values"]) == 17
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "domain.json").write_text(json.dumps(ref))
    assert load_reference(tmp_path / "model") == check_reference(ref)
    frame.to_parquet(tmp_path / "train.parquet")
    assert load_reference(tmp_path / "train.parquet")["features"].keys() == ref["features"].keys()


def test_bad_references_name_the_field(tmp_path):
    (tmp_path / "old").mkdir()
    with pytest.raises(ReferenceError, match=r"no domain\.json.*training table"):
        load_reference(tmp_path / "old")
    bad = {"version": 1, "features": {"fc_t2m": {"levels": [0, 0.5, 1], "values": [3, 2, 1]}}}
    (tmp_path / "d.json").write_text(json.dumps(bad))
    with pytest.raises(ReferenceError, match=r"features\.fc_t2m\.values"):
        load_reference(tmp_path / "d.json")
    with pytest.raises(ReferenceError, match="version"):
        check_reference({"version": 7, "features": {}})


def test_config_block_and_errors(tmp_path):
    path = tmp_path / "ops.yaml"
    path.write_text(
        "model: m\nmonitor:\n  drift: {psi: 0.3}\n"
        "  skill: {window_days: 7, crpss_floor: {raw: 0.1}}\n"
    )
    cfg = load_config(path)
    assert cfg.drift.psi == 0.3 and cfg.drift.ks == 0.2
    assert cfg.skill.window_days == 7 and cfg.skill.crpss_floor == {"raw": 0.1}
    path.write_text("monitor:\n  skill: {windw_days: 7}\n")
    with pytest.raises(MonitorConfigError, match=r"monitor\.skill: unknown keys \['windw_days'\]"):
        load_config(path)
    path.write_text("monitor:\n  drift: {psi: -1}\n")
    with pytest.raises(MonitorConfigError, match=r"monitor\.drift\.psi: expected a number > 0"):
        load_config(path)


def test_a_models_recent_error_predictors_are_not_input_features(tmp_path):
    # audit (deploy): domain.json of a default model lists err_<var>, which prediction
    # derives and no cycle input holds, so ProbcastInputFeatureMissing fired for ever
    frame = pd.DataFrame(
        {
            "station": ["a", "b"] * 50,
            "init_time": pd.Timestamp("2024-01-01", tz="UTC"),
            "lead_time": np.tile([6.0, 12.0], 50),
            "fc_t2m": np.linspace(270, 280, 100),
            "err_t2m": np.linspace(-1, 1, 100),
        }
    )
    ref = reference_from_table(frame, ["fc_t2m", "err_t2m"])
    (tmp_path / "domain.json").write_text(json.dumps(ref))
    assert set(load_reference(tmp_path / "domain.json")["features"]) == {"fc_t2m"}
