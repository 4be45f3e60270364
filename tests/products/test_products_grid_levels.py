"""Codec levels: the measured defaults, checked ranges, and the benchmark's level sweep."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from probcast.products import write_products
from probcast.products.write import LEVELS, netcdf_encoding, zarr_encoding
from probcast.testing import products as synthetic

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "products_grid.py"


def _field() -> xr.Dataset:
    values = synthetic.members((32, 48), variables=("t2m",), n_members=3)["t2m"].values
    return xr.Dataset({"t2m": (("realization", "y", "x"), values[:, 0])})


def test_default_levels_are_the_measured_ones() -> None:
    ds = _field()
    assert LEVELS == {"zstd": 5, "zlib": 4, "blosc-zstd": 5}
    assert netcdf_encoding(ds, compression="zstd")["t2m"]["complevel"] == 5
    assert netcdf_encoding(ds, compression="zlib")["t2m"]["complevel"] == 4
    codec = zarr_encoding(ds)["t2m"]["compressors"][0]
    assert codec.clevel == 5


@pytest.mark.parametrize(("codec", "level"), [("zstd", 0), ("zstd", 23), ("zlib", 10)])
def test_out_of_range_levels_are_refused(codec: str, level: int) -> None:
    with pytest.raises(ValueError, match=rf"{codec} complevel must be in the range"):
        netcdf_encoding(_field(), compression=codec, complevel=level)


def test_the_level_is_the_one_in_the_file(tmp_path: Path) -> None:
    ds = _field()
    for level in (1, 9):
        write_products(ds, tmp_path / f"l{level}.nc", compression="zlib", complevel=level)
        with netCDF4.Dataset(tmp_path / f"l{level}.nc") as nc:
            assert nc["t2m"].filters()["complevel"] == level
    assert (tmp_path / "l9.nc").stat().st_size <= (tmp_path / "l1.nc").stat().st_size


def _bench():
    spec = importlib.util.spec_from_file_location("products_grid_bench", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_level_sweep_runs_on_a_small_grid(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bench = _bench()
    members = synthetic.members((32, 48), variables=("tp",), n_members=9)
    monkeypatch.setattr(
        bench, "_params", lambda *a: (members, None, ["percentiles", "probabilities"])
    )
    monkeypatch.setattr(bench, "NETCDF_LEVELS", {"zstd": (1, 9), "zlib": (4,)})
    args = argparse.Namespace(workers=2, suffix=".nc", cases=None)
    result = bench.run_levels("synthetic", 1.0, args, tmp_path)
    rows = {(r["codec"], r["level"]): r for r in result["levels"]}
    assert set(rows) == {("zstd", 1), ("zstd", 9), ("zlib", 4)}
    assert all(r["ratio"] > 1.0 and r["write_s"] > 0 for r in rows.values())
    assert rows[("zstd", 9)]["output_mb"] <= rows[("zstd", 1)]["output_mb"]
    assert list(tmp_path.iterdir()) == []  # every file written was removed again
    assert "| zstd | 9 |" in f"| {bench._level_table(result).splitlines()[3]} |"
    assert np.isfinite(result["raw_mb"])
