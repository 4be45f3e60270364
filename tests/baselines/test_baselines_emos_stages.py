"""Warm-start stages of the Newton EMOS fit stop at their own sampling precision."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from probcast.baselines import emos_fit, emos_kernels, emos_newton


def _problem() -> tuple[Any, ...]:
    """Two groups of 4000 and 2000 rows (a 2048-row warm-start stage; 8192 is skipped)."""
    rng = np.random.default_rng(7)
    n = 6000
    x = np.column_stack([np.ones(n), rng.normal(size=(n, 1))])
    groups = (np.arange(n) >= 4000).astype(np.int64)
    center = np.maximum(rng.gamma(0.6, 3.0, n) - 0.5, 0.0)
    y = np.maximum(0.7 * center + rng.logistic(0.0, 0.8, n) - 0.2 + groups, 0.0)
    return ("normal", x, center, y, groups, np.zeros((2, 2, 2)), 1.4, 1e-4)


def _fit(monkeypatch: pytest.MonkeyPatch) -> tuple[np.ndarray, list[Any], int]:
    """The fit, the (rows, tolerances) of every Newton run and the number of kernel calls."""
    runs: list[Any] = []
    calls = [0]
    newton, kernel = emos_fit._newton, emos_kernels.group_terms

    def spy_newton(*a: Any, **k: Any) -> Any:
        runs.append((len(a[1]), np.array(k["tol"])))
        return newton(*a, **k)

    def spy_kernel(*a: Any, **k: Any) -> Any:
        calls[0] += 1
        return kernel(*a, **k)

    monkeypatch.setattr(emos_fit, "_newton", spy_newton)
    monkeypatch.setattr(emos_kernels, "group_terms", spy_kernel)
    return emos_fit.fit_groups(*_problem()), runs, calls[0]


def test_stage_tolerance_is_per_group_and_tied_to_its_rows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    theta, runs, calls = _fit(monkeypatch)
    assert [r for r, _ in runs] == [2000, 6000]  # 1024 rows a group at most, then all
    stage_rows = np.array([1000, 1000])  # every 4th row of group 0, every 2nd of group 1
    np.testing.assert_allclose(runs[0][1], emos_fit.STAGE_TOL / stage_rows)
    np.testing.assert_allclose(runs[1][1], emos_newton.DECREMENT_TOL)
    # the same optimum as with every stage converged to the final tolerance, in fewer calls
    monkeypatch.setattr(emos_fit, "STAGE_TOL", emos_newton.DECREMENT_TOL)
    tight, _, tight_calls = _fit(monkeypatch)
    assert calls < tight_calls
    np.testing.assert_allclose(theta, tight, rtol=1e-6, atol=1e-7)
