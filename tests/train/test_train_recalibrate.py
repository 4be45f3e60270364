"""PIT recalibration: the map, the nested-CV gate, and the predictor's recalibrated outputs."""

import json

import ml_collections
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probcast.configs import tiny
from probcast.dists.recalibration import PitMap, load_maps
from probcast.model import artefact
from probcast.model.predictor import PredictOptions, TrainedModel
from probcast.predict.station import predict_stations
from probcast.testing.models import untrained_model
from probcast.testing.stations import station_table
from probcast.train import recalibrate
from probcast.train.loop import train


def _normal(n: int, scale: float, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Forecasts N(mu, scale) of observations y ~ N(mu, 1)."""
    rng = np.random.default_rng(seed)
    mu = rng.normal(280.0, 5.0, n)
    y = mu + rng.normal(0.0, 1.0, n)
    return {"loc": mu, "scale": np.full(n, scale)}, y


def _pit_dev(u: np.ndarray) -> float:
    """Largest deviation of the 10-bin PIT histogram from flat."""
    h = np.histogram(u, bins=10, range=(0, 1))[0] / len(u)
    return float(np.max(np.abs(h - 0.1)))


@settings(max_examples=20, deadline=None)
@given(
    a=st.floats(0.2, 5.0),
    b=st.floats(0.2, 5.0),
    n=st.integers(0, 3000),
    knots=st.sampled_from([2, 3, 11, 101]),  # few shapes: each compiles once
)
def test_map_is_monotone_from_0_to_1_and_inverts(a, b, n, knots):
    u = np.random.default_rng(0).beta(a, b, n)
    g = recalibrate.fit_map(u, knots=knots)
    assert g.knots[0] == 0.0 and g.knots[-1] == 1.0
    assert np.all(np.diff(g.knots) > 0)
    x = np.linspace(0, 1, 57)
    gx = np.asarray(g(x))
    assert np.all(np.diff(gx) >= 0) and gx[0] == 0.0 and abs(gx[-1] - 1.0) < 1e-6
    mid = x[(x > 0.01) & (x < 0.99)]
    assert np.allclose(np.asarray(g.inverse(g(mid))), mid, atol=1e-4)


def test_map_is_the_pit_distribution():
    u = np.random.default_rng(1).beta(3.0, 3.0, 20000)  # too few PITs in the tails
    g = recalibrate.fit_map(u)
    assert g.max_shift() > 0.05
    assert _pit_dev(np.asarray(g(u))) < 0.01  # G(u) is uniform


@pytest.mark.parametrize(
    "knots, match",
    [([0.0, 0.5, 0.4, 1.0], "increase strictly"), ([0.1, 1.0], "from 0 to 1"), ([0.0], ">= 2")],
)
def test_bad_knots_are_refused_naming_the_target(knots, match):
    with pytest.raises(ValueError, match=match) as err:
        load_maps({"recalibration": {"tcc": knots}}, "model/calibration.json")
    assert "model/calibration.json: recalibration of tcc" in str(err.value)


def test_too_narrow_forecast_passes_the_gate_and_improves_unseen_rows():
    params, y = _normal(6000, 0.5, seed=2)  # spread half the error: PIT U-shaped
    fold = np.repeat(np.arange(5), 1200)
    result = recalibrate.gate("normal", params, y, fold)
    assert result.apply and result.gain < -0.05 and result.improved == 5
    g = recalibrate.fit_map(recalibrate.pit("normal", params, y))
    test, y_test = _normal(4000, 0.5, seed=3)  # unseen rows
    u = recalibrate.pit("normal", test, y_test)
    assert _pit_dev(u) > 0.1
    assert _pit_dev(np.asarray(g(u))) < 0.03  # flattened (sampling error ~0.005 a bin)
    before = recalibrate.grid_crps("normal", test, y_test)
    after = recalibrate.grid_crps("normal", test, y_test, g)
    assert after < 0.95 * before


def test_calibrated_forecast_is_skipped():
    params, y = _normal(6000, 1.0, seed=4)
    fold = np.repeat(np.arange(5), 1200)
    result = recalibrate.gate("normal", params, y, fold)
    assert not result.apply
    assert abs(result.gain) < 0.005
    few = recalibrate.gate("normal", params, y, np.zeros(len(y), dtype=int))
    assert not few.apply  # one fold: nothing to hold out


@pytest.mark.parametrize(
    "before, after, improved, dev0, dev1, noise, max_cost, reason",
    [
        (1.0, 0.98, 0.8, 0.01, 0.01, 0.02, 0.0, "crps"),  # CRPS alone, calibration or not
        (1.0, 0.98, 0.4, 0.01, 0.01, 0.02, 0.0, ""),  # most folds worse
        (1.0, 0.999, 0.4, 0.05, 0.01, 0.02, 0.0, "calibration"),  # beyond noise, corrected
        (1.0, 1.0, 0.0, 0.05, 0.02, 0.02, 0.0, "calibration"),  # within noise after it
        (1.0, 0.999, 0.4, 0.10, 0.04, 0.01, 0.0, "calibration"),  # more than halved
        (1.0, 0.999, 0.4, 0.05, 0.03, 0.02, 0.0, ""),  # not corrected enough
        (1.0, 0.999, 0.4, 0.015, 0.0, 0.02, 0.0, ""),  # within noise before: no evidence
        (1.0, 0.999, 0.4, 0.05, 0.0, float("nan"), 0.0, ""),  # noise unknown
        (1.0, 1.004, 0.2, 0.05, 0.01, 0.02, 0.0, ""),  # costs CRPS
        (1.0, 1.004, 0.2, 0.05, 0.01, 0.02, 0.005, "calibration"),  # within the cost allowed
        (1.0, 1.006, 0.2, 0.05, 0.01, 0.02, 0.005, ""),
    ],
)
def test_verdict_keeps_a_map_for_its_crps_or_for_calibration_at_no_cost(
    before, after, improved, dev0, dev1, noise, max_cost, reason
):
    assert recalibrate.verdict(before, after, improved, dev0, dev1, noise, max_cost=max_cost) == (
        reason
    )


def test_gate_measures_the_held_out_pit_against_its_sampling_noise():
    params, y = _normal(6000, 0.5, seed=2)  # too narrow: U-shaped PIT on every fold
    fold = np.repeat(np.arange(5), 1200)
    dates = np.repeat(np.arange(60), 100)  # 100 cases per init date
    result = recalibrate.gate("normal", params, y, fold, dates)
    assert result.reason == "crps" and result.to_dict()["reason"] == "crps"
    assert result.pit_before > 0.1 > 0.03 > result.pit_noise > 0.003
    assert result.pit_after < result.pit_before / 4  # the other folds' maps flatten it
    # the CRPS rule switched off, the calibration rule keeps it (its CRPS falls too)
    assert recalibrate.gate("normal", params, y, fold, dates, min_gain=1.0).reason == (
        "calibration"
    )
    assert not recalibrate.gate("normal", params, y, fold, None, min_gain=1.0).apply
    fine, y2 = _normal(6000, 1.0, seed=4)  # calibrated: within noise, nothing to correct
    calm = recalibrate.gate("normal", fine, y2, fold, dates, min_gain=1.0)
    assert calm.pit_before <= calm.pit_noise and not calm.apply


def test_the_cost_allowed_for_calibration_is_checked():
    cfg = ml_collections.ConfigDict({"train": {"recalibrate": True, "recalibrate_max_cost": 1.5}})
    params, y = _normal(600, 0.5, seed=8)
    held = pd.DataFrame({"obs_t2m": y})
    with pytest.raises(ValueError, match="recalibrate_max_cost must be in"):
        recalibrate.on_folds(cfg, {"t2m": "normal"}, {"t2m": params}, held, [300, 300])


def test_a_large_table_scores_a_subset_and_reaches_the_same_verdict(monkeypatch):
    params, y = _normal(6000, 0.5, seed=2)
    fold = np.repeat(np.arange(5), 1200)
    full = recalibrate.gate("normal", params, y, fold)
    scored = []
    grid_crps = recalibrate.grid_crps

    def counting(family, p, yy, pit_map=None):
        scored.append(len(yy))
        return grid_crps(family, p, yy, pit_map)

    monkeypatch.setattr(recalibrate, "MAX_SCORED_ROWS", 2000)
    monkeypatch.setattr(recalibrate, "grid_crps", counting)
    part = recalibrate.gate("normal", params, y, fold)
    assert sum(scored) == 2 * 2000  # with and without the map, every scored row once
    assert part.rows == 6000 and part.apply == full.apply
    assert part.gain == pytest.approx(full.gain, abs=0.01)


def test_censored_target_uses_a_randomised_pit():
    rng = np.random.default_rng(5)
    n = 4000
    y = np.where(rng.random(n) < 0.4, 0.0, rng.gamma(1.0, 1.0, n))  # 40 % exact zeros
    params = {"loc": np.full(n, 0.5), "scale": np.full(n, 1.0)}
    u = recalibrate.pit("censored_logistic", params, y)
    assert np.isfinite(u).all() and u.min() >= 0 and u.max() <= 1
    zero = u[y == 0]
    assert zero.max() - zero.min() > 0.3  # spread over the point mass, not one value


def test_select_maps_keeps_only_the_targets_that_pass():
    narrow, y1 = _normal(3000, 0.5, seed=6)
    fine, y2 = _normal(3000, 1.0, seed=7)
    fold = np.repeat(np.arange(3), 1000)
    heads = {"t2m": "normal", "td2m": "normal"}
    params, obs = {"t2m": narrow, "td2m": fine}, {"t2m": y1, "td2m": y2}
    rec = recalibrate.select_maps(heads, params, obs, fold)
    assert set(rec["recalibration"]) == {"t2m"}
    assert set(rec["recalibration_gate"]) == {"t2m", "td2m"}
    back = json.loads(json.dumps(rec))  # as written to calibration.json
    maps = load_maps(back)
    assert set(maps) == {"t2m"} and len(maps["t2m"].knots) == recalibrate.KNOTS


def test_ungated_maps_every_target_the_gate_could_score():
    narrow, y1 = _normal(3000, 0.5, seed=6)
    fine, y2 = _normal(3000, 1.0, seed=7)
    few, y3 = _normal(300, 0.5, seed=9)  # under MIN_ROWS: never mapped
    heads = {"t2m": "normal", "td2m": "normal", "ws10": "normal"}
    params = {"t2m": narrow, "td2m": fine, "ws10": few}
    obs = {"t2m": y1, "td2m": y2, "ws10": np.concatenate([y3, np.full(2700, np.nan)])}
    params["ws10"] = {k: np.concatenate([v, np.full(2700, v[0])]) for k, v in few.items()}
    fold = np.repeat(np.arange(3), 1000)
    rec = recalibrate.select_maps(heads, params, obs, fold, gated=False)
    assert set(rec["recalibration"]) == {"t2m", "td2m"}
    assert not rec["recalibration_gate"]["td2m"]["apply"]  # the gate's own verdict kept
    cfg = ml_collections.ConfigDict({"train": {"recalibrate": True, "recalibrate_gate": False}})
    held = pd.DataFrame({"obs_td2m": y2})
    rec = recalibrate.on_folds(cfg, {"td2m": "normal"}, {"td2m": fine}, held, [1500, 1500])
    assert set(rec["recalibration"]) == {"td2m"}


def test_switched_off_fits_nothing():
    cfg = ml_collections.ConfigDict({"train": {"recalibrate": False}})
    params, y = _normal(600, 0.5, seed=8)
    held = pd.DataFrame({"obs_t2m": y})
    assert recalibrate.on_folds(cfg, {"t2m": "normal"}, {"t2m": params}, held, [300, 300]) == {}
    cfg.train.recalibrate = True
    rec = recalibrate.on_folds(cfg, {"t2m": "normal"}, {"t2m": params}, held, [300, 300])
    assert rec["recalibration_gate"]["t2m"]["folds"] == 2


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    return station_table(n_stations=3, n_inits=12, targets=("t2m", "tp"), seed=1)


def _skew_map() -> PitMap:
    return recalibrate.fit_map(np.random.default_rng(9).beta(2.0, 5.0, 5000))


def _two_networks(table: pd.DataFrame, combine: str) -> TrainedModel:
    heads = {"t2m": "normal", "tp": "censored_logistic"}
    a, b = untrained_model(table, heads, seed=0), untrained_model(table, heads, seed=1)
    return TrainedModel(
        a.config,
        a.spec,
        heads,
        [a.networks[0], b.networks[0]],
        a.meta,
        options=PredictOptions(combine=combine),
        recalibration={"t2m": _skew_map(), "tp": _skew_map()},
    )


@pytest.mark.parametrize("combine", ["vincentize", "mixture"])
def test_members_quantiles_and_exceedance_agree_after_recalibration(table, combine):
    model = _two_networks(table, combine)
    rows = table.iloc[:20]
    assert not model.pooled_params_are_predictive("t2m")
    levels = [0.05, 0.2, 0.5, 0.8, 0.95]
    qs = model.quantiles(rows, levels)
    members = model.sample(rows, 4000, seed=3)
    for var in ("t2m", "tp"):
        assert np.all(np.diff(qs[var], axis=1) >= -1e-4)  # monotone in the level
        # the exceedance of the forecast's own quantiles is one minus the level
        t = np.unique(np.round(qs[var][0], 3))
        p = model.exceedance(rows.iloc[:1], {var: t})[var][0]
        emp = (members[var][0][:, None] > t).mean(axis=0)
        assert np.allclose(emp, p, atol=0.03)  # members drawn from the same G(F)
        if var == "t2m":  # continuous: exceedance of the tau-quantile is 1 - tau
            p_q = [model.exceedance(rows.iloc[:1], {var: [q]})[var][0, 0] for q in qs[var][0]]
            assert np.allclose(p_q, 1 - np.asarray(levels), atol=0.01)
    plain = _two_networks(table, combine)
    plain.recalibration = {}
    base = plain.quantiles(rows, [0.5])["t2m"]
    assert not np.allclose(base, qs["t2m"][:, 2:3], atol=1e-3)  # the map changed the median


def test_station_products_score_members_of_a_recalibrated_target(table):
    model = untrained_model(table, {"t2m": "normal"})
    model.recalibration = {"t2m": _skew_map()}
    out = predict_stations(model, table.iloc[:30], members=11, quantiles=[0.5], params=True)
    assert "t2m" not in out.families  # parameter columns are not the forecast
    assert out.forecasts["t2m"].kind == "members"


@pytest.mark.slow  # a real 3-fold training (~10 s); the gate itself is tested above
def test_training_with_folds_records_the_gate(tmp_path):
    data = station_table(n_stations=3, n_inits=40, targets=("t2m",), seed=3)
    path = tmp_path / "t.parquet"
    data.to_parquet(path)
    cfg = tiny.get_config()
    cfg.data.path = str(path)
    cfg.train.cv_folds = 3
    cfg.train.blend_emos = False
    cfg.train.recalibrate = True
    train(cfg, tmp_path / "run")
    calib = json.loads((tmp_path / "run" / "calibration.json").read_text())
    gate = calib["recalibration_gate"]["t2m"]
    assert gate["folds"] == 3 and gate["rows"] == len(data)
    assert {"pit_before", "pit_after", "pit_noise", "reason"} <= set(gate)  # too few rows: NaN
    model = artefact.load(tmp_path / "run")
    assert set(model.recalibration) == set(calib["recalibration"])
