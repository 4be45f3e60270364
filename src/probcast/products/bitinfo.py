"""Bit-level kernels: the real bitwise information of floats, and bit rounding.

Klöwer et al. 2021 (doi:10.1038/s43588-021-00156-2): the mutual information of each bit with
the same bit of the neighbouring value, with the exponent in sign-magnitude form (a NumPy
port of xbitinfo's estimator); bits whose information is below the noise floor are rounding
noise. :mod:`probcast.products.compress` chooses the mantissa bits to keep from it and rounds
with :func:`round_block`, which can also hold every value to an absolute step and keep the
values inside physical bounds.
"""

from __future__ import annotations

import numpy as np


def _fill_nonfinite(values: np.ndarray) -> np.ndarray:
    """Replace NaN/inf by the mean of the finite values (the bit information cannot mask)."""
    finite = np.isfinite(values)
    if finite.all():
        return values
    fill = values[finite].mean() if finite.any() else 0.0
    return np.where(finite, values, fill).astype(values.dtype)


def _signed_exponent(values: np.ndarray) -> np.ndarray:
    """Bits with the exponent in sign-magnitude form, as xbitinfo's ``signed_exponent``."""
    info = np.finfo(values.dtype)
    utype = np.dtype(f"u{values.dtype.itemsize}").type
    nmant, bias = int(info.nmant), int(info.maxexp) - 1
    sign = utype(1) << utype(info.bits - 1)
    ui = values.view(utype)
    sf = ui & (sign | utype((1 << nmant) - 1))
    exponent = (ui & utype(((1 << (info.bits - 1)) - 1) ^ ((1 << nmant) - 1))) >> utype(nmant)
    e = exponent.astype(np.int64) - bias
    esign = np.where(e < 0, sign >> utype(1), utype(0)).astype(utype)
    return sf | esign | (np.abs(e).astype(utype) << utype(nmant))


