"""CRPSS and its block bootstrap; skill in the full verify() pipeline."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from probcast.testing import verification as syn
from probcast.verify import skill
from probcast.verify.evaluate import verify


@pytest.fixture
def paired():
    rng = np.random.default_rng(0)
    blocks = np.repeat(np.arange(40), 25)
    ref = rng.gamma(2.0, 1.0, size=blocks.size)
    score = ref * (0.8 + 0.1 * rng.standard_normal(blocks.size)) ** 2
    return score, ref, blocks


def test_skill_score_definition():
    assert skill.skill_score(np.ones(5), np.ones(5)) == 0.0
    assert skill.skill_score(np.zeros(5), np.ones(5)) == 1.0
    assert skill.skill_score(np.array([1.0, np.nan]), np.array([2.0, 4.0])) == 0.5


def test_bootstrap_reproducible_with_seed(paired):
    score, ref, blocks = paired
    a = skill.bootstrap_skill(score, ref, blocks, n_boot=300, seed=42)
    b = skill.bootstrap_skill(score, ref, blocks, n_boot=300, seed=42)
    c = skill.bootstrap_skill(score, ref, blocks, n_boot=300, seed=43)
    assert a == b
    assert (a.lo, a.hi) != (c.lo, c.hi)
    assert a.value == c.value
    assert a.n_blocks == 40 and a.n == blocks.size and a.seed == 42


def test_interval_does_not_depend_on_the_order_of_the_cases(paired):
    """Audit: blocks were numbered by first appearance, so the same cases in another row
    order resampled other blocks (crpss_lo moved by 0.007)."""
    score, ref, blocks = paired
    order = np.random.default_rng(1).permutation(blocks.size)
    a = skill.bootstrap_skill(score, ref, blocks, n_boot=300, seed=42)
    b = skill.bootstrap_skill(score[order], ref[order], blocks[order], n_boot=300, seed=42)
    assert (b.lo, b.hi) == pytest.approx((a.lo, a.hi), abs=1e-12)


def test_interval_contains_estimate_and_narrows_with_confidence(paired):
    score, ref, blocks = paired
    s95 = skill.bootstrap_skill(score, ref, blocks, n_boot=500, seed=1)
    s50 = skill.bootstrap_skill(score, ref, blocks, n_boot=500, seed=1, confidence=0.5)
    assert s95.lo < s95.value < s95.hi
    assert s95.lo < s50.lo < s50.value < s50.hi < s95.hi


def test_block_bootstrap_wider_than_case_bootstrap_for_correlated_blocks():
    rng = np.random.default_rng(2)
    blocks = np.repeat(np.arange(30), 50)
    day = rng.normal(0, 0.3, 30)[blocks]  # shared per init date
    ref = np.exp(rng.normal(size=blocks.size) * 0.1 + 1)
    score = ref * np.exp(day - 0.2)
    by_block = skill.bootstrap_skill(score, ref, blocks, seed=0)
    by_case = skill.bootstrap_skill(score, ref, np.arange(blocks.size), seed=0)
    assert (by_block.hi - by_block.lo) > 2 * (by_case.hi - by_case.lo)


def test_bootstrap_edge_cases(paired):
    score, ref, _ = paired
    one = skill.bootstrap_skill(score, ref, np.zeros(score.size, int))
    assert np.isnan(one.lo) and np.isfinite(one.value)
    with pytest.raises(ValueError, match="confidence"):
        skill.bootstrap_skill(score, ref, np.zeros(score.size), confidence=1.0)
    with pytest.raises(ValueError, match="differ in shape"):
        skill.bootstrap_skill(score, ref[:-1], np.zeros(score.size))


def test_init_date_blocks():
    t = pd.to_datetime(["2020-01-02T12:00Z", "2020-01-01T00:00Z", "2020-01-02T00:00Z"])
    np.testing.assert_array_equal(skill.init_date_blocks(pd.Series(t)), [1, 0, 1])


def test_verify_crpss_matches_manual_computation():
    truth, mu, sigma = syn.truth_table(n_stations=4, n_inits=15)
    ens = syn.members_table(truth, mu, sigma, n_members=10)
    ens = ens.sample(frac=1.0, random_state=0)  # row order must not matter
    v = verify(truth, {"raw": truth, "ens": ens}, reference="raw", by=["lead_time"], n_boot=200)
    c_ens = v.cases[("ens", "t2m")]
    c_raw = v.cases[("raw", "t2m")]
    paired = skill.paired_cases(c_ens, c_raw, ("station", "init_time", "lead_time"))
    expected = 1 - paired["score"].mean() / paired["reference"].mean()
    assert v.value("ens", "t2m", "crpss") == pytest.approx(expected)
    assert v.value("ens", "t2m", "crpss_lo") < expected < v.value("ens", "t2m", "crpss_hi")
    assert v.value("ens", "t2m", "crpss", by="lead_time", key="6") > 0
    assert np.isnan(v.value("raw", "t2m", "crpss"))
    again = verify(truth, {"raw": truth, "ens": ens}, reference="raw", by=["lead_time"], n_boot=200)
    pd.testing.assert_frame_equal(v.scores, again.scores)


def _gamma_pairs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    s = rng.gamma(2.0, 1.0, 120)
    return s, s * rng.uniform(0.9, 1.4, 120), np.repeat(np.arange(12), 10)


def test_bootstrap_skill_keeps_its_draws():
    # values of the implementation before block_ratio_interval shared its draws (39c533e):
    # published CRPSS intervals must not move with a refactor
    k = skill.bootstrap_skill(*_gamma_pairs(), n_boot=200, seed=3)
    assert (k.value, k.lo, k.hi) == (0.13569133435361524, 0.10718981316343545, 0.16047625722697687)


def test_block_ratio_interval_is_the_skill_interval_of_one_minus_the_ratio():
    s, r, b = _gamma_pairs()
    ratio = skill.block_ratio_interval(s, r, b, n_boot=200, seed=3)
    k = skill.bootstrap_skill(s, r, b, n_boot=200, seed=3)
    assert ratio.value == pytest.approx(s.sum() / r.sum())
    assert (1.0 - ratio.hi, 1.0 - ratio.lo) == pytest.approx((k.lo, k.hi), rel=1e-12)
    # a constant ratio: every replicate gives it
    const = skill.block_ratio_interval(2.0 * r, r, b)
    assert const.lo == pytest.approx(2.0) and const.hi == pytest.approx(2.0)
    # replicates with a zero denominator (blocks of zeros drawn alone) are left out
    zero = r.copy()
    zero[10:] = 0.0
    out = skill.block_ratio_interval(s, zero, b, n_boot=200)
    assert np.isfinite([out.lo, out.hi]).all() and out.lo <= out.hi
    with pytest.raises(ValueError, match="numerator, denominator, blocks differ"):
        skill.block_ratio_interval(s, r[:5], b)
