"""Missing values as a file declares them, on every path a grid is read by.

Zarr ``fill_value`` (zarr-python's default 0 is not a missing marker; chunks not stored
with an undeclared numeric fill_value are refused) and CF ``valid_min``/``valid_max``/
``valid_range`` (values outside become NaN), through ``open_gridded``, ``open_grid`` and
the gridded verification reader (``probcast.ingest.encoding``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr
import zarr

from probcast.align.points import open_grid
from probcast.ingest.errors import GriddedReadError
from probcast.ingest.gridded import open_gridded
from probcast.verify.grid_inputs import open_truth

DIMS = ["forecast_reference_time", "forecast_period", "latitude", "longitude"]
TP = np.array([[0.0, 1.5, 0.0, 2.0], [3.0, 0.0, 0.0, 1.0], [0, 0.5, 0, 0], [0, 0, 4.0, 0]], "f4")


def _forecast(ds: xr.Dataset) -> np.ndarray:
    return ds["fc_tp"].values[0, 0]


def _truth(ds: xr.Dataset) -> np.ndarray:
    return ds["obs_tp"].values[0]


# (reader, field prefix, values of the precipitation field as read)
READERS: list[tuple[Callable[[Path], xr.Dataset], str, Callable[[xr.Dataset], np.ndarray]]] = [
    (open_gridded, "fc_", _forecast),
    (open_grid, "fc_", _forecast),
    (open_truth, "obs_", _truth),
]
IDS = ["open_gridded", "open_grid", "open_truth"]


def _array(g: zarr.Group, fmt: int, name: str, data: np.ndarray, dims: list[str], **kw):
    attrs = kw.pop("attrs", {})
    extra = {"dimension_names": dims} if fmt == 3 else {}
    chunks = kw.pop("chunks", None) or data.shape
    a = g.create_array(name, shape=data.shape, dtype=data.dtype, chunks=chunks, **extra, **kw)
    a.attrs.update(attrs if fmt == 3 else {**attrs, "_ARRAY_DIMENSIONS": dims})
    return a


def _coords(path: Path, fmt: int, shape: tuple[int, ...]) -> zarr.Group:
    """A group with the canonical coordinates, written by zarr-python (fill_value 0)."""
    g = zarr.open_group(path, mode="w", zarr_format=fmt)
    hours = {"units": "hours since 2024-01-01", "calendar": "proleptic_gregorian"}
    _array(g, fmt, DIMS[0], np.array([0], "i8"), [DIMS[0]], attrs=hours)[...] = 0
    _array(g, fmt, DIMS[1], np.array([6], "i8"), [DIMS[1]], attrs={"units": "hours"})[...] = 6
    for dim, values in (
        ("latitude", 50.0 + np.arange(shape[2])),
        ("longitude", np.arange(shape[3]) + 0.0),
    ):
        _array(g, fmt, dim, values, [dim])[...] = values  # longitude 0.0: Greenwich
    return g


def _store(path: Path, fmt: int, prefix: str, *, written: bool = True) -> Path:
    """A store as zarr-python writes it (no xarray): float fill_value 0 by default.

    ``written``: every chunk of the precipitation field stored (``write_empty_chunks``);
    else only its first chunk is written, the others never are. The temperature field
    has fill_value -9999 and one value -9999.
    """
    g = _coords(path, fmt, (1, 1, 4, 4))
    config = {"write_empty_chunks": written}
    tp = _array(g, fmt, f"{prefix}tp", TP[None, None], DIMS, chunks=(1, 1, 2, 2), config=config)
    tp.attrs["units"] = "mm"
    if written:
        tp[...] = TP[None, None]
    else:
        tp[0, 0, :2, :2] = TP[:2, :2]
    t2m = np.full((1, 1, 4, 4), 280.0, "f4")
    t2m[0, 0, 0, 0] = -9999.0
    _array(g, fmt, f"{prefix}t2m", t2m, DIMS, fill_value=-9999.0, attrs={"units": "K"})[...] = t2m
    return path


@pytest.mark.parametrize(("read", "prefix", "values"), READERS, ids=IDS)
def test_zarr_v2_fill_value_zero_keeps_real_zeros(tmp_path, read, prefix, values):
    # zarr-python's default fill_value 0 is no missing marker: dry points stay 0 mm (they
    # were all NaN), a v2 fill_value -9999 still marks missing values (xarray's v2 use).
    ds = read(_store(tmp_path / "grid.zarr", 2, prefix))
    np.testing.assert_array_equal(values(ds), TP)
    t2m = ds[f"{prefix}t2m"].values.reshape(-1)
    assert np.isnan(t2m[0]) and (t2m[1:] == 280.0).all()
    np.testing.assert_array_equal(ds["longitude"].values, [0.0, 1.0, 2.0, 3.0])


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize(("read", "prefix", "values"), READERS, ids=IDS)
def test_zarr_chunks_not_stored_with_undeclared_fill_are_refused(
    tmp_path, fmt, read, prefix, values
):
    # Absent chunks read as fill_value 0: 0 mm forecasts (v3) or NaN (v2) where nothing
    # was written; the store cannot tell a chunk never written from an all-zero one.
    path = _store(tmp_path / "grid.zarr", fmt, prefix, written=False)
    with pytest.raises(GriddedReadError, match="chunks are not stored") as err:
        read(path)
    message = str(err.value)
    assert str(path) in message and f"'{prefix}tp'" in message and "3 of 4" in message
    assert "fill_value 0.0" in message and "_FillValue" in message


def _packed(path: Path, name: str, data: np.ndarray, *, units: str = "m s-1", **attrs) -> Path:
    """A NetCDF field of packed integers (int16, scale 0.001 by default) without _FillValue."""
    with netCDF4.Dataset(path, "w") as nc:
        for dim, n in zip(DIMS, data.shape, strict=True):
            nc.createDimension(dim, n)
        frt = nc.createVariable(DIMS[0], "f8", (DIMS[0],))
        frt.units, frt[:] = "hours since 2024-01-01", [0]
        fp = nc.createVariable(DIMS[1], "f8", (DIMS[1],))
        fp.units, fp[:] = "hours", [6]
        for dim, start in (("latitude", 50.0), ("longitude", 0.0)):
            c = nc.createVariable(dim, "f4", (dim,))
            c[:] = start + np.arange(data.shape[DIMS.index(dim)])
        v = nc.createVariable(name, data.dtype, tuple(DIMS), fill_value=False)
        v.set_auto_maskandscale(False)
        v.units = units
        for key, value in {"scale_factor": 0.001, "add_offset": 0.0, **attrs}.items():
            setattr(v, key, value)
        v[:] = data
    return path


U10 = np.full((1, 1, 3, 4), 5000, "i2")
U10[0, 0, 0, 0] = -32767  # the sentinel, declared only by the valid range
U10[0, 0, 0, 1] = 32767  # the largest valid packed value: 32.767 m s-1
U10[0, 0, 0, 2] = -32766  # the smallest


@pytest.mark.filterwarnings("ignore:.*valid_min cannot be safely cast:UserWarning")
@pytest.mark.parametrize(
    "declared",
    [
        {"valid_min": np.int16(-32766), "valid_max": np.int16(32767)},
        {"valid_range": np.array([-32766, 32767], "i2")},
        {"valid_min": np.float32(-32.766)},  # of the unpacked type: compared unpacked
    ],
    ids=["valid_min_max", "valid_range", "unpacked_valid_min"],
)
@pytest.mark.parametrize(("read", "prefix", "values"), READERS, ids=IDS)
def test_netcdf_values_outside_valid_range_are_missing(tmp_path, declared, read, prefix, values):
    path = _packed(tmp_path / "u10.nc", f"{prefix}u10", U10, **declared)
    ds = read(path)
    u10 = ds[f"{prefix}u10"].values.reshape(-1)
    assert np.isnan(u10[0])  # was -32.767 m s-1, inside the physical range
    np.testing.assert_allclose(u10[1:4], [32.767, -32.766, 5.0], rtol=1e-6)
    assert not np.isnan(u10[1:]).any()
    assert not {"valid_min", "valid_max", "valid_range"} & set(ds[f"{prefix}u10"].attrs)


def test_zarr_values_outside_valid_range_are_missing_lazily(tmp_path):
    # Zarr attributes are JSON: an integer bound of packed integers is a packed bound.
    path = tmp_path / "u10.zarr"
    g = _coords(path, 3, U10.shape)
    attrs = {"units": "m s-1", "scale_factor": 0.001, "add_offset": 0.0, "valid_min": -32766}
    _array(g, 3, "fc_u10", U10, DIMS, fill_value=0, attrs=attrs)[...] = U10
    ds = open_grid(path, chunks={})
    assert ds["fc_u10"].chunks is not None
    u10 = ds["fc_u10"].values.reshape(-1)
    assert np.isnan(u10[0]) and np.isnan(u10).sum() == 1
    np.testing.assert_allclose(u10[1:4], [32.767, -32.766, 5.0], rtol=1e-6)


@pytest.mark.parametrize(("read", "prefix", "values"), READERS, ids=IDS)
def test_netcdf_valid_range_with_negative_scale(tmp_path, read, prefix, values):
    # A negative scale_factor turns the packed valid_min into the largest decoded value.
    data = np.array([-32767, -32766, 5000, 32767], "i2").reshape(1, 1, 1, 4).repeat(2, axis=2)
    path = _packed(tmp_path / "u10.nc", f"{prefix}u10", data, scale_factor=-0.001, valid_min=-32766)
    ds = read(path)
    u10 = ds[f"{prefix}u10"].values.reshape(-1)[:4]
    assert np.isnan(u10[0])  # was 32.767 m s-1
    np.testing.assert_allclose(u10[1:], [32.766, -5.0, -32.767], rtol=1e-6)


@pytest.mark.parametrize(("read", "prefix", "values"), READERS, ids=IDS)
def test_netcdf_valid_range_of_unsigned_bytes(tmp_path, read, prefix, values):
    # Cloud cover in % as bytes read unsigned (_Unsigned): valid_max -56 is 200 (100 %).
    data = np.array([255, 200, 160, 0], "u1").view("i1").reshape(1, 1, 1, 4).repeat(2, axis=2)
    unsigned = {"scale_factor": 0.5, "_Unsigned": "true", "valid_max": np.int8(-56)}
    path = _packed(tmp_path / "tcc.nc", f"{prefix}tcc", data, units="%", **unsigned)
    tcc = read(path)[f"{prefix}tcc"].values.reshape(-1)[:4]
    assert np.isnan(tcc[0])  # was 127.5 %
    np.testing.assert_allclose(tcc[1:], [1.0, 0.8, 0.0])
