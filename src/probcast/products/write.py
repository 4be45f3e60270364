"""Write products atomically and reproducibly as compressed NetCDF-4 or Zarr v3.

A product is written under a temporary name in the destination folder and renamed over the
destination only when complete (:func:`probcast.io.atomic_path`), so readers see either the
old complete product or the new one, never a partial file; a failure leaves the old product
untouched.

Lazy (dask) variables are computed block by block on a few threads; each block is bit-rounded
there to the bits its own information needs (:class:`~probcast.products.compress.Rounding`),
and the blocks are written in one fixed order (variable by variable, blocks in C order) from
the calling thread. HDF5 lays chunks out in the order they are written, so letting the threads
write as they finished gave byte-different files on every run; in a fixed order, writing the
same dataset twice gives byte-identical NetCDF and Zarr output.

Codecs: Zstandard in NetCDF-4 (netCDF4-python applies the shuffle filter only with zlib; zstd
alone compresses bit-rounded fields as well as zlib + shuffle) or zlib + shuffle when the
netCDF library lacks zstd; Blosc-Zstd with byte shuffle in Zarr v3 (byte shuffle beat
bit-shuffle on bit-rounded smooth fields).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.array as dsa
import netCDF4
import numpy as np
import xarray as xr

from probcast import defaults
from probcast.io import atomic_path
from probcast.products import cf, compress
from probcast.products.blocks import Finish, StoreJob, as_is, store_in_order
from probcast.products.source import POINT_DIM

FORMATS = {".nc": "netcdf", ".nc4": "netcdf", ".zarr": "zarr"}
STORAGE_CHUNK = 512
LEVELS = {"zstd": 5, "zlib": 4, "blosc-zstd": 5}
"""Default codec levels, chosen by ``benchmarks/products_grid.py --levels`` on the real ICP WRF
and GFS/NAM grids (bit-rounded products): each is the knee of size against write time. Zstd
5 stores ICP WRF at 24.1x against 20.9x (zstd 1) and 21.4x (zstd 3), at 2.4 times the codec
time of zstd 1; zstd 9 gains 6 % for 1.8 times longer, 15 and 19 take 7 and 23 times longer.
Zlib, the fallback without zstd: 4 gives 19.1x against 15.3x for 1, 6 gains 9 % for twice the
time. Blosc-Zstd (Zarr): 5 gives 18.5x against 15.8x for 1, 7 gains 4 % for 1.6 times longer.
See ``benchmarks/README.md``."""

Encoding = dict[str, dict[str, Any]]


@dataclass
class Job:
    """A dataset to write with the rounding of each variable; the writer fills ``blocks``.

    Attributes:
        ds: Dataset (unrounded).
        rounding: Variable -> how its blocks are rounded.
        inflevel: Information level recorded in the attributes.
        blocks: Variable -> per block (C order) bits kept and information kept.
    """

    ds: xr.Dataset
    rounding: dict[str, compress.Rounding]
    inflevel: float | None = None
    blocks: dict[str, list[compress.BlockInfo]] = field(default_factory=dict)

    def finish(self, name: Hashable) -> Finish:
        """The per-block function of variable ``name``."""
        return self.rounding.get(str(name), as_is)

    def record(self, name: Hashable, infos: list[Any]) -> dict[str, Any]:
        """Keep the block statistics of ``name``; return the attributes they give it."""
        if str(name) not in self.rounding:
            return {}
        self.blocks[str(name)] = infos
        bits = [b.keepbits for b in infos]
        if min(bits) >= self.rounding[str(name)].n_mant:
            return {}  # nothing was rounded
        # The error bound 2**-(keepbits+1) holds everywhere with the fewest bits kept.
        attrs: dict[str, Any] = {"bitround_keepbits": np.int32(min(bits))}
        if max(bits) != min(bits):
            attrs["bitround_keepbits_max"] = np.int32(max(bits))
        # ... and half the largest spacing of the stored values is the absolute bound.
        rounding = self.rounding[str(name)]
        steps = [b.step for b in infos if b.step is not None]
        step = rounding.exact_step or (max(steps) if steps else None)
        if step is not None:
            attrs["least_significant_step"] = np.asarray(step, self.ds[name].dtype)[()]
        if self.inflevel is not None:
            attrs["bitinformation_level"] = np.float32(self.inflevel)
        return attrs


Writer = Callable[[Job, Path, Encoding], None]


class _Collector:
    """Duck-typed xarray ArrayWriter: keeps lazy variables for :func:`store_in_order`."""

    def __init__(self) -> None:
        self.pairs: list[tuple[dsa.Array, Any]] = []

    def add(self, source: Any, target: Any, region: Any = None) -> None:
        if region and any(r != slice(None) for r in region):
            raise NotImplementedError("region writes are not supported")
        if isinstance(source, dsa.Array):
            self.pairs.append((source, target))
        else:
            target[...] = source


def _netcdf(job: Job, tmp: Path, encoding: Encoding) -> None:
    store = xr.backends.NetCDF4DataStore.open(tmp, mode="w", format="NETCDF4")
    try:
        collector = _Collector()
        job.ds.dump_to_store(store, writer=collector, encoding=encoding)
        jobs = [StoreJob(s, t, job.finish(t.variable_name)) for s, t in collector.pairs]
        for (_, target), infos in zip(collector.pairs, store_in_order(jobs), strict=True):
            target.get_array().setncatts(job.record(target.variable_name, infos))
    finally:
        store.close()


def _zarr(job: Job, tmp: Path, encoding: Encoding) -> None:
    import zarr  # imported here: 0.3 s that NetCDF writers do not need

    # compute=False creates every array and writes the in-memory ones; the lazy ones follow,
    # unencoded: only plain float and integer data (no scale_factor) are stored lazily.
    job.ds.to_zarr(
        tmp, mode="w-", encoding=encoding, zarr_format=3, consolidated=False, compute=False
    )
    group = zarr.open_group(tmp, mode="r+", zarr_format=3)
    names = [n for n, v in job.ds.variables.items() if v.chunks is not None]
    jobs = [StoreJob(job.ds[n].data, group[str(n)], job.finish(n)) for n in names]
    for name, infos in zip(names, store_in_order(jobs), strict=True):
        attrs = job.record(name, infos)
        group[str(name)].attrs.update({k: v.item() for k, v in attrs.items()})


_WRITERS: dict[str, Writer] = {"netcdf": _netcdf, "zarr": _zarr}


def atomic_write(job: Job, path: Path, fmt: str, encoding: Encoding) -> None:
    """Write ``job`` with the ``fmt`` writer to a temporary sibling, then rename it to ``path``.

    Args:
        job: Dataset and rounding to write.
        path: Destination file (NetCDF) or directory (Zarr).
        fmt: ``netcdf`` or ``zarr``.
        encoding: Per-variable encoding.
    """
    with atomic_path(path) as tmp:
        _WRITERS[fmt](job, tmp, encoding)


def storage_chunks(da: xr.DataArray) -> tuple[int, ...]:
    """Storage chunk shape: the spatial dask chunk (or 512) over the spatial dims, else 1.

    The spatial dims are the last two, or a last ``point`` dim of scattered points alone
    (unchunked: 512 x 512 points), as in :func:`~probcast.products.source.as_source`.
    """
    n_spatial = 1 if da.dims and da.dims[-1] == POINT_DIM else 2
    shape = []
    for i, (dim, n) in enumerate(zip(da.dims, da.shape, strict=True)):
        if i < da.ndim - n_spatial:
            shape.append(1)
        elif da.chunks is not None:
            shape.append(int(da.chunks[i][0]))
        else:
            shape.append(min(n, STORAGE_CHUNK**2 if dim == POINT_DIM else STORAGE_CHUNK))
    return tuple(shape)


def netcdf_compression() -> str:
    """``zstd`` when the installed netCDF library has the filter, else ``zlib``."""
    return "zstd" if getattr(netCDF4, "__has_zstandard_support__", False) else "zlib"


def netcdf_encoding(
    ds: xr.Dataset, *, compression: str | None = None, complevel: int | None = None
) -> dict[str, dict[str, Any]]:
    """NetCDF-4 encoding: lossless compression with shuffle and chunking per variable.

    Args:
        ds: Dataset to write.
        compression: ``zstd``, ``zlib`` or None for :func:`netcdf_compression`.
        complevel: Compression level; default from :data:`LEVELS` (zstd 5, zlib 4).

    Returns:
        Encoding mapping for ``Dataset.to_netcdf(engine="netcdf4")``.
    """
    method = compression or netcdf_compression()
    if method not in ("zstd", "zlib"):
        raise ValueError(f"compression must be 'zstd' or 'zlib', got {method!r}")
    level = complevel if complevel is not None else LEVELS[method]
    top = {"zstd": 22, "zlib": 9}[method]
    if not 1 <= level <= top:
        raise ValueError(f"{method} complevel must be in the range [1, {top}], got {level}")
    encoding: dict[str, dict[str, Any]] = {}
    for name, var in ds.variables.items():
        if name in ds.data_vars and var.ndim >= 1:
            encoding[str(name)] = {
                "compression": method,
                "complevel": level,
                "shuffle": True,
                "chunksizes": storage_chunks(ds[name]),
            }
            if var.dtype.kind == "f":
                encoding[str(name)]["_FillValue"] = np.nan
        elif name not in ds.data_vars:
            encoding[str(name)] = cf.coordinate_encoding(name, var)
            if var.ndim >= 2:
                # Smooth lossless coordinates (2-D latitude/longitude) need the shuffle
                # filter, which netCDF4-python only pairs with zlib: 3.2x versus 1.7x.
                encoding[str(name)].update(compression="zlib", complevel=4, shuffle=True)
    return encoding


def zarr_encoding(ds: xr.Dataset, *, complevel: int | None = None) -> dict[str, dict[str, Any]]:
    """Zarr v3 encoding: Blosc-Zstd with byte shuffle, chunks aligned with the dask chunks.

    Args:
        ds: Dataset to write.
        complevel: Blosc Zstandard level (default :data:`LEVELS`, 5).

    Returns:
        Encoding mapping for ``Dataset.to_zarr(zarr_format=3)``.
    """
    import zarr.codecs

    level = LEVELS["blosc-zstd"] if complevel is None else complevel
    if not 0 <= level <= 9:
        raise ValueError(f"Blosc complevel must be in the range [0, 9], got {level}")
    codec = zarr.codecs.BloscCodec(cname="zstd", clevel=level, shuffle="shuffle")
    encoding: dict[str, dict[str, Any]] = {}
    for name, var in ds.variables.items():
        if name in ds.data_vars and var.ndim >= 1:
            encoding[str(name)] = {"compressors": [codec], "chunks": storage_chunks(ds[name])}
        elif name not in ds.data_vars:
            encoding[str(name)] = cf.coordinate_encoding(name, var)
    return encoding


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
    resolution: Mapping[str, float] | None = defaults.PRODUCT_RESOLUTION,
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
            :func:`~probcast.products.compress.quantize_probabilities`); their mantissa then
            keeps every bit that step needs, so the rounding error stays within half a step.
            None disables.
        resolution: Canonical variable -> coarsest spacing of its stored values, in
            canonical units (default :data:`probcast.defaults.PRODUCT_RESOLUTION`; None:
            none). Converted to each variable's ``units``, it holds its members,
            percentiles and location/spread parameters, whatever bits the information
            needs; explicit ``keepbits`` too.

    Returns:
        Variable -> mantissa bits kept: the most over the blocks, by the information (or
        ``keepbits``); values whose magnitude needs more for ``resolution`` keep more
        (``least_significant_step`` records the coarsest spacing).
    """
    quantised = compress.quantize_probabilities(ds, probability_precision)
    job = write_job(
        quantised,
        path,
        compress.plan_rounding(
            quantised,
            inflevel=inflevel,
            keepbits=keepbits,
            min_keepbits=min_keepbits,
            resolution=resolution,
        ),
        inflevel=inflevel,
        fmt=fmt,
        compression=compression,
        complevel=complevel,
    )
    return {name: max(b.keepbits for b in blocks) for name, blocks in job.blocks.items()}


