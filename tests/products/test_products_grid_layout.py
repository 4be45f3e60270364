"""Product blocks come out in the file's layout: no transposed copies on the write path."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from numcodecs import BitRound

from probcast.products import build_products
from probcast.products.compress import _round_block
from probcast.products.source import DEFAULT_CHUNK, as_source
from probcast.products.write import storage_chunks
from probcast.testing import products as synthetic


def _numcodecs(block: np.ndarray, keepbits: int) -> np.ndarray:
    codec = BitRound(keepbits=keepbits)
    out = np.asarray(codec.decode(codec.encode(np.array(block, copy=True)))).reshape(block.shape)
    return np.where(np.isnan(block), block, out)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_round_block_equals_numcodecs_bitround_bit_for_bit(dtype: type) -> None:
    rng = np.random.default_rng(3)
    shape = (5, 17, 6)
    values = rng.normal(size=shape) * 10.0 ** rng.integers(-20, 20, size=shape)
    values = values.astype(dtype)
    values[0, 0, :4] = [np.nan, np.inf, 0.0, -0.0]
    strided = values.transpose(2, 0, 1)  # as a product block before this change
    n_mant = np.finfo(dtype).nmant
    for keepbits in range(n_mant + 1):
        out = _round_block(strided, keepbits)
        assert out.flags.c_contiguous
        expected = np.ascontiguousarray(_numcodecs(strided, keepbits))
        finite = np.isfinite(strided)
        itype = f"u{out.itemsize}"
        np.testing.assert_array_equal(out.view(itype)[finite], expected.view(itype)[finite])
        assert np.isnan(out[np.isnan(strided)]).all()
    assert strided[0, 0, 1] != 0.0  # the input is not mutated (a NaN stays NaN as well)


def _first_block(da: xr.DataArray) -> np.ndarray:
    return np.asarray(da.data.blocks[(0,) * da.ndim].compute(scheduler="sync"))


@pytest.mark.parametrize("kind", ["params", "members"])
def test_every_product_block_is_c_ordered_with_the_product_dim_first(kind: str) -> None:
    if kind == "params":
        data = synthetic.params((32, 64), variables=("tp",))
        families = {"tp": "censored_logistic"}
    else:
        data, families = synthetic.members((32, 64), n_members=7), None
    products = build_products(
        data,
        families=families,
        products=["members", "percentiles", "probabilities"],
        n_members=5,
        percentiles=[10, 50, 90],
        thresholds={"tp": [0.5, 2.0]},
        chunks={"y": 16, "x": 32},
    )
    for name, ds in products.items():
        for var, da in ds.data_vars.items():
            lead = {"members": "realization", "percentiles": "percentile"}.get(name, "threshold")
            assert da.dims[0] == lead, (name, var)
            block = _first_block(da)
            assert block.flags.c_contiguous, (name, var)
            assert block.dtype == np.float32
            assert block.shape == tuple(c[0] for c in da.chunks)


def test_random_members_are_c_ordered_and_chunk_reproducible() -> None:
    params = synthetic.params((24, 40), variables=("t2m",))
    source = as_source(params, families={"t2m": "normal"}, chunks={"y": 12, "x": 20})
    a = source.members("t2m", 6, "random", seed=4)
    b = source.members("t2m", 6, "random", seed=4)
    assert a.dims[0] == "realization" and _first_block(a).flags.c_contiguous
    np.testing.assert_array_equal(a.values, b.values)
    # Each block draws its own stream: blocks differ from each other.
    assert not np.array_equal(a.values[:, 0, :12, :20], a.values[:, 0, 12:, :20])


def _points(n_cases: int = 3, n_points: int = 480) -> xr.Dataset:
    """Scattered-point parameters ``(forecast_reference_time, point)``, as gfsnam-precip-grid."""
    rng = np.random.default_rng(0)
    dims = ("forecast_reference_time", "point")
    return xr.Dataset(
        {
            "t2m_loc": (dims, rng.normal(280, 5, (n_cases, n_points)).astype(np.float32)),
            "t2m_scale": (dims, np.full((n_cases, n_points), 1.5, np.float32)),
        },
        coords={
            "latitude": ("point", rng.uniform(25, 50, n_points)),
            "longitude": ("point", rng.uniform(-120, -70, n_points)),
        },
    )


def test_scattered_points_are_chunked_as_one_block_per_field() -> None:
    source = as_source(_points(), families={"t2m": "normal"})
    field = source.params["t2m"]["loc"]  # type: ignore[attr-defined]
    assert field.chunks == ((1, 1, 1), (480,))
    members = source.members("t2m", 4, "quantiles", 0)
    assert members.dims == ("realization", "forecast_reference_time", "point")
    assert storage_chunks(members) == (1, 1, 480)
    big = xr.DataArray(np.zeros((2, 300_000), np.float32), dims=("forecast_period", "point"))
    assert storage_chunks(big) == (1, DEFAULT_CHUNK * DEFAULT_CHUNK)
