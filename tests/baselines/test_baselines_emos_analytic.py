"""Analytic CRPS derivatives of the EMOS fitting forms and the per-group kernel."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from probcast import dists
from probcast.baselines import emos_analytic, emos_kernels
from probcast.baselines.emos_layout import Layout


@pytest.mark.parametrize("family", ["normal", "truncated_normal"])
def test_analytic_derivatives_equal_autodiff_of_the_same_form(
    family: str, truncation_rows: Callable[..., tuple[jax.Array, ...]]
) -> None:
    raw, center, y = truncation_rows(family, 4000, seed=11, lo_max=7.9, raw_sd=1.5, y_in_scale=True)
    with jax.enable_x64(True):
        spread = jnp.float64(1.3)
        got = emos_kernels.row_terms(raw, center, y, spread, family=family, exact=False)
        want = emos_kernels.row_terms(
            raw, center, y, spread, family=family, exact=False, analytic=False
        )
        params = dists.get(family).constrain(raw, center, spread)
    lo = -np.asarray(params["loc"]) / np.asarray(params["scale"])
    np.testing.assert_array_equal(np.asarray(got[3]), np.asarray(want[3]))
    assert np.asarray(got[3]).all() and (np.asarray(y) == 0).mean() > 0.3
    for k, (a, b) in enumerate(zip(got[:3], want[:3], strict=True)):
        a, b = np.asarray(a).reshape(len(a), -1), np.asarray(b).reshape(len(b), -1)
        rel = (np.abs(a - b) / (np.abs(b).max(axis=1, keepdims=True) + 1e-300)).max(axis=1)
        assert rel[lo < 5.0].max() < 1e-9, (k, rel[lo < 5.0].max())
        # near l = 8 the Hessian's O(1/l) differences of O(l) tail ratios carry erfc's own
        # relative error (~1e-14) times l^4; autodiff's is ~10 times smaller there
        assert rel.max() < (1e-9 if k < 2 else 5e-8), (k, rel.max())


def _host_group_sums(
    groups: np.ndarray,
    weight: np.ndarray,
    x: np.ndarray,
    crps: np.ndarray,
    d_raw: np.ndarray,
    h_raw: np.ndarray,
    n_groups: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-group loss, gradient and Hessian of rows sorted by group, on the host (reference).

    Args:
        groups: Group of every row, non-decreasing.
        weight: ``w_r`` of every row.
        x: Design rows ``(rows, n_feat)``.
        crps: Per-row CRPS.
        d_raw: Per-row gradient with respect to the unconstrained values ``(rows, p)``.
        h_raw: Per-row Hessian ``(rows, p, p)``.
        n_groups: Number of groups of the output.

    Returns:
        ``(loss (G,), gradient (G, k), Hessian (G, k, k))`` like :data:`Terms`, zero for
        groups without rows.
    """
    n, p = d_raw.shape
    k = p * x.shape[1]
    grad = (d_raw[:, :, None] * x[:, None, :]).reshape(n, k)
    hess = np.einsum("rac,rk,rm->rakcm", h_raw, x, x).reshape(n, k * k)
    terms = weight[:, None] * np.concatenate([crps[:, None], grad, hess], axis=1)
    out = np.zeros((n_groups, terms.shape[1]))
    if n:
        starts = np.flatnonzero(np.r_[True, groups[1:] != groups[:-1]])
        out[groups[starts]] = np.add.reduceat(terms, starts, axis=0)
    return out[:, 0], out[:, 1 : 1 + k], out[:, 1 + k :].reshape(n_groups, k, k)


