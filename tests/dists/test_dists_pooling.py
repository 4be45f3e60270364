"""Pooling seed networks: Vincentization and the linear pool against references."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from probcast import defaults, dists
from probcast.dists import pooling
from probcast.testing import references

NORMAL = dists.get("normal")
A = {"loc": jnp.array([0.0, 10.0]), "scale": jnp.array([1.0, 2.0])}
B = {"loc": jnp.array([2.0, 10.0]), "scale": jnp.array([3.0, 2.0])}
LEVELS = jnp.array([0.1, 0.5, 0.9])


def test_vincentized_normals_are_the_normal_with_mean_params():
    q = pooling.quantile_at(NORMAL, [A, B], LEVELS, "vincentize")
    mean = pooling.mean_params([A, B])
    ref = stats.norm.ppf(
        np.asarray(LEVELS), np.asarray(mean["loc"])[:, None], np.asarray(mean["scale"])[:, None]
    )
    np.testing.assert_allclose(q, ref, rtol=1e-5, atol=1e-5)
    p = pooling.exceedance(NORMAL, [A, B], jnp.array([0.5, 11.0]), "vincentize")
    ref = stats.norm.sf(
        [0.5, 11.0], np.asarray(mean["loc"])[:, None], np.asarray(mean["scale"])[:, None]
    )
    np.testing.assert_allclose(p, ref, atol=1e-5)


def test_mixture_quantiles_invert_the_mixture_cdf():
    q = np.asarray(pooling.quantile_at(NORMAL, [A, B], LEVELS, "mixture"))
    cdf = 0.5 * (
        stats.norm.cdf(q, [[0.0], [10.0]], [[1.0], [2.0]])
        + stats.norm.cdf(q, [[2.0], [10.0]], [[3.0], [2.0]])
    )
    np.testing.assert_allclose(cdf, np.broadcast_to(LEVELS, cdf.shape), atol=1e-5)
    p = pooling.exceedance(NORMAL, [A, B], jnp.asarray(q[0]), "mixture")
    np.testing.assert_allclose(p[0], 1 - np.asarray(LEVELS), atol=1e-5)


@pytest.mark.parametrize("combine", defaults.COMBINES)
def test_censored_point_mass_is_kept(combine):
    dist = dists.get("censored_logistic")
    p1 = {"loc": jnp.array([-1.0]), "scale": jnp.array([0.5])}
    p2 = {"loc": jnp.array([-0.5]), "scale": jnp.array([0.7])}
    q = pooling.quantile_at(dist, [p1, p2], LEVELS, combine)
    assert float(q[0, 0]) == 0.0  # both networks put >10 % at zero
    p_zero = pooling.exceedance(dist, [p1, p2], jnp.array([0.0, -1.0]), combine)
    assert 0.0 < float(p_zero[0, 0]) < 1.0 and float(p_zero[0, 1]) == pytest.approx(1.0)


def test_mixture_levels_inside_a_point_mass_some_networks_lack_are_exactly_the_bound():
    """Audit: where some networks' quantile was 0 (dry) and others' positive, the bisection
    never moved its lower end and returned 2**-41 of the bracket (1e-13 mm): 15 of the 24
    dry members of 51 were "wet", P(tp > 0) from the members 0.82 instead of 0.53."""
    dist = dists.get("censored_logistic")
    nets = [{"loc": jnp.array([v]), "scale": jnp.array([1.0])} for v in (-1.0, 0.0, 1.5)]
    levels = jnp.arange(1, 52, dtype=jnp.float32) / 52
    q = np.asarray(pooling.quantile_at(dist, nets, levels, "mixture"))[0]
    dry = float(1 - pooling.exceedance(dist, nets, jnp.array([0.0]), "mixture")[0, 0])
    assert dry == pytest.approx(0.471, abs=1e-3)
    expected_dry = int(np.sum(np.asarray(levels) <= dry))
    assert expected_dry == 24
    assert int(np.sum(q == 0.0)) == expected_dry and (q[expected_dry:] > 1e-3).all()


@pytest.mark.parametrize(
    "name", ["censored_logistic", "censored_normal", "truncated_normal", "censored_normal_01"]
)
def test_vincentized_bounded_families_are_the_family_with_mean_params(name):
    # pooled in the latent space: the parameters training fits and the products write
    dist = dists.get(name)
    p1 = {"loc": jnp.array([-0.6, 0.3]), "scale": jnp.array([0.4, 0.2])}
    p2 = {"loc": jnp.array([0.4, 0.9]), "scale": jnp.array([0.9, 0.3])}
    mean = {k: v[:, None] for k, v in pooling.mean_params([p1, p2]).items()}
    levels = jnp.array([0.05, 0.3, 0.5, 0.7, 0.95])
    q = pooling.quantile_at(dist, [p1, p2], levels, "vincentize")
    np.testing.assert_allclose(q, dist.quantile(mean, levels), atol=1e-6)
    t = jnp.array([0.0, 0.2, 0.5, 1.0])
    p = pooling.exceedance(dist, [p1, p2], t, "vincentize")
    np.testing.assert_allclose(p, 1.0 - dist.cdf(mean, t), atol=1e-6)


def test_single_network_is_exact():
    q = pooling.quantile_at(NORMAL, [A], LEVELS, "mixture")
    np.testing.assert_allclose(q, NORMAL.quantile({k: v[:, None] for k, v in A.items()}, LEVELS))
    with pytest.raises(ValueError, match="combine"):
        defaults.check_combine("average")


def test_vincentized_gamma_exceedance_matches_a_float64_reference():
    """The pooled exceedance (Newton on the level) against scipy, dry to very wet rows."""
    dist = dists.get("censored_shifted_gamma")
    rng = np.random.default_rng(3)
    n = 300
    center = np.concatenate([np.zeros(50), rng.gamma(0.4, 4.0, n - 100), rng.gamma(20, 1, 50)])
    params = [
        {
            k: np.asarray(v)
            for k, v in dist.constrain(
                jnp.asarray(rng.normal(0, 0.4, (n, 3)), jnp.float32),
                jnp.asarray(center, jnp.float32),
                1.0,
            ).items()
        }
        for _ in range(5)
    ]
    t = np.array([-1.0, 0.0, 0.1, 1.0, 5.0, 50.0], np.float32)
    p = np.asarray(pooling.exceedance(dist, params, jnp.asarray(t), "vincentize"))
    assert p.shape == (n, len(t)) and np.all((p >= 0.0) & (p <= 1.0))
    assert np.all(np.diff(p, axis=1) <= 1e-6)  # non-increasing in the threshold
    np.testing.assert_array_equal(p[:, 0], 1.0)  # below the support
    ref = np.array(
        [[references.pooled_gamma_exceedance(params, r, float(v)) for v in t[1:]] for r in range(n)]
    )
    np.testing.assert_allclose(p[:, 1:], ref, atol=1e-5)
    # the pooled quantile at the complementary level is the threshold again
    wet = (p[:, 3] > 1e-3) & (p[:, 3] < 1 - 1e-3)
    q = pooling.quantile_at(dist, params, jnp.asarray(1.0 - p[:, 3:4]), "vincentize")
    np.testing.assert_allclose(np.asarray(q)[wet, 0], 1.0, rtol=2e-3)


@pytest.mark.parametrize("combine", defaults.COMBINES)
def test_pooled_exceedance_is_never_negative(combine):
    # audit: ten networks' CDFs of 1.0 averaged in float32 gave P(ws10 > 60) = -1.49e-08
    dist = dists.get("normal")
    params = [{"loc": jnp.full(3, 5.0 + 0.01 * k), "scale": jnp.full(3, 0.5)} for k in range(10)]
    pooled = jax.jit(lambda ps, t: pooling.exceedance(dist, ps, t, combine))  # as predicted
    p = np.asarray(pooled(params, jnp.asarray([60.0, -60.0])))
    assert (p >= 0).all() and (p <= 1).all()
    assert p[:, 0].max() == 0.0 and p[:, 1].min() == 1.0
