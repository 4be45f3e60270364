"""Missing values as a file declares them: Zarr fill values and CF valid ranges.

Every NetCDF file and Zarr store a grid is read from is opened here
(:func:`probcast.ingest.gridded.open_gridded`, :func:`probcast.align.points.open_grid`,
:mod:`probcast.verify.grid_inputs`), so one rule holds on every path (docs/gridded.md
"Missing values in NetCDF and Zarr files"):

* **Zarr** ``fill_value`` is the value a chunk that is not stored reads as, not a
  missing-value marker: zarr-python gives float arrays ``fill_value = 0`` by default, and
  xarray reads a Zarr v2 ``fill_value`` as ``_FillValue``, which turned every real 0 (a dry
  precipitation point) into NaN. Stores are opened with
  ``use_zarr_fill_value_as_mask=False`` and masked by their CF ``_FillValue`` /
  ``missing_value`` attributes only; a Zarr v2 ``fill_value`` other than 0 still counts as
  the ``_FillValue`` of a variable that has none (xarray writes a v2 variable's
  ``_FillValue`` there: -32767 of packed int16, -9999.0).
* **Chunks not stored**: for a float field (or packed integers) whose ``fill_value`` is a
  number it does not declare missing, a chunk not stored is either one never written
  (missing data) or one left out because every value equalled ``fill_value``
  (zarr-python's default ``write_empty_chunks=False``: an all-dry precipitation chunk).
  The store cannot tell which, so it is refused (:func:`open_zarr`), naming the store, the
  variable and what is expected. Stored objects are counted: inside a shard (Zarr v3
  sharding), inner chunks left out are not seen.
* **CF valid range**: values outside ``valid_min``/``valid_max``/``valid_range`` become
  NaN after decoding (:func:`mask_invalid`); bounds of the packed type are unpacked with
  ``scale_factor``/``add_offset`` first, as CF says.
"""

from __future__ import annotations

import os
from collections.abc import Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from probcast.ingest import grid_commit
from probcast.ingest.errors import GriddedReadError

if TYPE_CHECKING:
    import zarr

VALID_ATTRS = ("valid_min", "valid_max", "valid_range")
MISSING_ATTRS = ("_FillValue", "missing_value")


def open_cf(
    path: Any,
    fmt: str,
    *,
    engine: str | None = None,
    chunks: Any = None,
    **decode: Any,
) -> xr.Dataset:
    """Open a NetCDF file or Zarr store with xarray, missing values as the file declares.

    Args:
        path: NetCDF file or Zarr store (or an fsspec mapper of a Zarr store).
        fmt: ``zarr``, ``netcdf4`` or ``netcdf3`` (:func:`probcast.ingest.gridded.sniff_format`).
        engine: xarray engine for NetCDF (default: xarray's choice).
        chunks: As for :func:`xarray.open_dataset` (``{}``: lazy, the file's chunks).
        **decode: CF decoding options (``decode_timedelta``, ``decode_coords``...).

    Returns:
        The dataset, values outside their CF valid range set to NaN (:func:`mask_invalid`).

    Raises:
        GriddedReadError: A Zarr field whose absent chunks cannot be told missing or not
            (:func:`open_zarr`).
    """
    if fmt == "zarr":
        ds = open_zarr(path, chunks=chunks, **decode)
    else:
        ds = xr.open_dataset(path, engine=engine, chunks=chunks, **decode)
    return mask_invalid(ds)


