"""Compress products to their information content: bit information and bit rounding.

The mantissa bits kept are the fewest that preserve ``inflevel`` (default 99 %) of the real
bitwise information (Klöwer et al. 2021, doi:10.1038/s43588-021-00156-2), measured between
neighbours along the last dimension by a NumPy port of xbitinfo's pure-Python estimator
(:mod:`probcast.products.bitinfo`). The writer chooses them per block (:class:`Rounding`), so
every chunk keeps ``inflevel`` of its own information; :func:`information_keepbits` gives one number
per variable from its central block. Bit rounding (to nearest, as numcodecs ``BitRound``) leaves
zeros that the lossless codecs (:mod:`probcast.products.write`) remove. Every value keeps at
least the bits its magnitude needs for its variable's resolution floor
(:data:`probcast.defaults.PRODUCT_RESOLUTION`), and physical bounds are exact and never
crossed; both are taken in the variable's own units (its ``units`` attribute).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from probcast import defaults, schema
from probcast.products.bitinfo import (
    NO_BOUNDS,
    analysed_keepbits,
    block_sample,
    largest_spacing,
    picks,
    round_block,
)
from probcast.products.bitinfo import (
    ROUND_SLAB as ROUND_SLAB,
)
from probcast.units import UserUnit, user_units

_round_block = round_block  # the kernel's former home (tests import it from here)

MANTISSA_BITS = {np.dtype("float32"): 23, np.dtype("float64"): 52}
DEFAULT_MAX_POINTS = 2**18
"""Values per variable of the central-block analysis (:func:`information_keepbits`)."""
BLOCK_MAX_POINTS = 2**16
"""Values analysed per block when the bits are chosen per block (about 10 ms each)."""
PROBABILITY_PRECISION = 0.01
"""Default absolute precision of probabilities: step 2**-7, error <= 0.004 (NBM: 0.005)."""
DEFAULT_MIN_KEEPBITS = 0
"""Default floor on the analysed keepbits: none. The 99 % criterion may keep 0-2 bits (error
up to 1/2**(keepbits+1)) on coarse or dry fields; raise ``min_keepbits`` where too coarse."""


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
        index[d] = picks(da.sizes[d])
        lead *= index[d].size
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


def information_keepbits(
    ds: xr.Dataset,
    *,
    inflevel: float = 0.99,
    max_points: int = DEFAULT_MAX_POINTS,
    min_keepbits: int = DEFAULT_MIN_KEEPBITS,
) -> dict[str, int]:
    """Mantissa bits to keep per floating-point data variable, from its central block.

    One number per variable, measured on :func:`analysis_sample` (along the last
    dimension). :func:`~probcast.products.write.write_products` instead chooses the bits per
    chunk (:class:`Rounding`): one central block kept 95-99 % on the corners of real grids.
    Variables in which no bit carries information above the noise floor keep all bits.

    Args:
        ds: Dataset (lazy or loaded).
        inflevel: Fraction of information to keep, in (0, 1].
        max_points: Subsample size per variable.
        min_keepbits: Lower bound applied to every variable.

    Returns:
        Variable -> keepbits (0 to 23 for float32).

    Raises:
        ValueError: If ``inflevel`` is outside (0, 1].
    """
    _check_inflevel(inflevel)
    keepbits: dict[str, int] = {}
    for name, da in ds.data_vars.items():
        if not _lossy(da):
            continue
        n_mant = MANTISSA_BITS[da.dtype]
        if inflevel >= 1.0:
            keepbits[str(name)] = n_mant
            continue
        sample = np.asarray(analysis_sample(da, max_points).values)
        keepbits[str(name)], _ = analysed_keepbits(sample, n_mant, inflevel, min_keepbits)
    return keepbits


def _check_inflevel(inflevel: float) -> None:
    if not 0.0 < inflevel <= 1.0:
        raise ValueError(f"inflevel must be in the range (0, 1], got {inflevel}")


@dataclass(frozen=True)
class Rounding:
    """How the blocks of one variable are bit-rounded: fixed keepbits, or per block.

    Attributes:
        n_mant: Mantissa bits of the dtype.
        keepbits: Fixed mantissa bits; None chooses them per block from its information.
        inflevel: Information to keep in every block (per-block choice).
        min_keepbits: Floor on the per-block choice.
        max_points: Values analysed per block.
        measure: Also measure the information kept when ``keepbits`` is fixed.
        skip: Values left out of the analysis: the finite physical bounds, in the
            variable's own units.
        bounds: ``(low, high)`` in the variable's units: a value at a bound stays exactly
            there and none is rounded across one.
        log2_step: Resolution floor: every value keeps the bits its magnitude needs for a
            spacing of at most ``2**log2_step`` (None: none).
        exact_step: The absolute step the values were quantised to (probabilities), recorded
            as ``least_significant_step`` instead of the spacing the bits give.
    """

    n_mant: int
    keepbits: int | None = None
    inflevel: float = 0.99
    min_keepbits: int = DEFAULT_MIN_KEEPBITS
    max_points: int = BLOCK_MAX_POINTS
    measure: bool = False
    skip: tuple[float, ...] = ()
    bounds: tuple[float, float] = NO_BOUNDS
    log2_step: int | None = None
    exact_step: float | None = None

    def __call__(self, block: np.ndarray) -> tuple[np.ndarray, BlockInfo]:
        """Round one block; return it with the bits kept and the information they keep."""
        kept: np.ndarray | None = None
        if self.keepbits is not None and not self.measure:
            keep = self.keepbits
        else:
            sample = block_sample(block, self.max_points)
            keep, kept = analysed_keepbits(
                sample, self.n_mant, self.inflevel, self.min_keepbits, self.skip
            )
            keep = keep if self.keepbits is None else self.keepbits
        rounded = (
            block
            if keep >= self.n_mant
            else round_block(block, keep, log2_step=self.log2_step, bounds=self.bounds)
        )
        info = None if kept is None else float(kept[keep])
        step = largest_spacing(rounded, keep, self.log2_step)
        return rounded, BlockInfo(keep, info, kept, step)


PHYSICAL_PARAMS = ("loc", "mu", "mean", "scale", "sigma", "std", "shift")
"""Distribution parameters in their variable's units (a location or a spread)."""


