"""Compress products to their information content: bit information, bit rounding, codecs.

Per variable, the number of mantissa bits to keep is the smallest that preserves
``inflevel`` (default 99 %) of the real bitwise information (Klöwer et al. 2021, Nat.
Comput. Sci. 1, 713-724, doi:10.1038/s43588-021-00156-2), computed with xbitinfo's
pure-Python implementation on a representative subsample. The data are then bit-rounded
(numcodecs ``BitRound``, round-to-nearest) and stored with a lossless codec: Zstandard in
NetCDF-4 (netCDF4-python applies the shuffle filter only with zlib; zstd alone compresses
bit-rounded fields as well as zlib + shuffle) or zlib + shuffle when the netCDF library lacks
zstd, and Blosc-Zstd with byte shuffle in Zarr v3 (byte shuffle beat bit-shuffle on
bit-rounded smooth fields). Rounded-away mantissa bits are zeros, which the codecs remove.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Hashable, Mapping
from typing import Any

import netCDF4
import numpy as np
import xarray as xr
import xbitinfo
import zarr.codecs
from numcodecs import BitRound

MANTISSA_BITS = {np.dtype("float32"): 23, np.dtype("float64"): 52}
DEFAULT_MAX_POINTS = 2**18
"""Values per variable used for the bit-information analysis (about 1 s each)."""
STORAGE_CHUNK = 512
PROBABILITY_PRECISION = 0.01
"""Default absolute precision of probabilities: step 2**-7, error <= 0.004 (NBM: 0.005)."""
DEFAULT_MIN_KEEPBITS = 0
"""Default floor on the analysed keepbits (none: the information level alone decides).
On coarse grids, or fields with many zeros, the 99 % criterion may keep only 0-2 mantissa
bits (relative rounding error up to 1/2**(keepbits+1)); raise ``min_keepbits`` where that
precision is too coarse for users."""


def _lossy(da: xr.DataArray) -> bool:
    return da.dtype in MANTISSA_BITS and da.ndim >= 1


def _central_block(size: int, chunks: tuple[int, ...] | None) -> tuple[int, int]:
    """``(start, stop)`` of the chunk holding the centre (the whole axis when unchunked)."""
    if chunks is None:
        return 0, size
    bounds = np.cumsum((0, *chunks))
    k = int(np.searchsorted(bounds, size // 2, side="right")) - 1
    return int(bounds[k]), int(bounds[k + 1])


def analysis_sample(da: xr.DataArray, max_points: int = DEFAULT_MAX_POINTS) -> xr.DataArray:
    """Representative subsample for the bit-information analysis of ``da``.

    Takes the central spatial block: along the last dimension the chunk holding the centre
    (the whole axis when ``da`` is not chunked), along the second-to-last a band of
    contiguous rows around the centre inside its chunk, and up to three evenly spaced
    indices (first, middle, last) of each leading dimension. Information is measured
    between neighbours along the last dimension. Staying inside one spatial chunk means a
    lazy product computes one block for the analysis, not a band across the whole grid.

    Args:
        da: Data array with at least one dimension.
        max_points: Upper bound on the number of sampled values (at least two rows).

    Returns:
        The subsample (still lazy when ``da`` is).
    """
    index: dict[Hashable, Any] = {}
    lead = 1
    for d in da.dims[:-2]:
        n = da.sizes[d]
        picks = np.unique(np.linspace(0, n - 1, min(n, 3)).round().astype(int))
        index[d] = picks
        lead *= picks.size
    if da.ndim < 2:
        return da.isel(index)
    chunks = da.chunks
    y0, y1 = _central_block(da.shape[-2], chunks[-2] if chunks else None)
    x0, x1 = _central_block(da.shape[-1], chunks[-1] if chunks else None)
    rows = int(np.clip(max_points // max((x1 - x0) * lead, 1), 2, y1 - y0))
    start = max(y0, min((y0 + y1 - rows) // 2, y1 - rows))
    index[da.dims[-2]] = slice(start, start + rows)
    index[da.dims[-1]] = slice(x0, x1)
    return da.isel(index)


def _fill_nonfinite(values: np.ndarray) -> np.ndarray:
    """Replace NaN/inf by the mean of the finite values (the Python bitinfo cannot mask)."""
    finite = np.isfinite(values)
    if finite.all():
        return values
    fill = values[finite].mean() if finite.any() else 0.0
    return np.where(finite, values, fill).astype(values.dtype)


def _keepbits_of(info: xr.DataArray, inflevel: float, n_mant: int) -> int | None:
    """Keepbits from per-bit information, or None when no bit carries real information."""
    bitdim = info.dims[-1]
    noise = float(info.isel({bitdim: slice(-4, None)}).max()) * 1.5
    signal = info.where(info > noise)
    if not bool(signal.notnull().any()):
        return None
    keep = xbitinfo.get_keepbits(info.to_dataset(name="v"), inflevel=inflevel)["v"]
    return int(np.clip(int(keep.values.ravel()[0]), 0, n_mant))


def information_keepbits(
    ds: xr.Dataset,
    *,
    inflevel: float = 0.99,
    max_points: int = DEFAULT_MAX_POINTS,
    min_keepbits: int = DEFAULT_MIN_KEEPBITS,
) -> dict[str, int]:
    """Mantissa bits to keep per floating-point data variable to retain ``inflevel``.

    The bitwise real information is measured along the last (fastest-varying, usually
    ``x``) dimension on :func:`analysis_sample`. Variables in which no bit carries
    information above the noise floor (constant or pure-noise fields) keep all bits.

    Args:
        ds: Dataset (lazy or loaded).
        inflevel: Fraction of information to keep, in (0, 1].
        max_points: Subsample size per variable.
        min_keepbits: Lower bound applied to every variable.

    Returns:
        Variable name -> keepbits (0 to 23 for float32).

    Raises:
        ValueError: If ``inflevel`` is outside (0, 1].
    """
    if not 0.0 < inflevel <= 1.0:
        raise ValueError(f"inflevel must be in the range (0, 1], got {inflevel}")
    keepbits: dict[str, int] = {}
    for name, da in ds.data_vars.items():
        if not _lossy(da):
            continue
        n_mant = MANTISSA_BITS[da.dtype]
        if inflevel >= 1.0:
            keepbits[str(name)] = n_mant
            continue
        sample = analysis_sample(da, max_points)
        values = _fill_nonfinite(np.asarray(sample.values))
        one = xr.Dataset({"v": (sample.dims, values)})
        # xbitinfo draws a tqdm progress bar on stderr for every call; keep logs clean.
        with contextlib.redirect_stderr(io.StringIO()):
            info = xbitinfo.get_bitinformation(
                one, dim=str(sample.dims[-1]), implementation="python"
            )
        keep = _keepbits_of(info["v"], inflevel, n_mant)
        keepbits[str(name)] = n_mant if keep is None else max(keep, min_keepbits)
    return keepbits


def quantize_probabilities(
    ds: xr.Dataset, precision: float | None = PROBABILITY_PRECISION
) -> xr.Dataset:
    """Round ``probability_of_*`` variables to a power-of-two step no larger than ``precision``.

    Bit information of probabilities is dominated by the tails (1e-9 versus 1e-12, or
    0.9999999 versus 0.99999): real but useless digits that would keep 14+ mantissa bits.
    As GRIB products do with a decimal scale, probabilities are first rounded to an
    absolute step; a power of two (2**-7 for 0.01) is exact in binary, so the rounded
    values end in zero bits and the tails become exactly 0 or 1.

    Args:
        ds: Dataset.
        precision: Largest acceptable absolute error step; None leaves the data as is.

    Returns:
        A copy with rounded probability variables (lazy when dask-backed).
    """
    if precision is None:
        return ds
    if not 0.0 < precision < 1.0:
        raise ValueError(f"probability precision must be in (0, 1), got {precision}")
    step = 2.0 ** np.floor(np.log2(precision))
    out = ds.copy()
    for name, da in ds.data_vars.items():
        if str(name).startswith("probability_of_") and _lossy(da):
            rounded = ((da / step).round() * step).astype(da.dtype)
            rounded.attrs = {**da.attrs, "least_significant_step": np.float32(step)}
            rounded.encoding = dict(da.encoding)
            out[name] = rounded
    return out


def _round_block(block: np.ndarray, keepbits: int) -> np.ndarray:
    codec = BitRound(keepbits=keepbits)
    # BitRound.decode returns a view of its input; copy so lazy inputs are never mutated.
    out = np.asarray(codec.decode(codec.encode(np.array(block, copy=True)))).reshape(block.shape)
    # With 0 kept mantissa bits rounding turns NaN into -0.0: masked areas must stay masked.
    return np.where(np.isnan(block), block, out)


def bitround(
    ds: xr.Dataset, keepbits: Mapping[str, int], *, inflevel: float | None = None
) -> xr.Dataset:
    """Round the mantissa of each variable in ``keepbits`` (lazily when dask-backed).

    Args:
        ds: Dataset.
        keepbits: Variable -> mantissa bits to keep.
        inflevel: Information level the keepbits came from, recorded in the attributes.

    Returns:
        A copy of ``ds`` with rounded variables and ``bitround_keepbits`` attributes.
    """
    out = ds.copy()
    for name, keep in keepbits.items():
        da = ds[name]
        if keep >= MANTISSA_BITS[da.dtype]:
            continue
        rounded = xr.apply_ufunc(
            _round_block,
            da,
            kwargs={"keepbits": int(keep)},
            dask="parallelized",
            output_dtypes=[da.dtype],
            keep_attrs=True,
        )
        rounded.attrs["bitround_keepbits"] = np.int32(keep)
        if inflevel is not None:
            rounded.attrs["bitinformation_level"] = np.float32(inflevel)
        rounded.encoding = dict(da.encoding)
        out[name] = rounded
    return out


def storage_chunks(da: xr.DataArray) -> tuple[int, ...]:
    """Storage chunk shape: the spatial dask chunk (or 512) over the last two dims, else 1."""
    shape = []
    for i, n in enumerate(da.shape):
        if i < da.ndim - 2:
            shape.append(1)
        elif da.chunks is not None:
            shape.append(int(da.chunks[i][0]))
        else:
            shape.append(min(n, STORAGE_CHUNK))
    return tuple(shape)


def _coord_encoding(var: xr.Variable) -> dict[str, Any]:
    keep = {k: v for k, v in var.encoding.items() if k in ("units", "calendar", "dtype")}
    keep["_FillValue"] = None  # coordinates have no missing values (CF 5)
    if var.dtype.kind == "f" and var.ndim >= 2:
        # 2-D latitude/longitude in float32 are accurate to ~1 m and half the size.
        keep.setdefault("dtype", "float32")
    return keep


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
        complevel: Compression level; default 5 for zstd, 4 for zlib.

    Returns:
        Encoding mapping for ``Dataset.to_netcdf(engine="netcdf4")``.
    """
    method = compression or netcdf_compression()
    if method not in ("zstd", "zlib"):
        raise ValueError(f"compression must be 'zstd' or 'zlib', got {method!r}")
    level = complevel if complevel is not None else (5 if method == "zstd" else 4)
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
            encoding[str(name)] = _coord_encoding(var)
            if var.ndim >= 2:
                # Smooth lossless coordinates (2-D latitude/longitude) need the shuffle
                # filter, which netCDF4-python only pairs with zlib: 3.2x versus 1.7x.
                encoding[str(name)].update(compression="zlib", complevel=4, shuffle=True)
    return encoding


def zarr_encoding(ds: xr.Dataset, *, complevel: int | None = None) -> dict[str, dict[str, Any]]:
    """Zarr v3 encoding: Blosc-Zstd with byte shuffle, chunks aligned with the dask chunks.

    Args:
        ds: Dataset to write.
        complevel: Zstandard level (default 5).

    Returns:
        Encoding mapping for ``Dataset.to_zarr(zarr_format=3)``.
    """
    level = 5 if complevel is None else complevel
    if not 0 <= level <= 9:
        raise ValueError(f"Blosc complevel must be in the range [0, 9], got {level}")
    codec = zarr.codecs.BloscCodec(cname="zstd", clevel=level, shuffle="shuffle")
    encoding: dict[str, dict[str, Any]] = {}
    for name, var in ds.variables.items():
        if name in ds.data_vars and var.ndim >= 1:
            encoding[str(name)] = {"compressors": [codec], "chunks": storage_chunks(ds[name])}
        elif name not in ds.data_vars:
            encoding[str(name)] = _coord_encoding(var)
    return encoding
