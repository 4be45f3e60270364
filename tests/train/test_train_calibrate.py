"""Spread calibration on validation rows and data-size adaptation of the config."""

from __future__ import annotations

import numpy as np
import pytest

from probcast.configs import default
from probcast.train.adapt import adapt_to_data
from probcast.train.calibrate import calibratable, fit_spread_factor, mean_crps, scaled


def _normal_case(true_sd: float, n: int = 4000, seed: int = 0):
    rng = np.random.default_rng(seed)
    loc = rng.normal(0.0, 3.0, n)
    y = loc + rng.normal(0.0, true_sd, n)
    return {"loc": loc, "scale": np.ones(n)}, y


@pytest.mark.parametrize("true_sd", [0.6, 1.0, 1.8])
def test_factor_recovers_the_missing_spread_and_never_hurts(true_sd):
    params, y = _normal_case(true_sd)
    k = fit_spread_factor("normal", params, y)
    assert k == pytest.approx(true_sd, rel=0.06)
    assert mean_crps("normal", scaled(params, k), y) <= mean_crps("normal", params, y) + 1e-7


def test_censored_family_and_missing_observations():
    params, y = _normal_case(3.0, seed=1)
    y = np.maximum(y, 0.0)
    y[::7] = np.nan
    k = fit_spread_factor("censored_logistic", params, y)
    assert k == pytest.approx(3.0 / (np.pi / np.sqrt(3.0)), rel=0.1)  # logistic sd = s pi/sqrt3
    crps_k = mean_crps("censored_logistic", scaled(params, k), y)
    assert crps_k < mean_crps("censored_logistic", params, y)


def test_uncalibratable_cases_give_one():
    params, y = _normal_case(2.0)
    assert not calibratable("censored_shifted_gamma") and not calibratable("generative")
    gamma = {"shape": np.ones(10), "scale": np.ones(10), "shift": np.ones(10)}
    assert fit_spread_factor("censored_shifted_gamma", gamma, np.ones(10)) == 1.0
    few = {k: v[:10] for k, v in params.items()}
    assert fit_spread_factor("normal", few, y[:10]) == 1.0  # too few rows


def test_embedding_off_for_thin_stations():
    config = default.get_config()
    thin = adapt_to_data(config, n_rows=23 * 900, n_stations=900)
    assert thin.model.embed_dim == 0 and config.model.embed_dim == 8  # a copy
    rich = adapt_to_data(config, n_rows=300 * 100, n_stations=100)
    assert rich.model.embed_dim == config.model.embed_dim
    config.model.embed_min_rows = 0
    assert adapt_to_data(config, 10, 10).model.embed_dim == 8


def test_trunk_width_shrinks_with_the_data():
    config = default.get_config()
    assert adapt_to_data(config, 5_000, 25).model.hidden == 32
    assert adapt_to_data(config, 10_000, 25).model.hidden == 64
    assert adapt_to_data(config, 500_000, 25).model.hidden == 128
    assert adapt_to_data(config, 10, 1).model.hidden == 32
    config.model.rows_per_unit = 0
    assert adapt_to_data(config, 5_000, 25).model.hidden == 128
