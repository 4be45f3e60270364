"""Scores against brute-force references, degenerate cases and invariants."""

from __future__ import annotations

import numpy as np
import pytest
import scoringrules as sr
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats

from probcast.dists import pit as dists_pit
from probcast.verify import calibration as cal
from probcast.verify import scores

finite = st.floats(-50, 50, allow_nan=False, allow_infinity=False)


def crps_brute(y: float, x: np.ndarray, fair: bool = False) -> float:
    """Energy form with an explicit double sum over member pairs."""
    m = x.size
    pairs = np.abs(x[:, None] - x[None, :]).sum()
    return float(np.abs(x - y).mean() - pairs / (2 * (m * (m - 1) if fair else m * m)))


def crps_integral(y: float, x: np.ndarray) -> float:
    """Integral of (F(z) - 1{y <= z})**2 over a fine grid."""
    z = np.linspace(min(x.min(), y) - 1, max(x.max(), y) + 1, 200_001)
    f = (x[None, :] <= z[:, None]).mean(axis=1)
    return float(np.trapezoid((f - (y <= z)) ** 2, z))


@pytest.fixture
def ens() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    return rng.normal(size=200), rng.normal(size=(200, 11))


def test_crps_matches_brute_force(ens):
    y, x = ens
    std = scores.crps_ensemble(y, x)
    fair = scores.crps_ensemble(y, x, fair=True)
    np.testing.assert_allclose(std, [crps_brute(a, b) for a, b in zip(y, x, strict=True)])
    np.testing.assert_allclose(fair, [crps_brute(a, b, True) for a, b in zip(y, x, strict=True)])
    assert crps_integral(y[0], x[0]) == pytest.approx(std[0], abs=1e-4)


def test_crps_matches_scoringrules(ens):
    y, x = ens
    np.testing.assert_allclose(scores.crps_ensemble(y, x), sr.crps_ensemble(y, x, estimator="nrg"))
    np.testing.assert_allclose(
        scores.crps_ensemble(y, x, fair=True), sr.crps_ensemble(y, x, estimator="fair")
    )
    for fair in (False, True):
        np.testing.assert_allclose(
            scores.crps_ensemble(y, x, fair=fair, engine="scoringrules"),
            scores.crps_ensemble(y, x, fair=fair),
        )


def test_crps_chunking_is_invisible(ens, monkeypatch):
    y, x = ens
    full = scores.crps_ensemble(y, x)
    monkeypatch.setattr(scores, "CHUNK_ELEMENTS", 7)
    np.testing.assert_allclose(scores.crps_ensemble(y, x), full)


def test_one_member_gives_absolute_error(ens):
    y, x = ens
    np.testing.assert_allclose(scores.crps_ensemble(y, x[:, :1]), np.abs(x[:, 0] - y))
    with pytest.raises(ValueError, match="at least 2 members"):
        scores.crps_ensemble(y, x[:, :1], fair=True)


def test_perfect_forecasts_score_zero(ens):
    y, _ = ens
    same = np.repeat(y[:, None], 5, axis=1)
    assert np.all(scores.crps_ensemble(y, same) == 0)
    assert np.all(scores.crps_ensemble(y, same, fair=True) == 0)
    assert np.all(scores.absolute_error(y, y) == 0)
    assert np.all(scores.crps_quantiles(y, same, np.linspace(0.1, 0.9, 5)) == 0)


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(np.float64, (3, 6), elements=finite),
    hnp.arrays(np.float64, (3,), elements=finite),
    st.permutations(range(6)),
)
def test_member_order_does_not_matter(x, y, perm):
    for fair in (False, True):
        np.testing.assert_allclose(
            scores.crps_ensemble(y, x[:, list(perm)], fair=fair),
            scores.crps_ensemble(y, x, fair=fair),
            atol=1e-9,
        )


@settings(max_examples=40, deadline=None)
@given(
    hnp.arrays(np.float64, (4, 5), elements=finite), hnp.arrays(np.float64, (4,), elements=finite)
)
def test_crps_is_nonnegative_and_fair_not_larger(x, y):
    std = scores.crps_ensemble(y, x)
    assert np.all(std >= -1e-9)
    assert np.all(scores.crps_ensemble(y, x, fair=True) <= std + 1e-9)