def bitinformation(
    values: np.ndarray, *, skip_zeros: bool = False, skip_values: tuple[float, ...] = ()
) -> np.ndarray:
    """Real bitwise information (bits) between neighbours along the last axis, per bit.

    The same quantity as ``xbitinfo.get_bitinformation(..., implementation="python")``
    (mutual information of each bit with the same bit of the next value; signed exponent),
    in NumPy: about 30 times faster, which makes one analysis per chunk affordable.

    Args:
        values: Float array (NaN/inf allowed: replaced by the mean); at least 2 along the
            last axis.
        skip_zeros: Leave out the pairs with a zero or non-finite value (a mask, as
            BitInformation.jl's ``masked_value``). Zeros are stored exactly whatever the bits
            kept, and in a mostly dry precipitation field their all-zero mantissas make every
            bit look informative (0.5-0.9 bits up to the last), so no bit rises above the
            noise floor and all 23 would be kept.
        skip_values: Values left out as zeros are (with ``skip_zeros``): a variable's
            physical bounds, where products are clipped (cloud cover 1: a field at 1 over
            whole regions made one mantissa bit look enough for the rest).

    Returns:
        Information of each bit, sign bit first (32 values for float32); zeros when fewer
        than 2 pairs are left.
    """
    bits = _signed_exponent(np.ascontiguousarray(_fill_nonfinite(values)))
    big = bits.dtype.newbyteorder(">")
    nbits = 8 * bits.dtype.itemsize
    a, b = bits[..., :-1].ravel(), bits[..., 1:].ravel()
    if skip_zeros:
        usable = (values != 0) & np.isfinite(values)
        if skip_values:
            usable &= ~np.isin(values, np.asarray(skip_values, dtype=values.dtype))
        keep = (usable[..., :-1] & usable[..., 1:]).ravel()
        a, b = a[keep], b[keep]
    if a.size < 2:
        return np.zeros(nbits)
    a = np.unpackbits(a.astype(big).view(np.uint8).reshape(-1, nbits // 8), axis=1)
    b = np.unpackbits(b.astype(big).view(np.uint8).reshape(-1, nbits // 8), axis=1)
    n = a.shape[0]
    n1a, n1b = a.sum(0, dtype=np.int64), b.sum(0, dtype=np.int64)
    n11 = (a & b).sum(0, dtype=np.int64)
    joint = np.stack([n - n1a - n1b + n11, n1b - n11, n1a - n11, n11], axis=-1) / n
    joint = joint.reshape(nbits, 2, 2)
    outer = joint.sum(-1, keepdims=True) * joint.sum(-2, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(joint > 0, joint * np.log2(joint / outer), 0.0)
    return terms.sum(axis=(-1, -2))


def kept_information(info: np.ndarray, n_mant: int) -> np.ndarray:
    """Fraction of the real information kept with 0, 1, ..., ``n_mant`` mantissa bits.

    As ``xbitinfo.get_keepbits``: information below 1.5 times the largest of the last four
    bits is rounding noise and ignored. A field in which no bit carries real information
    (constant or pure noise) gets 0 until all bits are kept, so it keeps them all.
    """
    signal = np.where(info > info[-4:].max() * 1.5, info, 0.0)
    first = info.size - n_mant - 1  # the last exponent bit: keepbits 0
    if not signal.any():
        return np.r_[np.zeros(n_mant), 1.0]
    cdf = np.cumsum(signal) / signal.sum()
    return np.clip(cdf[first:], 0.0, 1.0)


def keepbits_for(kept: np.ndarray, inflevel: float) -> int:
    """Fewest mantissa bits that keep more than ``inflevel`` (all of them at 1)."""
    enough = np.flatnonzero(kept > inflevel) if inflevel < 1.0 else np.empty(0, int)
    return int(enough[0]) if enough.size else kept.size - 1


def analysed_keepbits(
    sample: np.ndarray,
    n_mant: int,
    inflevel: float,
    min_keepbits: int,
    skip: tuple[float, ...] = (),
) -> tuple[int, np.ndarray]:
    """Keepbits chosen from ``sample`` (floored at ``min_keepbits`` unless all are kept).

    Zeros and the values in ``skip`` (the variable's physical bounds) are left out of the
    analysis: they are stored exactly whatever the bits kept.

    Returns:
        The keepbits and :func:`kept_information` of the sample.
    """
    info = bitinformation(sample, skip_zeros=True, skip_values=skip)
    kept = kept_information(info, n_mant)
    keep = keepbits_for(kept, inflevel)
    return (n_mant if keep >= n_mant else max(keep, min_keepbits)), kept


def block_sample(values: np.ndarray, max_points: int = 2**16) -> np.ndarray:
    """Subsample of one block for its analysis: leading dims first/middle/last, rows spread.

    Rows are evenly spaced over the block (not a band), whole along the last axis, so
    neighbour pairs along x are intact and the whole block is represented.
    """
    if values.ndim < 2:
        return values[:max_points]
    chosen = [picks(n) for n in values.shape[:-2]]
    lead = int(np.prod([p.size for p in chosen]))
    ny, nx = values.shape[-2:]
    nrows = int(np.clip(max_points // max(nx * lead, 1), 2, ny))
    rows = np.unique(np.linspace(0, ny - 1, nrows).round().astype(int))
    return values[np.ix_(*chosen, rows, np.arange(nx))]


def picks(n: int) -> np.ndarray:
    """First, middle and last index of an axis of length ``n``."""
    return np.unique(np.linspace(0, n - 1, min(n, 3)).round().astype(int))


def largest_spacing(
    values: np.ndarray, keepbits: int, log2_step: int | None = None
) -> float | None:
    """Largest spacing of values rounded by :func:`round_block`: that of the largest magnitude.

    Values keep at least ``keepbits`` bits and, with ``log2_step``, as many as their exponent
    needs, so the largest magnitude has the coarsest spacing. None when no value is finite
    and non-zero.
    """
    if values.size == 0:
        return None
    top = max(float(np.fmax.reduce(values, axis=None)), -float(np.fmin.reduce(values, axis=None)))
    if not np.isfinite(top) or top <= 0:
        return None
    exponent = int(np.frexp(top)[1]) - 1
    bits = keepbits if log2_step is None else max(keepbits, exponent - log2_step)
    return float(2.0 ** (exponent - min(bits, int(np.finfo(values.dtype).nmant))))


ROUND_SLAB = 2**16
"""Values rounded at a time: the temporaries stay in the CPU cache (3 times faster)."""

NO_BOUNDS = (-np.inf, np.inf)


def round_block(
    block: np.ndarray,
    keepbits: int,
    *,
    log2_step: int | None = None,
    bounds: tuple[float, float] = NO_BOUNDS,
) -> np.ndarray:
    """Round the mantissa of ``block`` to ``keepbits`` bits, to nearest (as numcodecs ``BitRound``).

    One C-ordered copy (lazy inputs are never mutated, and the writer stores it as it is),
    rounded in place on its integer view, slab by slab with cache-sized temporaries:
    numcodecs' codec made five full-size temporaries and kept a strided input strided.
    NaN stays NaN.

    Args:
        block: Float array.
        keepbits: Mantissa bits kept (at least; see ``log2_step``).
        log2_step: A value keeps the bits its own magnitude needs for a spacing of at most
            ``2**log2_step`` when ``keepbits`` give a coarser one (an absolute resolution
            floor: a value with exponent ``e`` keeps ``max(keepbits, e - log2_step)`` bits).
            None: ``keepbits`` everywhere.
        bounds: ``(low, high)``: a value at a bound stays exactly there and none is rounded
            across one (a value inside ends at most at the bound).

    Returns:
        The rounded copy.
    """
    n_mant = int(np.finfo(block.dtype).nmant)
    out = np.array(block, order="C", copy=True)
    if keepbits >= n_mant:
        return out
    flat = out.reshape(-1)
    every = flat.view(np.dtype(f"i{out.dtype.itemsize}"))
    work = _Slab(min(ROUND_SLAB, every.size), every.dtype, n_mant, keepbits, log2_step)
    # Rounding is monotonic: a bound that rounds to itself is neither moved nor crossed.
    edges = [b for b in bounds if np.isfinite(b) and work.rounded(out.dtype.type(b)) != b]
    for start in range(0, every.size, ROUND_SLAB):
        stop = min(start + ROUND_SLAB, every.size)
        values = flat[start:stop]
        before = values.copy() if edges and _reaches(values, edges, bounds) else None
        work.round(every[start:stop], values)
        if edges:
            _within(values, before, edges, bounds)
    # With 0 kept bits (or payload carries) rounding can turn NaN into inf or -0.0.
    nan = np.isnan(block)
    if nan.any():
        np.copyto(out, block, where=nan)
    return out


class _Slab:
    """Rounds slabs of integer views in place, with preallocated temporaries."""

    def __init__(
        self, size: int, itype: np.dtype, n_mant: int, keepbits: int, log2_step: int | None
    ) -> None:
        self.n_mant, self.keepbits, self.log2_step = n_mant, keepbits, log2_step
        self.half = np.empty(size, dtype=itype)
        self.drop = np.empty(size, dtype=itype)
        self.mask = np.empty(size, dtype=itype)
        ebits = int(np.log2(np.finfo(np.dtype(f"f{itype.itemsize}")).maxexp)) + 1
        self.exp_mask, self.bias = (1 << ebits) - 1, (1 << (ebits - 1)) - 1

    def keep(self, magnitude: float) -> int:
        """Bits a value of ``magnitude`` keeps (``n_mant``: not rounded)."""
        if self.log2_step is None or magnitude == 0:
            return self.keepbits
        if not np.isfinite(magnitude):
            return self.n_mant
        floor = int(np.frexp(magnitude)[1]) - 1 - self.log2_step
        return int(np.clip(floor, self.keepbits, self.n_mant))

    def rounded(self, value: np.floating) -> float:
        """``value`` rounded as the slabs are."""
        one = np.array([value])
        self.round(one.view(self.half.dtype), one)
        return float(one[0])

    def round(self, bits: np.ndarray, values: np.ndarray) -> None:
        """Round ``values`` (``bits``, their integer view) in place."""
        if self.log2_step is None:
            self._uniform(bits, self.keepbits)
            return
        low, high = np.fmin.reduce(values), np.fmax.reduce(values)
        top = self.keep(max(abs(float(low)), abs(float(high))))
        bottom = self.keep(0.0 if low <= 0 <= high else min(abs(float(low)), abs(float(high))))
        if top == bottom and np.isfinite(low) and np.isfinite(high):
            if top < self.n_mant:  # one exponent (or no binding floor): every value alike
                self._uniform(bits, top)
            return
        self._per_value(bits)

    def _uniform(self, bits: np.ndarray, keep: int) -> None:
        half = self.half[: bits.size]
        drop = self.n_mant - keep
        np.right_shift(bits, drop, out=half)  # round half to even: add the kept LSB ...
        np.bitwise_and(half, 1, out=half)
        half += (1 << (drop - 1)) - 1  # ... plus half a quantum minus one
        bits += half
        bits &= np.array(-1, bits.dtype) << drop

    def _per_value(self, bits: np.ndarray) -> None:
        half, drops, mask = (a[: bits.size] for a in (self.half, self.drop, self.mask))
        # bits kept: max(keepbits, exponent - log2_step), at most all; NaN/inf keep all
        np.right_shift(bits, self.n_mant, out=drops)
        drops &= self.exp_mask
        drops -= self.bias + int(self.log2_step or 0)
        np.clip(drops, self.keepbits, self.n_mant, out=drops)
        np.subtract(self.n_mant, drops, out=drops)
        np.left_shift(np.array(-1, bits.dtype), drops, out=mask)
        np.right_shift(bits, drops, out=half)
        half &= 1
        half -= 1
        half += np.right_shift(np.left_shift(np.array(1, bits.dtype), drops), 1)
        np.invert(mask, out=drops)  # no rounding where nothing is dropped
        half &= drops
        bits += half
        bits &= mask


def _reaches(values: np.ndarray, edges: list[float], bounds: tuple[float, float]) -> bool:
    """Whether a value of the slab is at or beyond one of the ``edges`` (bounds to watch)."""
    low, high = bounds
    return (low in edges and bool(np.fmin.reduce(values) <= low)) or (
        high in edges and bool(np.fmax.reduce(values) >= high)
    )


def _within(
    values: np.ndarray,
    before: np.ndarray | None,
    edges: list[float],
    bounds: tuple[float, float],
) -> None:
    """Put back the values at a bound of ``edges`` and pull those rounded across one onto it.

    ``before`` (the unrounded values) is needed only when some reached such a bound;
    otherwise every value was inside them, and clipping is enough.
    """
    low, high = bounds
    for bound, side in ((low, np.maximum), (high, np.minimum)):
        if bound not in edges:
            continue
        edge = values.dtype.type(bound)
        if before is None:
            side(values, edge, out=values)
            continue
        inside = before >= edge if side is np.maximum else before <= edge
        side(values, edge, out=values, where=inside)
        np.copyto(values, edge, where=before == edge)