def _unit(name: str, da: xr.DataArray, *, params: bool = False) -> UserUnit | None:
    """The canonical variable of ``da`` and the conversion to its units, or None.

    ``da`` holds values of a canonical variable when named after it (members,
    percentiles) or, with ``params``, when it is one of its :data:`PHYSICAL_PARAMS`. Its units
    are its ``units`` attribute (canonical without one), converted as
    :func:`probcast.products.units.products_to_units` converts the products; None when the
    attribute names no units of the variable.
    """
    param = str(da.attrs.get("distribution_parameter", ""))
    var = name if not params or param not in PHYSICAL_PARAMS else name.removesuffix(f"_{param}")
    if var not in schema.VARIABLES:
        return None
    try:
        return user_units({var: str(da.attrs.get("units", schema.VARIABLES[var].units))})[var]
    except ValueError:
        return None


def _bounds(name: str, da: xr.DataArray) -> tuple[float, float]:
    """The physical bounds of a variable named after a canonical one, in its own units.

    Converted as the products are, in the variable's dtype, so a value clipped to a bound in
    canonical units and then converted is the converted bound (1 is 100 in %).
    """
    unit = _unit(name, da)
    if unit is None:
        return NO_BOUNDS
    lo, hi = (float(unit.to_user(np.asarray(b, da.dtype))) for b in schema.bounds(unit.variable))
    return lo, hi