@pytest.mark.parametrize("family", ["normal", "truncated_normal", "censored_logistic"])
def test_device_group_sums_equal_host_sums_of_the_row_terms(family: str) -> None:
    """Per-group sums on the device (blocks, padding, rows beyond the fast form left out)."""
    rng = np.random.default_rng(12)
    groups = np.repeat([0, 2, 3], [40, 7, 25])  # group 1 has no rows
    n = len(groups)
    x = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])
    center = rng.gamma(0.6, 3.0, n)
    y = np.where(rng.random(n) < 0.4, 0.0, rng.gamma(1.0, 2.0, n))
    theta = rng.normal(0.0, 0.5, (4, 2, 3))
    theta[:, 0, 0] = -300.0 * (np.arange(4) == 3)  # group 3: loc far below 0 (beyond 30 sd)
    layout = Layout.build(groups, 4, 256)
    weight = np.zeros(layout.rows)
    weight[layout.at] = rng.uniform(0.5, 1.5, n)
    placed = [layout.place(a) for a in (x, center, y)]
    with jax.enable_x64(True):
        spread = jnp.float64(0.7)
        got = emos_kernels.group_terms(
            jnp.asarray(theta), jnp.asarray(placed[0].T), jnp.asarray(layout.blocks),
            jnp.asarray(weight), jnp.asarray(placed[1]), jnp.asarray(placed[2]), spread,
            family=family, exact=False,
        )  # fmt: skip
        raw = np.einsum("rf,rpf->rp", x, theta[groups])
        rows = emos_kernels.row_terms(
            jnp.asarray(raw), jnp.asarray(center), jnp.asarray(y), spread,
            family=family, exact=False,
        )  # fmt: skip
    ok = np.asarray(rows[3])
    assert np.array_equal(np.asarray(got[3])[layout.at], ok)
    if family == "truncated_normal":
        assert 0 < (~ok).sum() < n  # some rows beyond the fast form: left out of the sums
    w = weight[layout.at] * ok
    terms = [np.where(ok.reshape(-1, *[1] * (np.ndim(a) - 1)), a, 0.0) for a in rows[:3]]
    want = _host_group_sums(groups, w, x, *(np.asarray(a) for a in terms), 4)
    # raw is summed in another order; the Hessian of rows with l near the limit amplifies it
    for a, b, rtol in zip(got[:3], want, (1e-9, 1e-9, 1e-7), strict=True):
        np.testing.assert_allclose(np.asarray(a), b, rtol=rtol, atol=1e-12)
    assert np.all(np.asarray(got[0])[1] == 0.0)  # the empty group


def test_mills_series_equals_the_erfc_ratio() -> None:
    x = np.linspace(emos_analytic.TRUNC_LIMIT, 30.0, 200)
    with jax.enable_x64(True):
        got = np.asarray(emos_analytic.mills(jnp.asarray(x)))
        want = np.asarray(0.5 * jax.scipy.special.erfc(x / np.sqrt(2.0)) / emos_analytic.pdf(x))
    np.testing.assert_allclose(got, want, rtol=1e-13)


def test_far_rows_stay_in_the_fitting_form_up_to_its_limit() -> None:
    """Beyond l = 12 (Mills series): the family's CRPS, derivatives equal to autodiff."""
    rng = np.random.default_rng(13)
    n, family = 3000, "truncated_normal"
    lo = np.concatenate([rng.uniform(11.0, 34.0, n - 2), [12.0 - 1e-9, 12.0]])
    with jax.enable_x64(True):
        dist = dists.get(family)
        zeros = jnp.zeros(n)
        raw = jnp.stack([zeros, jnp.asarray(rng.normal(0.0, 1.0, n))], -1)
        scale = np.asarray(dist.constrain(raw, zeros, 1.0)["scale"])
        raw = raw.at[:, 0].set(jnp.asarray(-lo * scale))  # loc = raw0 (centre 0, spread 1)
        y = jnp.asarray(np.where(rng.random(n) < 0.5, 0.0, rng.exponential(scale / lo)))
        spread = jnp.float64(1.0)
        params = dist.constrain(raw, zeros, spread)
        got = emos_kernels.row_terms(raw, zeros, y, spread, family=family, exact=False)
        want = emos_kernels.row_terms(
            raw, zeros, y, spread, family=family, exact=False, analytic=False
        )
        crps = np.asarray(dist.crps(params, y))
    lo = -np.asarray(params["loc"]) / np.asarray(params["scale"])
    ok = np.asarray(got[3])
    assert np.array_equal(ok, lo < emos_analytic.FAR_LIMIT) and 0 < (~ok).sum() < n / 4
    # erfc's ratios near l = 12 are within 1e-11 of a 50-digit reference, the series' 1e-12
    np.testing.assert_allclose(np.asarray(got[0])[ok], crps[ok], rtol=5e-11)
    for k, (a, b) in enumerate(zip(got[1:3], want[1:3], strict=True)):
        a, b = np.asarray(a)[ok].reshape(ok.sum(), -1), np.asarray(b)[ok].reshape(ok.sum(), -1)
        rel = (np.abs(a - b) / np.abs(b).max(axis=1, keepdims=True)).max()
        assert rel < (5e-8 if k == 0 else 1e-5), (k, rel)  # erfc at l = 11: 7e-9, 2e-7