def write_job(
    ds: xr.Dataset,
    path: str | os.PathLike[str],
    rounding: dict[str, compress.Rounding],
    *,
    inflevel: float | None = None,
    fmt: str | None = None,
    compression: str | None = None,
    complevel: int | None = None,
) -> Job:
    """Write ``ds`` rounded block by block as ``rounding`` says; return the block statistics.

    The lower level of :func:`write_products` (which plans ``rounding`` with
    :func:`~probcast.products.compress.plan_rounding`); benchmarks read the returned bits
    and information kept per block.
    """
    target = Path(path)
    kind = format_of(target, fmt)
    ds = ds.copy()
    for name in rounding:  # in-memory variables are rounded per spatial storage chunk
        da = ds[name]
        if da.chunks is None:
            spatial = storage_chunks(da)[-2:]
            ds[name] = da.chunk(
                {d: -1 for d in da.dims[:-2]} | dict(zip(da.dims[-2:], spatial, strict=True))
            )
    if kind == "netcdf":
        encoding = netcdf_encoding(ds, compression=compression, complevel=complevel)
    else:
        encoding = zarr_encoding(ds, complevel=complevel)
    _flag_grid_mapping(ds)
    job = Job(ds, rounding, inflevel)
    atomic_write(job, target, kind, encoding)
    return job