def open_zarr(path: Any, *, chunks: Any = None, **decode: Any) -> xr.Dataset:
    """Open a Zarr v2/v3 store, masking by CF attributes, never by a ``fill_value`` of 0.

    Args:
        path: Zarr store (a folder), or an fsspec mapper of one (remote stores).
        chunks: As for :func:`xarray.open_dataset`.
        **decode: Options of :func:`xarray.decode_cf`.

    A store that ``probcast data build`` appends to (``grid-state.json`` next to it) is
    read through its consolidated metadata and cut to the committed reference times
    (:mod:`probcast.ingest.grid_commit`); every other store as it is.

    Returns:
        The decoded dataset (not range-masked: :func:`open_cf` does both).

    Raises:
        GriddedReadError: A float field with chunks not stored whose ``fill_value`` is a
            number not declared missing (see the module docstring), or a ``grid-state.json``
            that cannot be read or disagrees with its store.
    """
    where = Path(
        _store(path) if isinstance(path, (str, os.PathLike)) else getattr(path, "root", "")
    )
    cycles = grid_commit.commits(path)  # None unless `data build` appends to the store
    # (xr.open_dataset(engine="zarr") drops use_zarr_fill_value_as_mask: pydata/xarray#10269)
    store = xr.backends.ZarrStore.open_group(
        _store(path),
        mode="r",
        consolidated=cycles is not None and grid_commit.consolidated(where),
        use_zarr_fill_value_as_mask=False,
    )
    raw = xr.open_dataset(store, chunks=chunks, decode_cf=False)
    for name, arr in store.zarr_group.arrays():
        if name in raw.variables:
            _declare_fill(raw.variables[name], name, arr, where)
    ds = xr.decode_cf(raw, **decode)
    return ds if cycles is None else grid_commit.cut(ds, cycles, where)  # committed only


def _store(path: Any) -> Any:
    """A local path as a string; an fsspec mapper as it is."""
    return os.fspath(path) if isinstance(path, (str, os.PathLike)) else path


def _declare_fill(var: xr.Variable, name: str, arr: zarr.Array, path: Path) -> None:
    """Give ``var`` the ``_FillValue`` its Zarr v2 ``fill_value`` stands for; refuse ambiguity."""
    fill = arr.fill_value
    declared = any(k in var.attrs for k in MISSING_ATTRS)
    if arr.metadata.zarr_format == 2 and not declared and fill is not None and not _zero(fill):
        var.attrs["_FillValue"] = fill  # xarray's v2 convention: fill_value is _FillValue
        return
    if declared or name in var.dims or not _decodes_to_float(var) or not _finite(fill):
        return
    stored, total = arr.nchunks_initialized, arr.nchunks
    if stored < total:
        raise GriddedReadError(
            f"{path}: variable {name!r}: {total - stored} of {total} chunks are not stored; "
            f"Zarr reads them as the array's fill_value {fill}, which the variable does not "
            "declare missing (no _FillValue or missing_value attribute), so a chunk never "
            f"written (missing data) cannot be told from one left out because all its values "
            f"were {fill}. Expected every chunk stored (zarr-python: write_empty_chunks=True), "
            "fill_value NaN (as xarray writes floats), or a _FillValue attribute equal to "
            "fill_value when it marks missing data"
        )


def _zero(fill: object) -> bool:
    value = np.asarray(fill)
    return value.dtype.kind in "biuf" and value.size == 1 and bool(value == 0)


def _finite(fill: object) -> bool:
    value = np.asarray(fill)
    return value.dtype.kind in "biuf" and value.size == 1 and bool(np.isfinite(value))


def _decodes_to_float(var: xr.Variable) -> bool:
    if " since " in str(var.attrs.get("units", "")):  # a time, not a field
        return False
    packed = "scale_factor" in var.attrs or "add_offset" in var.attrs
    return var.dtype.kind == "f" or (var.dtype.kind in "iu" and packed)


