"""Write products atomically and idempotently as compressed NetCDF-4 or Zarr v3.

A product is first written under a temporary name in the destination folder and then
renamed over the destination, so readers see either the old complete product or the new
complete one, never a partial file; a failure leaves the old product untouched. Writing
the same dataset twice gives byte-identical NetCDF files.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import xarray as xr

from probcast.products import compress

FORMATS = {".nc": "netcdf", ".nc4": "netcdf", ".zarr": "zarr"}

Writer = Callable[[xr.Dataset, Path, dict[str, dict[str, Any]]], None]


def _netcdf(ds: xr.Dataset, tmp: Path, encoding: dict[str, dict[str, Any]]) -> None:
    ds.to_netcdf(tmp, engine="netcdf4", format="NETCDF4", encoding=encoding)


def _zarr(ds: xr.Dataset, tmp: Path, encoding: dict[str, dict[str, Any]]) -> None:
    ds.to_zarr(tmp, mode="w-", encoding=encoding, zarr_format=3, consolidated=False)


_WRITERS: dict[str, Writer] = {"netcdf": _netcdf, "zarr": _zarr}


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _replace(tmp: Path, path: Path) -> None:
    """Move ``tmp`` onto ``path``; directories go via a backup that is restored on error."""
    if not tmp.is_dir():
        os.replace(tmp, path)  # atomic on POSIX for files in one folder
        return
    backup = path.with_name(f".{path.name}.old-{uuid.uuid4().hex}")
    had_old = path.exists()
    if had_old:
        os.replace(path, backup)
    try:
        os.replace(tmp, path)
    except BaseException:
        if had_old:
            os.replace(backup, path)
        raise
    if had_old:
        _remove(backup)


def atomic_write(ds: xr.Dataset, path: Path, fmt: str, encoding: dict[str, dict[str, Any]]) -> None:
    """Write ``ds`` with the ``fmt`` writer to a temporary sibling, then rename it to ``path``.

    Args:
        ds: Dataset to write.
        path: Destination file (NetCDF) or directory (Zarr).
        fmt: ``netcdf`` or ``zarr``.
        encoding: Per-variable encoding.
    """
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    try:
        _WRITERS[fmt](ds, tmp, encoding)
        _replace(tmp, path)
    finally:
        if tmp.exists():
            _remove(tmp)


def format_of(path: Path, fmt: str | None = None) -> str:
    """Return ``netcdf`` or ``zarr`` from ``fmt`` or the suffix of ``path``.

    Raises:
        ValueError: If neither names a known format.
    """
    if fmt is not None:
        fmt = {"nc": "netcdf", "netcdf4": "netcdf"}.get(fmt.lower(), fmt.lower())
        if fmt not in _WRITERS:
            raise ValueError(f"fmt must be one of {sorted(_WRITERS)}, got {fmt!r}")
        return fmt
    try:
        return FORMATS[path.suffix.lower()]
    except KeyError:
        raise ValueError(
            f"{path}: cannot tell the format from the suffix {path.suffix!r}; expected one of "
            f"{sorted(FORMATS)} or pass fmt='netcdf' / fmt='zarr'"
        ) from None


def _flag_grid_mapping(ds: xr.Dataset) -> None:
    """Copy each data variable's ``grid_mapping`` attribute into its encoding.

    xarray leaves a coordinate out of a variable's ``coordinates`` attribute only when the
    variable names it in ``encoding["grid_mapping"]``, and it checks before applying the
    encoding passed to the writer; the attribute itself is written from ``attrs``.
    """
    for var in ds.data_vars.values():
        if "grid_mapping" in var.attrs:
            var.encoding["grid_mapping"] = var.attrs["grid_mapping"]


def write_products(
    ds: xr.Dataset,
    path: str | os.PathLike[str],
    *,
    inflevel: float = 0.99,
    fmt: str | None = None,
    keepbits: Mapping[str, int] | None = None,
    compression: str | None = None,
    complevel: int | None = None,
    min_keepbits: int = compress.DEFAULT_MIN_KEEPBITS,
    probability_precision: float | None = compress.PROBABILITY_PRECISION,
) -> dict[str, int]:
    """Bit-round ``ds`` to ``inflevel`` of its information and write it compressed, atomically.

    Args:
        ds: Product dataset (lazy or loaded).
        path: ``*.nc`` (NetCDF-4) or ``*.zarr`` (Zarr v3 directory).
        inflevel: Information to keep per variable, in (0, 1]; 1 keeps every bit.
        fmt: ``netcdf`` or ``zarr``; default from the suffix.
        keepbits: Variable -> mantissa bits, skipping the analysis for those variables.
        compression: NetCDF codec (``zstd`` or ``zlib``); default zstd when available.
        complevel: Codec level.
        min_keepbits: Lower bound on the analysed keepbits (not applied to ``keepbits``).
        probability_precision: Absolute step probabilities are rounded to first (see
            :func:`~probcast.products.compress.quantize_probabilities`); None disables.

    Returns:
        Variable -> mantissa bits kept.
    """
    target = Path(path)
    kind = format_of(target, fmt)
    ds = compress.quantize_probabilities(ds, probability_precision)
    given = dict(keepbits or {})
    todo = ds[[v for v in ds.data_vars if v not in given]]
    found = compress.information_keepbits(todo, inflevel=inflevel, min_keepbits=min_keepbits)
    used = {**found, **given}
    rounded = compress.bitround(ds, used, inflevel=inflevel)
    if kind == "netcdf":
        encoding = compress.netcdf_encoding(rounded, compression=compression, complevel=complevel)
    else:
        encoding = compress.zarr_encoding(rounded, complevel=complevel)
    _flag_grid_mapping(rounded)
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(rounded, target, kind, encoding)
    return used


def write_product_set(
    products: Mapping[str, xr.Dataset],
    directory: str | os.PathLike[str],
    *,
    suffix: str = ".nc",
    **kwargs: Any,
) -> dict[str, Path]:
    """Write each product of :func:`~probcast.products.build.build_products` to ``directory``.

    Args:
        products: Product name -> dataset.
        directory: Output folder (created if needed).
        suffix: ``.nc`` or ``.zarr``.
        **kwargs: Passed to :func:`write_products`.

    Returns:
        Product name -> written path.
    """
    folder = Path(directory)
    paths = {}
    for name, ds in products.items():
        paths[name] = folder / f"{name}{suffix}"
        write_products(ds, paths[name], **kwargs)
    return paths
