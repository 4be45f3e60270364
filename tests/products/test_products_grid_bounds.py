"""Gridded members and percentiles from parameters stay within physical bounds."""

from __future__ import annotations

import numpy as np
import xarray as xr

from probcast.products.source import ParametricSource


def _params(var: str, loc: float, scale: float) -> xr.Dataset:
    shape = (4, 5)
    dims = ("y", "x")
    return xr.Dataset(
        {
            f"{var}_loc": (dims, np.full(shape, loc)),
            f"{var}_scale": (dims, np.full(shape, scale)),
        },
        coords={"y": np.arange(4.0), "x": np.arange(5.0)},
    )


def test_uncensored_tails_are_limited_to_the_bounds():
    # tcc with a plain normal head far outside [0, 1]: every quantile and member is clipped
    src = ParametricSource(_params("tcc", 0.9, 0.8), families={"tcc": "normal"})
    q = src.quantiles("tcc", np.array([0.01, 0.5, 0.99]), "percentile").compute().to_numpy()
    assert q.min() == 0.0 and q.max() == 1.0
    for method in ("quantiles", "random"):
        m = src.members("tcc", 51, method, seed=0).compute().to_numpy()
        assert m.min() >= 0.0 and m.max() <= 1.0
        assert (m == 1.0).any()  # clipped, not dropped


def test_values_inside_the_bounds_are_unchanged():
    src = ParametricSource(_params("t2m", 280.0, 2.0), families={"t2m": "normal"})
    q = src.quantiles("t2m", np.array([0.1, 0.5, 0.9]), "percentile").compute().to_numpy()
    np.testing.assert_allclose(q[1], 280.0, rtol=1e-6)
    assert q[0].max() < 280.0 < q[2].min()


def test_unknown_variables_are_not_bounded():
    src = ParametricSource(_params("wibble", -1e6, 1.0), families={"wibble": "normal"})
    q = src.quantiles("wibble", np.array([0.5]), "percentile").compute().to_numpy()
    np.testing.assert_allclose(q, -1e6)
