"""Predictive: every form gives consistent quantiles, CDF, samples and scores."""

from __future__ import annotations

import numpy as np
import pytest

from probcast.dists import Predictive

LEVELS = (0.1, 0.5, 0.9)


def _forms() -> list[Predictive]:
    rng = np.random.default_rng(0)
    members = rng.normal(0.0, 1.0, (4, 200))
    quantiles = np.quantile(members, LEVELS, axis=1).T
    return [
        Predictive.from_params("t2m", "normal", {"loc": np.zeros(4), "scale": np.ones(4)}),
        Predictive.from_members("t2m", members),
        Predictive.from_quantiles("t2m", LEVELS, quantiles),
        Predictive.from_point("t2m", np.zeros(4)),
    ]


@pytest.mark.parametrize("fc", _forms(), ids=lambda f: f.kind)
def test_samples_quantiles_and_cdf_agree(fc: Predictive) -> None:
    draws = fc.sample(7, seed=1)
    assert draws.shape == (4, 7) and np.isfinite(draws).all()
    q = fc.quantiles(LEVELS)
    assert q.shape == (4, 3) and (np.diff(q, axis=1) >= 0).all()
    if fc.kind in ("params", "members"):
        np.testing.assert_allclose(fc.quantiles([0.5])[:, 0], 0.0, atol=0.2)
        p = fc.exceedance([0.0])
        np.testing.assert_allclose(p[:, 0], 0.5, atol=0.1)
    if fc.kind == "quantiles":  # draws stay inside the outermost given quantiles
        assert (draws >= q[:, :1] - 1e-12).all() and (draws <= q[:, -1:] + 1e-12).all()
    assert len(fc.take(np.array([0, 2]))) == 2


def test_point_crps_is_absolute_error_and_quantile_crps_is_refused() -> None:
    point, quantiles = _forms()[3], _forms()[2]
    np.testing.assert_allclose(point.crps(np.array([1.0, -2.0, 0.0, 3.0])), [1, 2, 0, 3])
    with pytest.raises(ValueError, match="verify"):
        quantiles.crps(np.zeros(4))
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        Predictive.from_quantiles("t2m", (0.0, 0.5), np.zeros((1, 2)))
