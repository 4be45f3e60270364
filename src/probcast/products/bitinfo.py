"""Real bitwise information of floats: a NumPy port of xbitinfo's estimator.

Klöwer et al. 2021 (doi:10.1038/s43588-021-00156-2): the mutual information of each bit with
the same bit of the neighbouring value, with the exponent in sign-magnitude form; bits whose
information is below the noise floor are rounding noise. :mod:`probcast.products.compress`
chooses the mantissa bits to keep from it.
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