def test_nan_cases_are_nan_then_dropped_or_propagated(ens):
    y, x = ens
    y, x = y.copy(), x.copy()
    y[0] = np.nan
    x[1, 3] = np.nan
    c = scores.crps_ensemble(y, x)
    assert np.isnan(c[:2]).all() and np.isfinite(c[2:]).all()
    kept = scores.mean_score(c)
    assert kept.n == 198 and kept.n_dropped == 2
    assert kept.value == pytest.approx(np.mean(c[2:]))
    prop = scores.mean_score(c, skipna=False)
    assert np.isnan(prop.value) and prop.n_dropped == 2
    assert np.isnan(scores.crps_quantiles(y, x, np.linspace(0.1, 0.9, 11))[:2]).all()


def test_quantile_crps_single_median_is_mae_and_dense_levels_approach_crps():
    rng = np.random.default_rng(0)
    y = rng.normal(size=500)
    mu, sig = rng.normal(size=500), 1 + rng.random(500)
    med = scores.crps_quantiles(y, mu[:, None], np.array([0.5]))
    np.testing.assert_allclose(med, np.abs(y - mu))
    lv = (np.arange(99) + 0.5) / 99
    q = stats.norm.ppf(lv[None, :], mu[:, None], sig[:, None])
    approx = scores.crps_quantiles(y, q, lv)
    exact = sr.crps_normal(y, mu, sig)
    assert np.mean(approx) == pytest.approx(np.mean(exact), rel=0.02)
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        scores.crps_quantiles(y, q, lv * 2)


def test_parametric_crps_uses_registered_family():
    rng = np.random.default_rng(1)
    y, mu, sig = rng.normal(size=50), rng.normal(size=50), 1 + rng.random(50)
    got = scores.crps_parametric(y, {"loc": mu, "scale": sig}, "normal")
    np.testing.assert_allclose(got, sr.crps_normal(y, mu, sig), rtol=1e-5, atol=1e-6)
    y[3] = np.nan
    assert np.isnan(scores.crps_parametric(y, {"loc": mu, "scale": sig}, "normal")[3])


def test_brier_score_and_nan():
    o = np.array([1.0, 0.0, np.nan, 1.0])
    p = np.array([0.8, 0.3, 0.5, np.nan])
    np.testing.assert_allclose(scores.brier_score(o, p)[:2], [0.04, 0.09])
    assert np.isnan(scores.brier_score(o, p)[2:]).all()


def test_brier_decomposition_identity():
    rng = np.random.default_rng(5)
    p = rng.random(20_000)
    o = (rng.random(20_000) < p**1.3).astype(float)  # slightly unreliable
    d = scores.brier_decomposition(o, p)
    assert d.rel - d.res + d.unc == pytest.approx(d.bs, abs=0.01)  # binning tolerance
    # Forecasts taking few values (ensemble fractions): exact with one bin per value.
    pk = np.round(p * 10) / 10
    dk = scores.brier_decomposition(o, pk, n_bins="unique")
    assert dk.rel - dk.res + dk.unc == pytest.approx(dk.bs, abs=1e-12)
    assert dk.unc == pytest.approx(o.mean() * (1 - o.mean()))


def test_reliability_table_of_reliable_forecast():
    rng = np.random.default_rng(6)
    p = rng.random(50_000)
    o = (rng.random(50_000) < p).astype(float)
    t = cal.reliability_table(o, p, n_bins=10)
    assert sum(t["count"]) == 50_000
    np.testing.assert_allclose(t["observed"], t["forecast"], atol=0.03)


def test_pit_of_calibrated_ensemble_is_flat():
    rng = np.random.default_rng(7)
    n, m = 20_000, 9
    mu = rng.normal(size=n)
    x = mu[:, None] + rng.normal(size=(n, m))
    y = mu + rng.normal(size=n)
    pit = cal.pit_members(y, x, rng)
    flat = cal.flatness(cal.histogram(pit))
    assert flat.max_dev < 0.01 and flat.chi2_pvalue > 1e-3
    ranks = cal.randomised_rank(y, x, rng)
    assert ranks.min() == 1 and ranks.max() == m + 1
    assert cal.flatness(np.bincount(ranks - 1)).max_dev < 0.01


