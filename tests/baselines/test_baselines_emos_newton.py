"""The Newton EMOS fit: fast CRPS forms, warm-start stages, compaction and the fallbacks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from probcast import dists
from probcast.baselines import emos_fit, emos_kernels, emos_newton, fit_emos

SLOW = pytest.mark.slow  # compiling the truncated normal's own Hessian takes 10-30 s


@pytest.mark.parametrize("family", ["normal", pytest.param("truncated_normal", marks=SLOW)])
def test_fast_forms_equal_the_family_crps_and_derivatives(
    family: str, truncation_rows: Callable[..., tuple[jax.Array, ...]]
) -> None:
    raw, center, y = truncation_rows(family, 1000, seed=1, lo_max=12.0)
    with jax.enable_x64(True):
        spread = jnp.float64(1.3)
        fast = emos_kernels.row_terms(raw, center, y, spread, family=family, exact=False)
        exact = emos_kernels.row_terms(raw, center, y, spread, family=family, exact=True)
    ok = np.asarray(fast[3])
    assert ok.mean() > 0.5  # most rows inside the fast form's range
    if family == "truncated_normal":  # rows beyond the limit are flagged, not trusted
        with jax.enable_x64(True):
            params = dists.get(family).constrain(raw, center, spread)
        lo = -np.asarray(params["loc"]) / np.asarray(params["scale"])
        assert not ok[lo >= emos_kernels.FAR_LIMIT].any() and ok[lo < 7.9].all()
    for got, want in zip(fast[:3], exact[:3], strict=True):
        got, want = np.asarray(got)[ok], np.asarray(want)[ok]
        size = np.abs(want).reshape(len(want), -1).max(axis=1) + 1e-12
        err = np.abs(got - want).reshape(len(want), -1).max(axis=1)
        assert np.all(err <= 1e-6 * size + 1e-12)  # absolute rounding of cancelling terms


@pytest.mark.parametrize(
    "family",
    [
        "normal",
        pytest.param("censored_logistic", marks=SLOW),
        pytest.param("truncated_normal", marks=SLOW),
    ],
)
def test_newton_with_warm_starts_equals_lbfgs(family: str) -> None:
    # one group of 6000 rows: two subsample stages (2048, then 8192 rows: skipped) first
    rng = np.random.default_rng(2)
    n = 6000
    x = np.column_stack([np.ones(n), rng.normal(size=(n, 1))])
    center = np.maximum(rng.gamma(0.6, 3.0, n) - 0.5, 0.0)
    y = np.maximum(0.7 * center + rng.logistic(0.0, 0.8, n) - 0.2, 0.0)
    groups = np.zeros(n, dtype=np.int64)
    prior = np.zeros((1, 2, 2))
    args = (family, x, center, y, groups, prior, 1.4, 1e-4)
    newton = emos_fit.fit_groups(*args)
    with jax.enable_x64(True):
        lbfgs = emos_fit.fit_lbfgs(*args, pad_rows=emos_fit.bucket(n))
    np.testing.assert_allclose(newton, lbfgs, rtol=1e-4, atol=1e-5)


def test_compaction_of_the_last_groups_keeps_the_optimum(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    n, n_groups = 3000, 12
    x = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])
    groups = rng.integers(0, n_groups, n)
    center = rng.normal(0.0, 2.0, n)
    far = groups < 2  # two groups far from the start need many more iterations
    y = center + np.where(far, 25.0 + 8.0 * rng.standard_t(3, n), rng.normal(0.0, 1.0, n))
    prior = np.zeros((n_groups, 2, 3))
    args = ("normal", x, center, y, groups, prior, 1.0, 1e-3)
    runs: list[int] = []
    real = emos_fit._newton

    def spy(*a: Any, **k: Any) -> Any:
        runs.append(len(a[1]))
        return real(*a, **k)

    monkeypatch.setattr(emos_fit, "_newton", spy)
    monkeypatch.setattr(emos_fit, "COMPACT_ROWS", 0)
    alone = emos_fit.fit_groups(*args, pad_rows=4096)
    assert runs == [n]
    runs.clear()
    monkeypatch.setattr(emos_fit, "COMPACT_ROWS", 700)
    compact = emos_fit.fit_groups(*args, pad_rows=4096)
    assert len(runs) == 2 and runs[1] < runs[0] / 4  # the slow groups went on alone
    np.testing.assert_allclose(compact, alone, rtol=1e-6, atol=1e-7)


@SLOW
def test_truncated_rows_beyond_the_fast_form_use_the_family_formula(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = np.random.default_rng(4)
    n = 600
    center = rng.uniform(0.0, 0.3, n)
    y = np.where(rng.random(n) < 0.7, 0.0, rng.exponential(0.05, n))  # mass near 0
    x = np.column_stack([np.ones(n), (center - center.mean()) / center.std()])
    calls: list[bool] = []
    terms = emos_kernels.group_terms

    def spy(*a: Any, **k: Any) -> Any:
        calls.append(k["exact"])
        return terms(*a, **k)

    monkeypatch.setattr(emos_kernels, "group_terms", spy)
    prior = np.zeros((1, 2, 2))
    prior[0, 0, 0] = -100.0  # loc far below 0: l beyond the fast form's limit at the start
    args = ("truncated_normal", x, center, y, np.zeros(n, np.int64), prior, 1.0, 1e-4)
    theta = emos_fit.fit_groups(*args)
    assert True in calls and False in calls
    with jax.enable_x64(True):
        ref = emos_fit.fit_lbfgs(*args, pad_rows=emos_fit.bucket(n))
    np.testing.assert_allclose(theta, ref, rtol=1e-4, atol=1e-5)


def test_which_families_have_second_derivatives() -> None:
    assert emos_kernels.has_hessian("normal") and emos_kernels.has_hessian("censored_logistic")
    assert not emos_kernels.has_hessian("censored_shifted_gamma")  # igamma_grad_a


@SLOW
def test_family_without_second_derivatives_falls_back_to_lbfgs() -> None:
    rng = np.random.default_rng(5)
    fc = np.maximum(rng.gamma(0.6, 3.0, 400) - 0.5, 0.0)
    import pandas as pd

    table = pd.DataFrame(
        {"station": "X", "lead_time": 6.0, "fc_tp": fc,
         "obs_tp": np.maximum(0.6 * fc + rng.logistic(0.0, 0.8, 400) - 0.3, 0.0)}
    )  # fmt: skip
    model = fit_emos(table, "tp", family="censored_shifted_gamma")
    assert np.all(np.isfinite(np.asarray(model.global_coefs)))


def test_newton_decrement_rule_and_bad_start() -> None:
    """A quadratic-like problem converges in few calls; a non-finite start is an error."""
    rng = np.random.default_rng(6)
    n = 512  # 32 blocks of one group
    x = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = 2.0 + x[:, 1] + rng.normal(0.0, 1.0, n)
    blocks = np.zeros(n // emos_fit.BLOCK, np.int32)
    with jax.enable_x64(True):
        data = [jnp.asarray(a) for a in (x.T, blocks, np.full(n, 1.0 / n), np.zeros(n), y)]

    def terms(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with jax.enable_x64(True):
            out = emos_kernels.group_terms(
                jnp.asarray(theta), *data, jnp.float64(1.0), family="normal", exact=False
            )
        return tuple(np.asarray(a) for a in out[:3])  # type: ignore[return-value]

    theta, done, calls = emos_newton.newton_groups(terms, np.array([n]), np.zeros((1, 2, 2)), 1e-4)
    assert done.all() and calls < 15
    assert theta[0, 0, 0] == pytest.approx(2.0, abs=0.15)
    with pytest.raises(FloatingPointError, match="not finite"):
        emos_newton.newton_groups(terms, np.array([n]), np.full((1, 2, 2), np.nan), 1e-4)
