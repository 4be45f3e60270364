"""PIT noise and the spread-skill interval: what sampling alone gives on dependent cases."""

import warnings

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


def test_pit_noise_of_per_block_histograms_is_that_of_the_cases():
    rng = np.random.default_rng(7)
    blocks = np.repeat(np.arange(25), 12)
    u = _dependent_pits(rng, 25, 12)
    u[:12] = np.nan  # a block without a case is no block
    ok = np.isfinite(u)
    k = np.clip((np.where(ok, u, 0.0) * cal.PIT_BINS).astype("int64"), 0, cal.PIT_BINS - 1)
    counts = np.zeros((25, cal.PIT_BINS))
    np.add.at(counts, (blocks[ok], k[ok]), 1.0)
    assert cal.pit_noise_of_counts(counts, seed=2) == cal.pit_noise(u, blocks, seed=2)
    assert np.isnan(cal.pit_noise_of_counts(counts[:2]))  # one block with cases


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


def _errors(rng: np.random.Generator, n_blocks: int, per: int, df: float | None) -> np.ndarray:
    """Forecast errors of unit variance that share a block effect (t-distributed with df)."""
    draw = (
        (lambda size: rng.normal(size=size))
        if df is None
        else (lambda size: rng.standard_t(df, size=size) / np.sqrt(df / (df - 2.0)))
    )
    return ((draw((n_blocks, 1)) + draw((n_blocks, per))) / np.sqrt(2.0)).ravel()


def test_spread_skill_interval_covers_one_when_calibrated_and_misses_when_not():
    n_blocks, per = 40, 30
    blocks = np.repeat(np.arange(n_blocks), per)
    variance = np.full(n_blocks * per, 4.0)
    covered = 0
    for seed in range(100):
        err = 2.0 * _errors(np.random.default_rng(seed), n_blocks, per, None)
        lo, hi = cal.spread_skill_interval(variance, err**2, blocks, seed=seed)
        covered += lo <= 1.0 <= hi
    # nominal 95 %: a percentile bootstrap of a ratio over 40 blocks covers about 89 %
    assert covered >= 80
    # a forecast with half the variance it needs: the interval lies below the bar
    err = 2.0 * _errors(np.random.default_rng(99), n_blocks, per, None)
    lo, hi = cal.spread_skill_interval(variance / 2.0, err**2, blocks)
    assert hi < 0.9
    assert lo < cal.spread_skill_ratio(2.0, float(np.mean(err**2))) < hi


def test_spread_skill_interval_is_wider_with_heavy_tails_and_dependent_cases():
    rng = np.random.default_rng(4)
    n_blocks, per = 40, 30
    variance = np.ones(n_blocks * per)

    def width(err: np.ndarray, blocks: np.ndarray) -> float:
        lo, hi = cal.spread_skill_interval(variance, err**2, blocks)
        return hi - lo

    blocks = np.repeat(np.arange(n_blocks), per)
    normal = np.median([width(_errors(rng, n_blocks, per, None), blocks) for _ in range(40)])
    heavy = np.median([width(_errors(rng, n_blocks, per, 3.0), blocks) for _ in range(40)])
    alone = np.median(
        [width(rng.normal(size=n_blocks * per), np.arange(n_blocks * per)) for _ in range(40)]
    )
    assert heavy > 1.3 * normal
    assert normal > 2.0 * alone


def test_spread_skill_interval_corrects_ensembles_and_checks_its_input():
    rng = np.random.default_rng(5)
    blocks = np.repeat(np.arange(20), 10)
    var, se = rng.uniform(0.5, 2.0, 200), rng.uniform(0.5, 2.0, 200)
    exact = np.array(cal.spread_skill_interval(var, se, blocks))
    members = np.array(cal.spread_skill_interval(var, se, blocks, n_members=10))
    np.testing.assert_allclose(members, exact * np.sqrt(11 / 10))
    var[:10] = np.nan  # a dropped case: not counted
    assert np.isfinite(cal.spread_skill_interval(var, se, blocks)).all()
    assert np.isnan(cal.spread_skill_interval(var[:10], se[:10], blocks[:10])).all()
    with warnings.catch_warnings():  # degenerate cases give NaN without a warning
        warnings.simplefilter("error")
        assert np.isnan(cal.spread_skill_interval(var, np.zeros(200), blocks)).all()
    with pytest.raises(ValueError, match="differ"):
        cal.spread_skill_interval(var, se[:5], blocks)


def test_summary_has_the_spread_skill_interval_from_the_init_dates():
    rng = np.random.default_rng(6)
    n_dates, per = 30, 20
    err = _errors(rng, n_dates, per, None)
    cases = pd.DataFrame(
        {
            "init_time": np.repeat(pd.date_range("2026-01-01", periods=n_dates, tz="UTC"), per),
            "valid": True,
            "pit": rng.uniform(size=n_dates * per),
            "crps": 1.0,
            "var": 1.0,
            "se": err**2,
        }
    )
    out = aggregate.summarise(cases, n_members=None)
    blocks = np.repeat(np.arange(n_dates), per)
    want = cal.spread_skill_interval(cases["var"], cases["se"], blocks)
    assert (out["spread_skill_lo"], out["spread_skill_hi"]) == pytest.approx(want)
    assert out["spread_skill_lo"] < out["spread_skill"] < out["spread_skill_hi"]
    no_dates = aggregate.summarise(cases.drop(columns="init_time"), n_members=None)
    assert np.isnan(no_dates["spread_skill_lo"]) and np.isnan(no_dates["spread_skill_hi"])