@pytest.mark.parametrize("family", ["censored_normal_01", "censored_normal"])
def test_censored_normal_derivatives_equal_autodiff(family: str) -> None:
    """Rows inside, at and beyond the bounds; most mass censored on either side."""
    rng = np.random.default_rng(5)
    n = 6000
    with jax.enable_x64(True):
        raw = jnp.asarray(np.column_stack([rng.normal(0, 2.0, n), rng.normal(0, 1.0, n)]))
        center = jnp.asarray(rng.uniform(-0.5, 1.5, n))
        y = rng.uniform(-0.3, 1.3, n)
        y[rng.random(n) < 0.3] = 0.0
        y[rng.random(n) < 0.2] = 1.0
        y = jnp.asarray(y)
        spread = jnp.float64(0.4)
        got = emos_kernels.row_terms(raw, center, y, spread, family=family, exact=False)
        want = emos_kernels.row_terms(
            raw, center, y, spread, family=family, exact=False, analytic=False
        )
    assert np.asarray(got[3]).all()
    for k, (a, b) in enumerate(zip(got[:3], want[:3], strict=True)):
        a, b = np.asarray(a).reshape(len(a), -1), np.asarray(b).reshape(len(b), -1)
        assert np.isfinite(a).all()
        # rows whose terms are all ~0 (the mass far beyond a bound) compare absolutely:
        # there autodiff's own cancellation leaves ~1e-17
        scale = np.maximum(np.abs(b).max(axis=1, keepdims=True), 1e-6)
        rel = (np.abs(a - b) / scale).max(axis=1)
        assert rel.max() < 1e-9, (k, rel.max(), int(rel.argmax()))


@pytest.mark.parametrize("family", ["censored_normal_01", "censored_normal"])
def test_censored_normal_fitting_crps_equals_the_family_formula(family: str) -> None:
    """The fitting form's CRPS (shared ``erfc`` values) is the family's, bounds 40 sd away too.

    Where most of the mass lies beyond a bound the O(|bound|) terms must cancel exactly:
    an error of one part in 1e14 of the location would show there.
    """
    dist = dists.get(family)
    rng = np.random.default_rng(9)
    n = 50_000
    mu = rng.normal(0.5, 1.0, n) * rng.choice([1.0, 5.0, 40.0], n)
    sigma = np.exp(rng.normal(-1.0, 1.5, n))
    y = rng.uniform(-0.3, 1.3, n)
    y[rng.random(n) < 0.3] = dist.lower
    y[rng.random(n) < 0.2] = 1.0
    y = np.clip(y, dist.lower, dist.upper)
    with jax.enable_x64(True):
        args = [jnp.asarray(a) for a in (mu, sigma, y)]
        got = np.asarray(emos_analytic.FORMS[family](*args)[0])
        want = np.asarray(dist.crps({"loc": args[0], "scale": args[1]}, args[2]))
    assert np.isfinite(got).all()
    assert np.max(np.abs(got - want) / sigma) < 1e-13
    big = np.abs(want) > 1e-8 * sigma
    assert np.max(np.abs(got - want)[big] / np.abs(want[big])) < 1e-8
