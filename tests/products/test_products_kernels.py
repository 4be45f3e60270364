"""Compiled product kernels: one compilation per family and request, same values per block."""

from __future__ import annotations

import numpy as np
import pytest

from probcast import dists, schema
from probcast.products import build_percentiles, build_probabilities, kernels
from probcast.products.compress import ROUND_SLAB, _round_block
from probcast.products.source import ParametricSource
from probcast.testing import products as synthetic

LEVELS = np.array([0.1, 0.5, 0.9])


def _reference_quantiles(family: str, params: dict[str, np.ndarray], lo: float, hi: float):
    dist = dists.get(family)
    q = dist.quantile({k: v[..., None] for k, v in params.items()}, LEVELS)
    return np.moveaxis(np.clip(np.asarray(q), lo, hi), -1, 0)


def test_one_compilation_per_family_whatever_the_block_shapes() -> None:
    # 70 x 90 in 32 x 32 chunks: 9 block shapes; t2m, td2m, u10 share the normal family.
    params = synthetic.params((70, 90), variables=("t2m", "td2m", "u10"), seed=3)
    families = {"t2m": "normal", "td2m": "normal", "u10": "normal"}
    source = ParametricSource(params, families, chunks={"y": 32, "x": 32})
    out = build_percentiles(source, LEVELS * 100).compute()
    fn = kernels.compiled(("normal", ("quantiles", *LEVELS.tolist())), None, None)
    assert fn._cache_size() == 1  # type: ignore[attr-defined]
    for var in families:
        expected = _reference_quantiles(
            "normal",
            {"loc": params[f"{var}_loc"].values, "scale": params[f"{var}_scale"].values},
            *schema.bounds(var),
        )
        np.testing.assert_allclose(out[var].values, expected, rtol=1e-6, atol=1e-5)


def test_padded_last_piece_gives_the_values_of_an_unpadded_call() -> None:
    rng = np.random.default_rng(0)
    n = kernels.PIECE + 123  # two pieces, the last one padded
    block = {
        "loc": rng.normal(5.0, 3.0, (1, n)).astype(np.float32),
        "scale": rng.uniform(0.5, 2.0, (1, n)).astype(np.float32),
    }
    key = ("truncated_normal", ("quantiles", *LEVELS.tolist()))
    fn = kernels.compiled(key, dists.get("truncated_normal"), kernels.quantile_body(LEVELS))
    got = kernels.run(key, fn, block, (0.0, np.inf), LEVELS.size)
    assert got.shape == (LEVELS.size, 1, n) and got.dtype == np.float32
    expected = _reference_quantiles("truncated_normal", block, 0.0, np.inf)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_exceedance_kernel_matches_the_cdf() -> None:
    params = synthetic.params((40, 50), variables=("tp",), seed=1)
    source = ParametricSource(params, {"tp": "censored_logistic"}, chunks={"y": 16, "x": 16})
    ts = [0.1, 1.0]
    got = build_probabilities(source, "tp", ts).compute()
    dist = dists.get("censored_logistic")
    p = {"loc": params["tp_loc"].values, "scale": params["tp_scale"].values}
    expected = np.stack([1.0 - np.asarray(dist.cdf(p, t)) for t in ts])
    values = next(iter(got.data_vars.values())).values
    np.testing.assert_allclose(values, np.clip(expected, 0, 1), atol=1e-6)


def test_truncated_normal_far_tail_solved_only_where_needed() -> None:
    # The Newton solve of the far tail (l = -loc/scale >= 8) is skipped for blocks without
    # such elements: the near values are the same alone or next to far ones.
    dist = dists.get("truncated_normal")
    levels = np.array([0.05, 0.5, 0.95])
    near = {"loc": np.array([3.0, -2.0, 0.5], np.float32), "scale": np.ones(3, np.float32)}
    far = {"loc": np.array([-20.0, -12.0], np.float32), "scale": np.ones(2, np.float32)}
    mixed = {k: np.concatenate([near[k], far[k]]) for k in near}

    def q(p: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(dist.quantile({k: v[:, None] for k, v in p.items()}, levels))

    both = q(mixed)
    np.testing.assert_array_equal(both[:3], q(near))
    np.testing.assert_array_equal(both[3:], q(far))
    # Far tail: exponential with rate l, median about log(2)/l above 0.
    assert both[3, 1] == pytest.approx(np.log(2) / 20.0, rel=0.02)


@pytest.mark.parametrize("keep", [0, 3, 10, 22])
def test_slab_rounding_matches_whole_array_rounding(keep: int) -> None:
    rng = np.random.default_rng(keep)
    block = rng.normal(280.0, 10.0, (3, ROUND_SLAB // 2 + 77)).astype(np.float32)
    block[0, 5] = np.nan
    drop = 23 - keep
    bits = block.view(np.int32).astype(np.int64)
    expected = ((bits + ((bits >> drop) & 1) + (1 << (drop - 1)) - 1) >> drop) << drop
    expected = expected.astype(np.int32).view(np.float32)
    expected[0, 5] = np.nan
    got = _round_block(block[:, ::-1], keep)  # strided input, C-ordered output
    assert got.flags.c_contiguous
    np.testing.assert_array_equal(got, expected[:, ::-1])
    assert np.isnan(got[0, -6])
