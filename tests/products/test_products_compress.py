"""Bit-information compression and atomic, idempotent writing of products."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import xbitinfo
import zarr
from scipy import ndimage

from probcast.products import bitinfo, build_products, compress, write
from probcast.products.write import format_of, write_products
from probcast.testing import products as synthetic


def _precipitation_like(shape: tuple[int, int] = (384, 512), seed: int = 0) -> xr.Dataset:
    """Smooth rain field: Gaussian-filtered noise, dry (0) over about half of the grid."""
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.normal(size=shape), sigma=10.0)
    smooth /= smooth.std()
    rain = (20.0 * np.maximum(smooth, 0.0) ** 1.5).astype(np.float32)
    coords = {"y": np.arange(shape[0]) * 2500.0, "x": np.arange(shape[1]) * 2500.0}
    attrs = {"standard_name": "precipitation_amount", "units": "kg m-2"}
    return xr.Dataset({"tp": (("y", "x"), rain, attrs)}, coords=coords)


def _bytes_of(path: Path) -> dict[str, bytes]:
    if path.is_file():
        return {"": path.read_bytes()}
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def rain() -> xr.Dataset:
    return _precipitation_like()


def test_precipitation_compresses_tenfold_keeping_99_percent_information(
    rain: xr.Dataset, tmp_path: Path
) -> None:
    path = tmp_path / "tp.nc"
    used = write_products(rain, path, inflevel=0.99)
    ratio = rain["tp"].nbytes / path.stat().st_size
    assert ratio >= 10.0, f"compression ratio {ratio:.1f}x with keepbits {used}"
    # The full field (not only the analysis sample) needs no more bits for 99 %.
    with contextlib.redirect_stderr(io.StringIO()):
        info = xbitinfo.get_bitinformation(rain, dim="x", implementation="python")
    needed = int(xbitinfo.get_keepbits(info, 0.99)["tp"].values[0])
    assert used["tp"] >= needed
    with xr.open_dataset(path) as back:
        assert back["tp"].attrs["bitround_keepbits"] == used["tp"]
        error = np.abs(back["tp"].values - rain["tp"].values)
        bound = np.abs(rain["tp"].values) * 2.0 ** -(used["tp"] + 1)
        assert np.all(error <= bound * (1 + 1e-6))
        assert float(back["tp"].min()) == 0.0


def test_inflevel_one_is_lossless(rain: xr.Dataset, tmp_path: Path) -> None:
    used = write_products(rain, tmp_path / "tp.nc", inflevel=1.0)
    assert used == {"tp": 23}
    with xr.open_dataset(tmp_path / "tp.nc") as back:
        np.testing.assert_array_equal(back["tp"].values, rain["tp"].values)


@pytest.mark.parametrize("level", [0.0, -0.1, 1.5])
def test_inflevel_out_of_range(rain: xr.Dataset, level: float) -> None:
    with pytest.raises(ValueError, match="inflevel"):
        compress.information_keepbits(rain, inflevel=level)


def test_constant_field_keeps_all_bits_and_nan_is_tolerated() -> None:
    ds = xr.Dataset({"c": (("y", "x"), np.full((8, 16), 280.0, np.float32))})
    assert compress.information_keepbits(ds) == {"c": 23}
    holed = _precipitation_like((64, 96))
    holed["tp"][:5, :5] = np.nan
    keep = compress.information_keepbits(holed)["tp"]
    assert compress.DEFAULT_MIN_KEEPBITS <= keep <= 23


def test_min_keepbits_floor_and_explicit_keepbits(rain: xr.Dataset, tmp_path: Path) -> None:
    assert compress.information_keepbits(rain, min_keepbits=12) == {"tp": 12}
    used = write_products(rain, tmp_path / "tp.nc", keepbits={"tp": 4})
    assert used == {"tp": 4}


def test_bitround_is_lazy_and_does_not_touch_input(rain: xr.Dataset) -> None:
    lazy = rain.chunk({"y": 64})
    original = rain["tp"].values.copy()
    rounded = compress.bitround(lazy, {"tp": 3})
    assert rounded["tp"].chunks is not None
    values = rounded["tp"].values
    np.testing.assert_array_equal(rain["tp"].values, original)
    assert np.unique(values.view(np.uint32) & 0x000FFFFF).tolist() == [0]
    assert "bitround_keepbits" not in rain["tp"].attrs


def test_probabilities_rounded_to_absolute_step() -> None:
    p = np.array([[1e-9, 0.2, 0.5004, 0.9999999]], dtype=np.float32)
    ds = xr.Dataset({"probability_of_x_above_threshold": (("y", "x"), p)})
    out = compress.quantize_probabilities(ds, 0.01)["probability_of_x_above_threshold"].values
    step = 2.0**-7
    np.testing.assert_allclose(out, [[0.0, round(0.2 / step) * step, 0.5, 1.0]])
    assert np.all(np.abs(out - p) <= step / 2)


def test_zarr_round_trip_uses_blosc_zstd(rain: xr.Dataset, tmp_path: Path) -> None:
    prods = synthetic.params((16, 24), variables=("t2m",))
    ds = prods.assign(t2m_loc=prods["t2m_loc"].assign_attrs(grid_mapping=synthetic.GRID_MAPPING))
    used = write_products(ds, tmp_path / "p.zarr")
    write_products(ds, tmp_path / "p.nc", keepbits=used)
    zarr_ds = xr.open_zarr(tmp_path / "p.zarr", consolidated=False)
    with zarr_ds as z, xr.open_dataset(tmp_path / "p.nc") as n:
        np.testing.assert_array_equal(z["t2m_loc"].values, n["t2m_loc"].values)
        assert z["t2m_loc"].attrs["grid_mapping"] == synthetic.GRID_MAPPING
        assert "latitude" in z.coords
    array = zarr.open_array(tmp_path / "p.zarr" / "t2m_loc", mode="r")
    assert "blosc" in str(array.metadata.codecs).lower()


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_rewrite_is_idempotent(rain: xr.Dataset, tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"tp{suffix}"
    write_products(rain, path)
    first = _bytes_of(path)
    write_products(rain, path)
    assert _bytes_of(path) == first
    assert sorted(os.listdir(tmp_path)) == [path.name]


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_failed_write_keeps_old_product(
    rain: xr.Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    path = tmp_path / f"tp{suffix}"
    write_products(rain, path)
    before = _bytes_of(path)
    fmt = format_of(path)
    real = write._WRITERS[fmt]

    def crash_midway(ds: xr.Dataset, tmp: Path, encoding: dict) -> None:
        real(ds, tmp, encoding)  # a complete temporary product exists ...
        raise OSError("disk full")  # ... when the write fails

    monkeypatch.setitem(write._WRITERS, fmt, crash_midway)
    with pytest.raises(OSError, match="disk full"):
        write_products(rain * 2, path)
    assert _bytes_of(path) == before
    assert sorted(os.listdir(tmp_path)) == [path.name]


def test_format_from_suffix_or_argument(tmp_path: Path) -> None:
    assert format_of(Path("a.nc")) == "netcdf"
    assert format_of(Path("a.zarr")) == "zarr"
    assert format_of(Path("a.bin"), "nc") == "netcdf"
    with pytest.raises(ValueError, match="suffix"):
        format_of(Path("a.grib2"))
    with pytest.raises(ValueError, match="fmt"):
        format_of(Path("a.nc"), "grib")


def test_netcdf_encoding_choices(rain: xr.Dataset) -> None:
    zlib = write.netcdf_encoding(rain, compression="zlib")
    assert zlib["tp"]["compression"] == "zlib" and zlib["tp"]["shuffle"] is True
    assert write.netcdf_encoding(rain)["tp"]["compression"] == write.netcdf_compression()
    with pytest.raises(ValueError, match="compression"):
        write.netcdf_encoding(rain, compression="lz4")
    with pytest.raises(ValueError, match="complevel"):
        write.zarr_encoding(rain, complevel=12)


def test_analysis_sample_stays_in_the_central_chunk() -> None:
    da = xr.DataArray(np.zeros((51, 1, 300, 700), np.float32), dims=("r", "t", "y", "x"))
    lazy = da.chunk({"r": -1, "t": 1, "y": 128, "x": 256})
    sample = compress.analysis_sample(lazy, max_points=3 * 256 * 20)
    assert sample.sizes == {"r": 3, "t": 1, "y": 20, "x": 256}
    assert sample.data.npartitions == 1
    whole = compress.analysis_sample(da, max_points=3 * 700 * 10)
    assert whole.sizes == {"r": 3, "t": 1, "y": 10, "x": 700}


def test_bitround_keeps_nan_with_zero_keepbits() -> None:
    import numpy as np

    from probcast.products.compress import _round_block

    block = np.array([1.5, np.nan, 3.25], dtype=np.float32)
    out = _round_block(block, 0)
    assert np.isnan(out[1]) and np.isfinite(out[[0, 2]]).all()


def test_written_probabilities_keep_the_documented_precision(tmp_path: Path) -> None:
    # On this grid the information analysis alone keeps 5 bits: error up to 0.0117.
    params = synthetic.params((96, 128), variables=("tp",))
    products = build_products(
        params,
        families={"tp": "censored_logistic"},
        products=["probabilities"],
        thresholds={"tp": [0.1, 0.5, 1.0, 2.0, 5.0]},
        chunks={"y": 32, "x": 32},
    )
    ds = products["probabilities_tp"]
    name = str(next(iter(ds.data_vars)))
    exact = ds[name].values
    used = write_products(ds, tmp_path / "p.nc")
    assert used[name] == 6  # 2**-7 steps in [0, 1] need 6 mantissa bits
    with xr.open_dataset(tmp_path / "p.nc") as back:
        error = np.abs(back[name].values - exact)
        assert back[name].attrs["bitround_keepbits"] == 6
    # docs/products.md: step 2**-7, error <= 0.004.
    assert float(np.nanmax(error)) <= 2.0**-8 * (1 + 1e-6)


def test_written_probabilities_are_the_quantised_ones(tmp_path: Path) -> None:
    # Bit rounding alone keeps the tails (1e-9 stays 1e-9); the product stores the step grid.
    p = np.tile(np.float32([1e-9, 1e-5, 0.2, 0.5004, 0.9999999]), (8, 4))
    ds = xr.Dataset({"probability_of_x_above_threshold": (("y", "x"), p)})
    write_products(ds, tmp_path / "p.nc")
    with xr.open_dataset(tmp_path / "p.nc") as back:
        out = back["probability_of_x_above_threshold"]
        assert out.attrs["least_significant_step"] == np.float32(2.0**-7)
        expected = compress.quantize_probabilities(ds)["probability_of_x_above_threshold"]
        np.testing.assert_array_equal(out.values, expected.values)
        assert out.values[0, 0] == 0.0 and out.values[0, 4] == 1.0


def test_exact_keepbits_follow_the_step() -> None:
    p = xr.DataArray(np.linspace(0, 1, 11, dtype=np.float32), dims="x")
    ds = xr.Dataset({"probability_of_x_above_threshold": p})
    assert compress.exact_keepbits(compress.quantize_probabilities(ds, 0.01)) == {
        "probability_of_x_above_threshold": 6
    }
    assert compress.exact_keepbits(compress.quantize_probabilities(ds, 0.1)) == {
        "probability_of_x_above_threshold": 3
    }
    assert compress.exact_keepbits(ds) == {}


def _xbitinfo(values: np.ndarray) -> xr.Dataset:
    ds = xr.Dataset({"v": (("y", "x"), values)})
    with contextlib.redirect_stderr(io.StringIO()):
        return xbitinfo.get_bitinformation(ds, dim="x", implementation="python")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bitinformation_matches_xbitinfo(rain: xr.Dataset, dtype: type) -> None:
    rng = np.random.default_rng(1)
    smooth = rain["tp"].values[:128].astype(dtype)
    fields = [smooth, smooth + 280.0, -smooth, rng.normal(size=(32, 200)).astype(dtype)]
    for values in fields:
        ref = _xbitinfo(values)
        np.testing.assert_allclose(bitinfo.bitinformation(values), ref["v"].values, atol=1e-12)
        n_mant = compress.MANTISSA_BITS[np.dtype(dtype)]
        kept = bitinfo.kept_information(bitinfo.bitinformation(values), n_mant)
        expected = int(xbitinfo.get_keepbits(ref, 0.99)["v"].values[0])
        assert bitinfo.keepbits_for(kept, 0.99) == np.clip(expected, 0, n_mant)


def _mixed_field() -> xr.Dataset:
    """Four 64 x 64 chunks of a smooth temperature; the central (last) one is noisy."""
    rng = np.random.default_rng(3)

    def smooth(sigma: float) -> np.ndarray:
        field = ndimage.gaussian_filter(rng.normal(size=(128, 128)), sigma)
        return field / field.std()

    field = 280.0 + 5.0 * smooth(20.0)
    noisy = 280.0 + 5.0 * smooth(8.0) + rng.normal(size=(128, 128))
    field[64:, 64:] = noisy[64:, 64:]  # less real information: fewer bits
    coords = {"y": np.arange(128.0), "x": np.arange(128.0)}
    data = field.astype(np.float32)
    return xr.Dataset({"v": (("y", "x"), data)}, coords).chunk({"y": 64, "x": 64})


def _bits_used(values: np.ndarray) -> int:
    """Mantissa bits in use: 23 minus the fewest trailing zero bits of a finite value."""
    mantissa = values[np.isfinite(values)].view(np.uint32) & np.uint32(0x7FFFFF)
    zeros = [23 if m == 0 else (int(m) & -int(m)).bit_length() - 1 for m in mantissa]
    return 23 - min(zeros)


def test_every_chunk_keeps_99_percent_of_its_information(tmp_path: Path) -> None:
    ds = _mixed_field()
    central = compress.information_keepbits(ds)["v"]
    used = write_products(ds, tmp_path / "v.nc")
    original = ds["v"].values
    kept = []
    with xr.open_dataset(tmp_path / "v.nc") as back:
        written = back["v"].values
        attrs = back["v"].attrs
    for rows in (slice(0, 64), slice(64, 128)):
        for cols in (slice(0, 64), slice(64, 128)):
            bits = _bits_used(written[rows, cols])
            info = bitinfo.kept_information(bitinfo.bitinformation(original[rows, cols]), 23)
            kept.append((bits, float(info[min(bits, 23)])))
    assert min(k for _, k in kept) > 0.99, kept
    # The central chunk alone needs fewer bits than the others: one number from it fails.
    assert central < max(b for b, _ in kept)
    assert attrs["bitround_keepbits"] == min(b for b, _ in kept)
    assert attrs["bitround_keepbits_max"] == used["v"] == max(b for b, _ in kept)


def test_write_job_reports_information_per_block(tmp_path: Path) -> None:
    ds = _mixed_field()
    plan = compress.plan_rounding(ds, keepbits={"v": 2}, measure=True)
    job = write.write_job(ds, tmp_path / "v.nc", plan)
    blocks = job.blocks["v"]
    assert [b.keepbits for b in blocks] == [2, 2, 2, 2]
    assert all(b.information is not None and 0 <= b.information <= 1 for b in blocks)
    auto = write.write_job(ds, tmp_path / "w.nc", compress.plan_rounding(ds)).blocks["v"]
    assert min(b.information for b in auto if b.information is not None) > 0.99
    assert min(b.information for b in blocks if b.information is not None) < 0.99


def test_pairs_with_zeros_or_nan_are_left_out_with_skip_zeros(rain: xr.Dataset) -> None:
    wet = rain["tp"].values[:64, :200] + 1.0  # no zeros
    holed = wet.copy()
    holed[:, 0] = 0.0  # only the pairs (0, 1) involve these
    holed[:, 1] = np.nan  # ... and (1, 2)
    expected = bitinfo.bitinformation(wet[:, 2:])
    np.testing.assert_allclose(bitinfo.bitinformation(holed, skip_zeros=True), expected)
    assert not np.allclose(bitinfo.bitinformation(holed), expected)
    assert not bitinfo.bitinformation(np.zeros((4, 8), np.float32), skip_zeros=True).any()
