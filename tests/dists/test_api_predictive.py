"""``Predictive`` scores take one observation per case: an ``(n, 1)`` column is flattened,
anything else is refused, never broadcast to an ``(n, n)`` array."""

from __future__ import annotations

import re

import numpy as np
import pytest

from probcast.dists import Predictive

N = 7


def _forms() -> dict[str, Predictive]:
    rng = np.random.default_rng(0)
    loc = rng.normal(2.0, 1.0, N)
    return {
        "params": Predictive.from_params(
            "tp", "censored_logistic", {"loc": loc, "scale": np.full(N, 0.5)}
        ),
        "members": Predictive.from_members("tp", loc[:, None] + rng.normal(0, 1, (N, 5))),
        "point": Predictive.from_point("tp", loc),
    }


@pytest.mark.parametrize("kind", ["params", "members", "point"])
def test_crps_of_a_column_of_observations_is_one_per_case(kind: str):
    fc = _forms()[kind]
    y = np.linspace(0.0, 4.0, N)
    flat = fc.crps(y)
    assert flat.shape == (N,)
    for shaped in (y[:, None], y[None, :], list(y)):
        got = fc.crps(shaped)
        assert got.shape == (N,)
        np.testing.assert_allclose(got, flat, rtol=1e-6)


@pytest.mark.parametrize("kind", ["params", "members", "point"])
@pytest.mark.parametrize("shape", [(N - 2,), (N + 1, 1), (N, 2), (), (1,)])
def test_crps_refuses_observations_that_are_not_one_per_case(kind: str, shape):
    fc = _forms()[kind]
    want = rf"observations of shape {re.escape(str(shape))} for {N} cases; expected .*\({N},\)"
    with pytest.raises(ValueError, match=want):
        fc.crps(np.zeros(shape))


def test_crps_refuses_observations_that_are_not_numbers():
    with pytest.raises(ValueError, match="observations must be numbers"):
        _forms()["point"].crps(np.array(["a"] * N))


@pytest.mark.parametrize("method", ["cdf", "exceedance"])
def test_thresholds_per_case_are_refused(method: str):
    fc = _forms()["members"]
    with pytest.raises(ValueError, match=r"x of shape \(7, 1\); expected a number or a 1-D"):
        getattr(fc, method)(np.zeros((N, 1)))
    assert getattr(fc, method)([0.0, 1.0]).shape == (N, 2)


def test_quantile_levels_per_case_are_refused():
    fc = _forms()["params"]
    with pytest.raises(ValueError, match=r"levels of shape \(7, 1\)"):
        fc.quantiles(np.full((N, 1), 0.5))  # type: ignore[arg-type]
    assert fc.quantiles([0.1, 0.9]).shape == (N, 2)
