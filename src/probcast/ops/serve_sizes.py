"""Sizes of a served forecast's products, rounded up to a few buckets (bounded compilations).

JAX compiles the code of members, quantiles and exceedance probabilities once per array
shape, and keeps every compilation for the life of the process: before, every distinct
number of ``members`` (0-200), of quantile levels or of one variable's thresholds compiled
new code (60 requests with 16..75 members took a server from 0.9 to 2.8 GB). A request is
now computed for the next bucket size (:func:`bucket`: a power of two, at most the largest
count the API accepts) and the answer keeps the columns asked for (:func:`drop_padding`):

- **quantiles**: extra levels (``0.5 + j/1024`` not asked for) are computed and dropped;
  each level's quantile is computed on its own, so the values asked for are those of an
  unpadded request.
- **thresholds**: extra thresholds above the largest one asked for, likewise.
- **members**: the first ``members`` of the bucket's draws. Members are random draws
  from a key: ``members: 5`` answers members 0-4 of the 8 the server draws. They are
  still draws of the predictive distribution, coherent across variables (and across rows
  with a template), and the same request gives the same members; a request for a
  bucket size itself (1, 2, 4, ..., 128, 200) gives what it gave before.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from probcast.products.table import format_level

MAX_LEVELS = 99
"""Quantile levels of one request (the API's ``maxItems``)."""
MAX_THRESHOLDS = 100
"""Thresholds of one variable (the API's ``maxItems``)."""


def bucket(n: int, most: int) -> int:
    """``n`` rounded up to a power of two, but not above ``most`` (0 stays 0)."""
    if n <= 0:
        return 0
    return max(n, min(1 << (n - 1).bit_length(), most))


@dataclasses.dataclass(frozen=True)
class Padded:
    """What is computed for a request: its products, padded to the bucket sizes.

    Attributes:
        members: Members computed (the bucket of ``asked_members``).
        quantiles: The levels asked for, then ``extra_levels``.
        thresholds: Per variable, the thresholds asked for, then its ``extra_thresholds``.
        asked_members: Members asked for (the answer's first ones).
        extra_levels: Levels computed only to pad.
        extra_thresholds: Per variable, thresholds computed only to pad.
    """

    members: int
    quantiles: tuple[float, ...]
    thresholds: dict[str, tuple[float, ...]]
    asked_members: int = 0
    extra_levels: tuple[float, ...] = ()
    extra_thresholds: dict[str, tuple[float, ...]] = dataclasses.field(default_factory=dict)


def _extra_levels(levels: Sequence[float], most: int) -> tuple[float, ...]:
    have = {float(q) for q in levels}
    need = bucket(len(have), most) - len(have)
    out: list[float] = []
    j = 0
    while len(out) < need:  # 0.5, 0.5 + 1/1024, ...: exact, and far from the tails
        q = 0.5 + j / 1024
        if q not in have:
            out.append(q)
        j += 1
    return tuple(out)


def _extra_thresholds(values: Sequence[float], most: int) -> tuple[float, ...]:
    ts = np.asarray(values, dtype=float)
    if not len(ts) or not np.isfinite(ts).all() or np.any(np.diff(ts) <= 0):
        return ()  # refused by the request check, with the list as given
    top = float(ts[-1])
    step = max(1.0, abs(top))
    return tuple(top + step * (i + 1) for i in range(bucket(len(ts), most) - len(ts)))


def padded(
    members: int,
    quantiles: Sequence[float],
    thresholds: Mapping[str, Sequence[float]],
    most_members: int,
) -> Padded:
    """The products to compute for a request (``most_members``: the most the API allows)."""
    levels = _extra_levels(quantiles, MAX_LEVELS)
    more = {v: _extra_thresholds(ts, MAX_THRESHOLDS) for v, ts in thresholds.items()}
    return Padded(
        members=bucket(int(members), most_members),
        quantiles=(*(float(q) for q in quantiles), *levels),
        thresholds={v: (*(float(t) for t in ts), *more[v]) for v, ts in thresholds.items()},
        asked_members=int(members),
        extra_levels=levels,
        extra_thresholds=more,
    )


def drop_padding(pred: pd.DataFrame, pad: Padded, targets: Sequence[str]) -> pd.DataFrame:
    """``pred`` without the columns of the extra levels, thresholds and members."""
    extra: set[str] = set()
    for var in targets:
        extra |= {f"{var}_q{format_level(q)}" for q in pad.extra_levels}
        extra |= {f"{var}_p_gt_{format_level(t)}" for t in pad.extra_thresholds.get(var, ())}
        extra |= {f"{var}_m{j:03d}" for j in range(pad.asked_members, pad.members)}
    drop = [c for c in pred.columns if c in extra]
    return pred.drop(columns=drop) if drop else pred