def test_randomised_pit_flat_with_point_mass_at_zero():
    """Precipitation-like: half the cases dry in truth and in the members."""
    rng = np.random.default_rng(8)
    n, m = 20_000, 10

    def draw(size):
        return np.maximum(rng.normal(0.0, 1.0, size), 0.0)

    x, y = draw((n, m)), draw(n)
    pit = cal.pit_members(y, x, rng)
    assert cal.flatness(cal.histogram(pit)).max_dev < 0.012
    lv = np.linspace(0.05, 0.95, 19)
    q = np.repeat(np.maximum(stats.norm.ppf(lv), 0.0)[None, :], n, axis=0)
    left, right = cal.quantile_cdf(q, lv, y, lower=0.0)
    assert np.all(left[y == 0] == 0) and np.allclose(right[y == 0], 0.5)
    pit_q = dists_pit.randomised(left, right, rng)
    assert cal.flatness(cal.histogram(pit_q)).max_dev < 0.012
    # Without the randomisation the dry cases would pile up in one bin.
    assert cal.flatness(cal.histogram(right)).max_dev > 0.3


def test_quantile_cdf_ties_and_tails():
    lv = np.array([0.25, 0.5, 0.75])
    q = np.array([[0.0, 1.0, 2.0]] * 4)
    x = np.array([-1.0, 0.5, 1.0, 3.0])
    left, right = cal.quantile_cdf(q, lv, x)
    np.testing.assert_allclose(left, [0.0, 0.375, 0.5, 0.75])
    np.testing.assert_allclose(right, [0.25, 0.375, 0.5, 1.0])
    np.testing.assert_allclose(
        cal.interpolate_quantiles(q[:1], lv, np.array([0.5, 0.625, 0.9])), [[1.0, 1.5, np.nan]]
    )


def test_member_quantiles_are_numpy_weibull():
    rng = np.random.default_rng(9)
    x = np.sort(rng.normal(size=(30, 7)), axis=-1)
    lv = np.array([0.05, 0.25, 0.5, 0.9])
    np.testing.assert_allclose(
        cal.member_quantiles(x, lv), np.quantile(x, lv, axis=-1, method="weibull").T
    )


def test_spread_skill_ratio_corrected_for_ensemble_size():
    rng = np.random.default_rng(10)
    n, m = 100_000, 4
    mu = rng.normal(size=n)
    x = mu[:, None] + rng.normal(size=(n, m))
    y = mu + rng.normal(size=n)
    var = x.var(axis=-1, ddof=1).mean()
    mse = ((x.mean(axis=-1) - y) ** 2).mean()
    assert cal.spread_skill_ratio(var, mse, m) == pytest.approx(1.0, abs=0.02)
    assert cal.spread_skill_ratio(var, mse, None) == pytest.approx(np.sqrt(m / (m + 1)), abs=0.02)
    assert np.isnan(cal.spread_skill_ratio(1.0, 0.0, m))


def test_coverage_and_flatness_basics():
    y = np.array([0.0, 1.0, 2.0, np.nan])
    np.testing.assert_array_equal(cal.covered(y, np.zeros(4), np.ones(4))[:3], [1, 1, 0])
    assert np.isnan(cal.covered(y, np.zeros(4), np.ones(4))[3])
    assert cal.central_levels(0.8) == pytest.approx((0.1, 0.9))
    with pytest.raises(ValueError, match="coverage"):
        cal.central_levels(1.5)
    f = cal.flatness(np.full(10, 100))
    assert f.max_dev == 0 and f.chi2 == 0 and f.reliability_index == 0
    skew = cal.flatness(np.array([200, *[100] * 8, 0]))
    assert skew.max_dev == pytest.approx(0.1) and skew.reliability_index == pytest.approx(0.2)