def _log2_step(name: str, da: xr.DataArray, resolution: Mapping[str, float]) -> int | None:
    """Exponent of the power-of-two step within ``da``'s resolution floor (None: no floor).

    The floor is converted to ``da``'s units as a difference: by the scale alone.
    """
    unit = _unit(name, da, params=True)
    if unit is None or unit.variable not in resolution:
        return None
    return int(np.floor(np.log2(float(unit.spread_to_user(resolution[unit.variable])))))


def plan_rounding(
    ds: xr.Dataset,
    *,
    inflevel: float = 0.99,
    keepbits: Mapping[str, int] | None = None,
    min_keepbits: int = DEFAULT_MIN_KEEPBITS,
    measure: bool = False,
    resolution: Mapping[str, float] | None = defaults.PRODUCT_RESOLUTION,
) -> dict[str, Rounding]:
    """The rounding of every floating-point data variable of ``ds``.

    Fixed bits where given in ``keepbits``, the exact bits of quantised probabilities
    (:func:`exact_keepbits`), all bits at ``inflevel`` 1; otherwise chosen per block. Every
    variable of a canonical quantity is held to its ``resolution`` (canonical units: K,
    m s-1, kg m-2, Pa, fraction) in its own units, and its physical bounds, in its own
    units, are left out of the analysis and never crossed.

    Raises:
        ValueError: If ``inflevel`` is outside (0, 1].
    """
    _check_inflevel(inflevel)
    exact = exact_keepbits(ds)
    fixed = {**exact, **(keepbits or {})}
    plan = {}
    for name, da in ds.data_vars.items():
        if _lossy(da):
            n_mant = MANTISSA_BITS[da.dtype]
            keep = n_mant if inflevel >= 1.0 else fixed.get(str(name))
            bounds = _bounds(str(name), da)
            plan[str(name)] = Rounding(
                n_mant,
                keep,
                inflevel,
                min_keepbits,
                measure=measure,
                skip=tuple(float(b) for b in bounds if np.isfinite(b)),
                bounds=bounds,
                log2_step=_log2_step(str(name), da, resolution or {}),
                exact_step=(
                    float(da.attrs["least_significant_step"]) if str(name) in exact else None
                ),
            )
    return plan


@dataclass(frozen=True)
class BlockInfo:
    """Bits kept in one block, the information they keep (all, per bit), its largest spacing."""

    keepbits: int
    information: float | None
    kept: np.ndarray | None = field(default=None, repr=False)
    step: float | None = None


def quantize_probabilities(
    ds: xr.Dataset, precision: float | None = PROBABILITY_PRECISION
) -> xr.Dataset:
    """Round ``probability_of_*`` variables to a power-of-two step no larger than ``precision``.

    The tails (1e-9 versus 1e-12) are real but useless information (14+ mantissa bits). As
    GRIB does with a decimal scale, probabilities are rounded to an absolute step, a power of
    two (2**-7 for 0.01) exact in binary: the tails become exactly 0 or 1.

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


def exact_keepbits(ds: xr.Dataset) -> dict[str, int]:
    """Mantissa bits that store the variables quantised to an absolute step without loss.

    A value in [0, 1] on a grid of step 2**-s needs at most s - 1 mantissa bits ([0.5, 1) has
    exponent -1). Fewer bits would add a rounding error to the quantisation one (0.0117
    instead of <= 0.004 at 5 bits), so quantised probabilities keep exactly these.

    Returns:
        Variable -> keepbits, for the probabilities with a ``least_significant_step``
        attribute (set by :func:`quantize_probabilities`; other variables record the spacing
        of their values there).
    """
    out = {}
    for name, da in ds.data_vars.items():
        step = da.attrs.get("least_significant_step") if _lossy(da) else None
        if str(name).startswith("probability_of_") and step is not None and 0 < float(step) <= 1:
            bits = int(np.ceil(-np.log2(float(step)))) - 1
            out[str(name)] = int(np.clip(bits, 0, MANTISSA_BITS[da.dtype]))
    return out


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
