"""Written probabilities: rounded once, to the documented step, and inside [0, 1]."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from probcast.products import build_products, write_products
from probcast.testing import products as synthetic


def _written(path: Path, name: str) -> np.ndarray:
    with xr.open_dataset(path, engine="zarr" if path.suffix == ".zarr" else None) as back:
        return back[name].values


def _check(exact: np.ndarray, written: np.ndarray, step: float) -> None:
    assert np.array_equal(np.isnan(exact), np.isnan(written))
    ok = ~np.isnan(exact)
    assert written[ok].min() >= 0.0 and written[ok].max() <= 1.0
    # docs/products.md: round to a power-of-two step, then keep exactly its bits: half a step.
    assert float(np.abs(written[ok] - exact[ok]).max()) <= step / 2 * (1 + 1e-6)
    assert np.array_equal(np.round(written[ok] / step) * step, written[ok])  # on the step grid


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_ensemble_probabilities_are_within_half_a_step(tmp_path: Path, suffix: str) -> None:
    # 7 members: fractions k/7 lie off the 2**-7 grid, so every value is rounded once.
    members = synthetic.members((48, 64), variables=("tp",), n_members=7, seed=2)
    members["tp"][:, 0, :3, :5] = np.nan  # no finite member: NaN, kept as NaN
    products = build_products(
        members,
        products=["probabilities"],
        thresholds={"tp": [0.1, 0.5, 1.0, 2.0]},
        chunks={"y": 16, "x": 32},
    )
    ds = products["probabilities_tp"]
    name = str(next(iter(ds.data_vars)))
    exact = ds[name].values
    used = write_products(ds, tmp_path / f"p{suffix}")
    assert used[name] == 6
    _check(exact, _written(tmp_path / f"p{suffix}", name), 2.0**-7)


def test_coarser_precision_keeps_its_own_bound_on_a_parametric_grid(tmp_path: Path) -> None:
    params = synthetic.params((32, 64), variables=("tp",))
    products = build_products(
        params,
        families={"tp": "censored_logistic"},
        products=["probabilities"],
        thresholds={"tp": [0.1, 1.0, 5.0]},
        chunks={"y": 32, "x": 32},
    )
    ds = products["probabilities_tp"]
    name = str(next(iter(ds.data_vars)))
    exact = ds[name].values
    # precision 0.05 -> step 2**-5 (0.03125), stored with 4 mantissa bits, error <= 2**-6.
    used = write_products(ds, tmp_path / "p.nc", probability_precision=0.05, min_keepbits=8)
    assert used[name] == 4  # the exact bits of the step, whatever min_keepbits says
    written = _written(tmp_path / "p.nc", name)
    _check(exact, written, 2.0**-5)
    with xr.open_dataset(tmp_path / "p.nc") as back:
        assert back[name].attrs["least_significant_step"] == np.float32(2.0**-5)
        assert back[name].attrs["bitround_keepbits"] == 4
