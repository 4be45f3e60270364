"""PIT noise: the histogram deviation that sampling alone gives on dependent cases."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from probcast.verify import aggregate
from probcast.verify import calibration as cal


def _dependent_pits(rng: np.random.Generator, n_blocks: int, per_block: int) -> np.ndarray:
    """Calibrated PITs whose cases share a block effect (uniform marginals, correlated)."""
    z = rng.normal(size=(n_blocks, 1)) + rng.normal(size=(n_blocks, per_block))
    return stats.norm.cdf(z / np.sqrt(2.0)).ravel()


def test_pit_noise_of_independent_cases_is_the_binomial_sampling_noise():
    rng = np.random.default_rng(0)
    n = 2000
    noise = cal.pit_noise(rng.uniform(size=n), np.arange(n))
    sd = np.sqrt(0.1 * 0.9 / n)
    assert 2.0 * sd < noise < 4.0 * sd


def test_pit_noise_grows_with_the_dependence_between_cases():
    rng = np.random.default_rng(1)
    dep = cal.pit_noise(_dependent_pits(rng, 50, 40), np.repeat(np.arange(50), 40))
    ind = cal.pit_noise(rng.uniform(size=2000), np.arange(2000))
    assert dep > 2.0 * ind


def test_calibrated_forecasts_mostly_stay_under_their_pit_noise():
    rng = np.random.default_rng(2)
    blocks = np.repeat(np.arange(40), 30)
    under = 0
    for seed in range(60):
        u = _dependent_pits(np.random.default_rng(seed), 40, 30)
        dev = cal.flatness(cal.histogram(u)).max_dev
        under += dev <= cal.pit_noise(u, blocks, seed=seed)
    assert under >= 0.8 * 60
    # a forecast that is too sharp (PITs piled at the ends) exceeds it
    u = np.clip(_dependent_pits(rng, 40, 30) * 1.6 - 0.3, 0.0, 1.0)
    assert cal.flatness(cal.histogram(u)).max_dev > cal.pit_noise(u, blocks)


def test_pit_noise_needs_two_blocks_and_matching_shapes():
    assert np.isnan(cal.pit_noise(np.full(5, 0.5), np.zeros(5)))
    assert np.isnan(cal.pit_noise(np.array([np.nan, 0.2]), np.array([0, 1])))
    with pytest.raises(ValueError, match="differ in shape"):
        cal.pit_noise(np.zeros(3), np.zeros(4))


def test_summary_has_pit_noise_from_the_init_dates():
    rng = np.random.default_rng(3)
    n_dates, per = 30, 20
    cases = pd.DataFrame(
        {
            "init_time": np.repeat(pd.date_range("2026-01-01", periods=n_dates, tz="UTC"), per),
            "valid": True,
            "pit": _dependent_pits(rng, n_dates, per),
            "crps": 1.0,
        }
    )
    out = aggregate.summarise(cases, n_members=None)
    blocks = np.repeat(np.arange(n_dates), per)
    assert out["pit_noise"] == pytest.approx(cal.pit_noise(cases["pit"].to_numpy(), blocks))
    assert np.isnan(
        aggregate.summarise(cases.drop(columns="init_time"), n_members=None)["pit_noise"]
    )
