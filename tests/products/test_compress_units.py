"""Bit rounding of products in the user's units: physical bounds in the variable's own units.

Audit: with ``--units tcc=%`` every overcast 100 % was stored as 96 % (128 with 0 bits): the
bounds exempt from the analysis, and exact, were the canonical ones (1), not 100.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from probcast.products import build_products, write_products
from probcast.products.compress import plan_rounding
from probcast.products.units import products_to_units
from probcast.testing import products as synthetic


def _cloud(units: str = "%") -> xr.Dataset:
    """Cloud cover with overcast (exactly the bound) and values just inside both bounds."""
    rng = np.random.default_rng(0)
    field = np.clip(rng.normal(0.9, 0.15, (3, 64, 256)), 0.0, 1.0).astype(np.float32)
    field[:, :, :160] = 1.0  # overcast over most of the grid
    field[:, :4, 160:170] = np.float32(0.999)  # just under overcast
    field[:, 4:8, 160:170] = np.float32(0.0003)  # just above clear
    field[:, 8:12, 160:170] = 0.0
    scale = {"%": 100.0, "1": 1.0}[units]
    values = (field * np.float32(scale)).astype(np.float32)
    return xr.Dataset({"tcc": (("realization", "y", "x"), values, {"units": units})})


def test_bounds_are_taken_in_the_variables_own_units() -> None:
    ds = _cloud("%")
    t2m = np.full((8, 16), 10.0, np.float32)
    ds["t2m"] = (("a", "b"), t2m, {"units": "degC"})
    ds["tp"] = (("a", "b"), t2m, {"units": "in"})
    plan = plan_rounding(ds)
    assert plan["tcc"].skip == (0.0, 100.0)
    low, high = (np.float32(b) - np.float32(273.15) for b in (180.0, 340.0))
    assert plan["t2m"].skip == (float(low), float(high))
    assert plan["tp"].skip[0] == 0.0 and plan["tp"].skip[1] == pytest.approx(1000 / 25.4)
    assert plan_rounding(_cloud("1"))["tcc"].skip == (0.0, 1.0)


@pytest.mark.parametrize("keep", [0, 1, 2, 3])
def test_overcast_in_percent_stays_100_with_any_bits(tmp_path: Path, keep: int) -> None:
    ds = _cloud("%")
    write_products(ds, tmp_path / "c.nc", keepbits={"tcc": keep})
    with xr.open_dataset(tmp_path / "c.nc") as back:
        out = back["tcc"].values
    source = ds["tcc"].values
    assert np.all(out[source == 100.0] == 100.0), np.unique(out[source == 100.0])
    assert np.all(out[source == 0.0] == 0.0)
    assert out.max() <= 100.0 and out.min() >= 0.0


@pytest.mark.parametrize("floor", [True, False])
@pytest.mark.parametrize("keep", [0, 1, 2, 3])
def test_rounding_never_crosses_a_bound(keep: int, floor: bool) -> None:
    # 99.9 % with 2 bits was 112 %; -93.145 degC (above the lowest 180 K, -93.15) rounds to
    # -96 with 2 bits and to -93.15625 on the 2**-5 grid of the resolution floor.
    ds = _cloud("%")
    low = np.float32(180.0) - np.float32(273.15)  # as products_to_units converts 180 K
    ds["t2m"] = ("t", np.float32([-93.145, low, -20.3, 60.0, 66.8]), {"units": "degC"})
    bounds = {"tcc": (0.0, 100.0), "t2m": (low, np.float32(340.0) - np.float32(273.15))}
    kwargs = {} if floor else {"resolution": None}
    plan = plan_rounding(ds, keepbits={"tcc": keep, "t2m": keep}, **kwargs)
    for name in ("tcc", "t2m"):
        source = ds[name].values
        low, high = bounds[name]
        out, _ = plan[name](source)
        assert out.min() >= low and out.max() <= high, (name, out.min(), out.max())
        assert np.all(out[source == np.float32(high)] == np.float32(high))
        assert np.all(out[source == np.float32(low)] == np.float32(low))


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_cloud_percentiles_in_percent_match_the_canonical_ones(tmp_path: Path, suffix: str) -> None:
    # The audit's path: build_products, products_to_units, write_products (min_keepbits 0).
    ds = synthetic.params((64, 96), variables=("tcc",), seed=3)
    ds["tcc_loc"] = ds["tcc_loc"] + 0.3  # large overcast regions (latent location > 1)
    heads = {"tcc": "censored_normal_01"}
    built = build_products(ds, families=heads, products=["percentiles"], percentiles=[50, 95])
    exact = built["percentiles"]["tcc"].values * 100.0
    pct = products_to_units(built, {"tcc": "%"}, heads)["percentiles"]
    write_products(pct, tmp_path / f"p{suffix}", keepbits={"tcc": 0})
    engine = "zarr" if suffix == ".zarr" else None
    with xr.open_dataset(tmp_path / f"p{suffix}", engine=engine) as back:
        out = back["tcc"].values
    assert (exact == 100.0).sum() > 100
    assert np.all(out[exact == 100.0] == 100.0)
    assert np.nanmax(out) <= 100.0