def mask_invalid(ds: xr.Dataset) -> xr.Dataset:
    """Set data values outside their CF ``valid_min``/``valid_max``/``valid_range`` to NaN.

    xarray decodes ``_FillValue``/``missing_value`` and packing but keeps the valid range
    in ``attrs`` unapplied; a sentinel declared only by it (int16 -32767 with
    ``valid_min = -32766``) would be read as a value (-32.767 m s-1). Lazy on dask arrays.
    The valid-range attributes are dropped from the masked fields (they described the
    stored values).

    Args:
        ds: Decoded dataset (packing in each variable's ``encoding``).

    Returns:
        ``ds`` with masked fields.
    """
    out: dict[Hashable, xr.DataArray] = {}
    for name, da in ds.data_vars.items():
        bounds = valid_bounds(da)
        if bounds is None:
            continue
        keep = None
        for bound, inside in zip(bounds, (da.__ge__, da.__le__), strict=True):
            if bound is not None:
                cond = inside(np.asarray(bound, da.dtype) if da.dtype.kind == "f" else bound)
                keep = cond if keep is None else keep & cond
        masked = da.where(keep) if keep is not None else da.copy()
        masked.attrs = {k: v for k, v in da.attrs.items() if k not in VALID_ATTRS}
        masked.encoding = dict(da.encoding)
        out[name] = masked
    return ds.assign(out) if out else ds


def valid_bounds(da: xr.DataArray) -> tuple[float | None, float | None] | None:
    """The CF valid range of a decoded field, in decoded values; None without one.

    Bounds of the packed type (integers for packed integers, or the packed dtype itself)
    are unpacked with ``scale_factor``/``add_offset`` and widened by half a packing step,
    so that no valid packed value is lost to float rounding; bounds of another type are
    taken as decoded values (a float one widened by one unit in its last place).
    ``_Unsigned`` integers are read unsigned. ``valid_range`` takes precedence over
    ``valid_min``/``valid_max``.
    """
    attrs = da.attrs
    if da.dtype.kind not in "iuf" or not any(k in attrs for k in VALID_ATTRS):
        return None
    if "valid_range" in attrs:
        pair = np.ravel(np.asarray(attrs["valid_range"]))
        if pair.size != 2:
            return None
        raw: tuple[Any, Any] = (pair[0], pair[1])
    else:
        raw = (attrs.get("valid_min"), attrs.get("valid_max"))
    lo, hi = (_decoded(b, da.encoding, side) for b, side in zip(raw, (-1, 1), strict=True))
    if lo is None and hi is None:
        return None
    given = raw[0] if raw[0] is not None else raw[1]
    if _packed_scale(given, da.encoding) < 0:  # the packed minimum is the decoded maximum
        return hi, lo
    return lo, hi


def _packed_scale(bound: object, enc: dict) -> float:
    """``scale_factor`` when ``bound`` is of the packed type, else 0 (not packed)."""
    if "scale_factor" not in enc and "add_offset" not in enc:
        return 0.0
    value = np.asarray(bound)
    packed = np.dtype(enc.get("dtype", value.dtype))
    if value.dtype == packed or (value.dtype.kind in "iu" and packed.kind in "iu"):
        return float(enc.get("scale_factor", 1.0))
    return 0.0


def _decoded(bound: object, enc: dict, side: int) -> float | None:
    """One bound in decoded values, widened outwards (``side`` -1 or 1) when packed."""
    if bound is None:
        return None
    value = np.asarray(bound)
    if value.dtype.kind not in "iuf" or value.size != 1:
        return None
    scale = _packed_scale(value, enc)
    packed = np.dtype(enc.get("dtype", value.dtype))
    if str(enc.get("_Unsigned", "")).lower() == "true" and packed.kind == "i" == value.dtype.kind:
        value = value.reshape(1).astype(packed).view(f"u{packed.itemsize}")[0]
    number = float(value)
    if not np.isfinite(number):
        return None
    if scale == 0.0:  # a decoded value; a float one widened by its last place (float32 0.1)
        return number + side * (abs(float(np.spacing(value))) if value.dtype.kind == "f" else 0)
    number = number * scale + float(enc.get("add_offset", 0.0))
    half_step = abs(scale) / 2 if packed.kind in "iu" else 0.0
    return number + side * half_step * (1 if scale > 0 else -1)
