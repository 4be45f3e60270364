"""The resolution floor of bit-rounded products (``defaults.PRODUCT_RESOLUTION``).

Audit: the information criterion kept 8 bits of t2m in K (whole kelvin at 280 K) against
1/64 degC for the same field in degC; gridded CRPS 1.028 against 1.013. Every value now keeps
the bits its own magnitude needs for a step within the floor, in the product's own units.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from scipy import ndimage

from probcast import defaults
from probcast.products import bitinfo, compress, write_products


def _noisy(mean: float, amp: float, noise: float, seed: int = 0) -> np.ndarray:
    """Smooth field plus white noise: the information ends a few bits in (about 8 at 280 K)."""
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.normal(size=(3, 96, 256)), sigma=(0, 8, 8))
    smooth /= smooth.std()
    return (mean + amp * smooth + noise * rng.normal(size=smooth.shape)).astype(np.float32)


def _written(ds: xr.Dataset, path: Path, **kwargs) -> xr.Dataset:
    write_products(ds, path, **kwargs)
    with xr.open_dataset(path) as back:
        return back.load()


def _power_of_two_within(step: float) -> float:
    return float(2.0 ** np.floor(np.log2(step)))


@pytest.mark.parametrize(
    ("name", "units", "scale", "offset"),
    [
        ("t2m", "K", 1.0, 0.0),
        ("t2m", "degC", 1.0, 273.15),
        ("td2m", "degF", 5.0 / 9.0, 273.15 - 32.0 * 5.0 / 9.0),
        ("ws10", "knot", 1852.0 / 3600.0, 0.0),
        ("msl", "Pa", 1.0, 0.0),
    ],
)
def test_every_value_is_held_to_the_floor_in_its_units(
    tmp_path: Path, name: str, units: str, scale: float, offset: float
) -> None:
    # (fields that keep one sign: across 0, the information keeps most bits anyway)
    canonical = {"t2m": (300.0, 3.0, 1.0), "td2m": (290.0, 3.0, 1.0)}
    canonical |= {"ws10": (12.0, 4.0, 1.0), "msl": (101000.0, 800.0, 150.0)}
    mean, amp, noise = canonical[name]
    values = ((np.abs(_noisy(mean, amp, noise)) - offset) / scale).astype(np.float32)
    ds = xr.Dataset({name: (("realization", "y", "x"), values, {"units": units})})
    step = _power_of_two_within(defaults.PRODUCT_RESOLUTION[name] / scale)
    back = _written(ds, tmp_path / "v.nc")[name]
    # the information alone keeps coarser values (1 K at 280 K): the floor is binding
    floor_bits = np.floor(np.log2(np.abs(values).max())) - np.log2(step)
    assert int(back.attrs["bitround_keepbits"]) < floor_bits
    assert float(back.attrs["least_significant_step"]) == step
    error = np.abs(back.values.astype(np.float64) - values)
    assert error.max() <= step / 2
    assert error.max() > step / 8  # the recorded step is the real one, not a loose bound


def test_small_values_keep_fewer_bits_than_large_ones(tmp_path: Path) -> None:
    # One absolute floor (0.05 m s-1, a step of 2**-5): 0.3 needs 3 mantissa bits, 40 10;
    # with 1 bit of information 0.3 stays 0.3 +- 2**-6 and 40 stays 40 +- 2**-6.
    rng = np.random.default_rng(1)
    values = np.where(
        rng.random((64, 256)) < 0.5,
        rng.uniform(0.2, 0.4, (64, 256)),
        rng.uniform(32, 60, (64, 256)),
    ).astype(np.float32)
    ds = xr.Dataset({"ws10": (("y", "x"), values, {"units": "m s-1"})})
    back = _written(ds, tmp_path / "ws.nc", keepbits={"ws10": 1})["ws10"]
    out = back.values
    assert np.abs(out - values).max() <= 2.0**-6
    small = out[values < 1].view(np.uint32) & np.uint32(0x7FFFFF)
    assert np.all(small & np.uint32((1 << 20) - 1) == 0)  # at most 3 bits
    assert float(back.attrs["least_significant_step"]) == 2.0**-5
    assert int(back.attrs["bitround_keepbits"]) == 1
    # resolution=None: the information's bits alone, as before (40 to within 8)
    coarse = _written(ds, tmp_path / "c.nc", keepbits={"ws10": 1}, resolution=None)["ws10"]
    assert np.abs(coarse.values - values).max() > 1.0
    # precipitation has no floor: an amount's relative precision is the information's
    tp = xr.Dataset({"tp": (("y", "x"), values, {"units": "kg m-2"})})
    rel = _written(tp, tmp_path / "tp.nc", keepbits={"tp": 1})["tp"].values
    assert np.abs(rel - values).max() > 1.0
    assert np.all(np.abs(rel - values) <= values * 2.0**-2)


def test_location_and_spread_parameters_are_held_to_the_floor(tmp_path: Path) -> None:
    loc = _noisy(280.0, 8.0, 1.0)
    spread = np.abs(_noisy(1.5, 0.3, 0.1, seed=2))
    dims = ("realization", "y", "x")
    ds = xr.Dataset(
        {
            "t2m_loc": (dims, loc, {"distribution_parameter": "loc", "units": "K"}),
            "t2m_scale": (dims, spread, {"distribution_parameter": "scale", "units": "K"}),
            "tcc_shape": (dims, spread, {"distribution_parameter": "shape", "units": "1"}),
        }
    )
    plan = compress.plan_rounding(ds)
    assert plan["t2m_loc"].log2_step == plan["t2m_scale"].log2_step == -5
    assert plan["tcc_shape"].log2_step is None  # dimensionless: no floor
    back = _written(ds, tmp_path / "p.nc")
    assert np.abs(back["t2m_loc"].values - loc).max() <= 2.0**-6


def test_a_rewritten_product_keeps_its_values(tmp_path: Path) -> None:
    # least_significant_step on a temperature is its spacing, not a probability's step: a
    # file read back and written again must not take it for exact bits of a [0, 1] grid.
    values = _noisy(280.0, 8.0, 1.0)
    ds = xr.Dataset({"t2m": (("realization", "y", "x"), values, {"units": "K"})})
    first = _written(ds, tmp_path / "a.nc")
    assert "least_significant_step" in first["t2m"].attrs
    assert compress.exact_keepbits(first) == {}
    again = _written(first, tmp_path / "b.nc")
    np.testing.assert_array_equal(again["t2m"].values, first["t2m"].values)


def test_probabilities_keep_their_own_step(tmp_path: Path) -> None:
    p = np.tile(np.float32([0.0, 0.2, 0.5004, 0.7, 1.0]), (8, 4))
    name = "probability_of_air_temperature_above_threshold"
    ds = xr.Dataset({name: (("y", "x"), p, {"units": "1"})})
    back = _written(ds, tmp_path / "p.nc")[name]
    assert back.attrs["least_significant_step"] == np.float32(2.0**-7)
    assert compress.plan_rounding(ds)[name].log2_step is None


def test_the_floor_table_covers_every_variable() -> None:
    from probcast.schema import VARIABLES

    assert set(defaults.PRODUCT_RESOLUTION) == set(VARIABLES) - {"tp"}
    assert all(v > 0 for v in defaults.PRODUCT_RESOLUTION.values())


def _reference(values: np.ndarray, keep: int, log2_step: int) -> np.ndarray:
    """Per-value bit rounding (round half to even) in int64, one value at a time in spirit."""
    bits = values.view(np.int32).astype(np.int64)
    exponent = ((bits >> 23) & 255) - 127
    drop = 23 - np.clip(exponent - log2_step, keep, 23)
    out = bits.copy()
    for d in np.unique(drop[drop > 0]):
        at = drop == d
        b = bits[at]
        out[at] = ((b + ((b >> d) & 1) + (1 << (d - 1)) - 1) >> d) << d
    return out.astype(np.int32).view(np.float32)


@pytest.mark.parametrize("keep", [0, 2, 7])
def test_the_fast_paths_round_as_value_by_value(keep: int) -> None:
    # Slabs of one exponent take a uniform path, others the per-value one: same result.
    rng = np.random.default_rng(keep)
    n = bitinfo.ROUND_SLAB
    parts = [
        rng.uniform(256, 511, n),  # one exponent (t2m in K)
        rng.normal(0, 10, n),  # both signs, every exponent
        np.abs(rng.normal(0, 1e-3, n)),  # the floor never binds
        rng.uniform(-1.7099, -1.70, n),  # inside -1.71, and many round across it
        rng.uniform(-2, 2, 1000),
    ]
    values = np.concatenate(parts).astype(np.float32)
    values[[3, n + 5, 2 * n + 7]] = [np.nan, np.inf, 1e-42]  # a subnormal
    values[n + 9] = 0.0
    out = bitinfo.round_block(values.reshape(-1, 8), keep, log2_step=-5).ravel()
    finite = np.isfinite(values)
    np.testing.assert_array_equal(out[finite], _reference(values, keep, -5)[finite])
    assert np.isnan(out[3]) and np.isinf(out[n + 5])
    low, high = -1.71, 300.01  # bounds off the 2**-5 grid: values at them and just inside
    values[:50] = np.float32(high)
    values[50:100] = np.float32(high) - np.float32(0.01)
    values[n + 20 : n + 40] = np.float32(low)
    bounded = bitinfo.round_block(values, keep, log2_step=-5, bounds=(low, high))
    reference = _reference(values, keep, -5)
    inside = values <= np.float32(high)
    reference[inside] = np.minimum(reference[inside], np.float32(high))
    inside = values >= np.float32(low)
    reference[inside] = np.maximum(reference[inside], np.float32(low))
    reference[values == np.float32(high)] = np.float32(high)
    reference[values == np.float32(low)] = np.float32(low)
    np.testing.assert_array_equal(bounded[finite], reference[finite])
    crossing = _reference(values, keep, -5)[3 * n : 4 * n] < np.float32(low)
    assert crossing.sum() > 100 and np.all(bounded[3 * n : 4 * n] >= np.float32(low))
