"""The randomised PIT shared by training's recalibration and verification."""

import jax
import numpy as np
import pytest
from scipy import stats

from probcast import dists
from probcast.dists import pit
from probcast.train.recalibrate import pit as recal_pit
from probcast.verify.pointwise import case_scores

PIT_CASES = [
    ("normal", {"loc": 1.0, "scale": 2.0}),
    ("censored_logistic", {"loc": 0.2, "scale": 0.5}),  # point mass at 0
    ("censored_normal_01", {"loc": 0.8, "scale": 0.4}),  # point masses at 0 and 1
    ("censored_normal", {"loc": 0.3, "scale": 1.0}),
    ("logistic", {"loc": -1.0, "scale": 0.7}),
    ("truncated_normal", {"loc": 0.5, "scale": 1.0}),
    # dry in about 32 % of the draws: the point mass at 0 must be randomised
    ("censored_shifted_gamma", {"shape": 0.8, "scale": 2.0, "shift": 0.5}),
]


def test_every_family_has_a_pit_case():
    assert sorted(f for f, _ in PIT_CASES) == sorted(dists.DISTRIBUTIONS)


@pytest.mark.parametrize(("family", "params"), PIT_CASES)
def test_pit_of_draws_from_the_forecast_is_uniform(family, params):
    dist = dists.get(family)
    n = 20_000
    p = {k: np.full(n, v, np.float32) for k, v in params.items()}
    y = np.asarray(dist.sample(p, jax.random.key(0), 1))[:, 0].astype(np.float64)
    u = pit.parametric(dist, p, y, np.random.default_rng(1))
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    cdf = np.asarray(dist.cdf(p, y.astype(np.float32)))
    lower = getattr(dist, "lower", -np.inf)
    at_lower = y <= lower
    if at_lower.any():  # drawn uniformly below F(lower), not all at it
        assert np.all(u[at_lower] <= cdf[at_lower] + 1e-7) and u[at_lower].std() > 0
    inside = (y > lower) & (y < getattr(dist, "upper", np.inf))
    np.testing.assert_allclose(u[inside], cdf[inside], atol=1e-7)


def test_training_and_verification_give_the_same_pit():
    family, n = "censored_normal_01", 500
    rng = np.random.default_rng(3)
    params = {"loc": rng.normal(0.5, 0.5, n), "scale": rng.uniform(0.1, 0.5, n)}
    y = np.clip(rng.normal(0.5, 0.6, n), 0.0, 1.0)
    y[::50] = np.nan
    ok = np.isfinite(y)
    train_u = recal_pit(family, params, y, seed=7)
    fc = dists.Predictive.from_params("tcc", family, params)
    ver = case_scores(fc, y, rng=np.random.default_rng(7))
    np.testing.assert_allclose(ver["pit"][ok], train_u, atol=1e-6)


def test_left_limit_needs_the_cdf_below_a_finite_upper_bound():
    with pytest.raises(ValueError, match="upper bound"):
        pit.left_limit(np.ones(2), np.ones(2), 0.0, 1.0)
