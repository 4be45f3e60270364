"""Where the rows of an EMOS fit sit in the kernel's padded input.

Sizes are bucketed (:func:`bucket`) so that the kernels compile once per family and bucket,
whatever the data; rows are grouped in blocks of :data:`BLOCK` consecutive rows of one group,
so that the kernel sums each block with contiguous reductions and scatters only one entry per
block into the per-group sums. :class:`Rows` holds a fit's rows, :func:`subsample` picks those
of a warm-start stage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIN_ROWS = 256
"""Smallest row bucket."""
BLOCK = 16
"""Rows of a kernel block (one group's consecutive rows; a group's last block is padded)."""


def bucket(n: int, minimum: int = MIN_ROWS) -> int:
    """Smallest size ``>= n`` (and ``>= minimum``) of the form ``m * 2**k``, ``m`` in 4..7.

    Args:
        n: Number of real entries.
        minimum: Smallest bucket returned.

    Returns:
        The padded size: at most 25 % more than ``n`` above ``minimum``.
    """
    n = max(int(n), int(minimum), 4)
    k = max(n.bit_length() - 3, 0)  # n < 8 * 2**k, so some m * 2**k with m <= 7 fits
    for m in (4, 5, 6, 7, 8):
        if m << k >= n:
            return m << k
    raise AssertionError("unreachable")  # pragma: no cover


def kernel_rows(counts: np.ndarray, size: int) -> int:
    """Kernel rows of groups with ``counts`` rows laid out in ``size`` positions.

    ``size`` rounded up to whole blocks where the groups' blocks fit in it, else the bucket
    of the rows they need (a spill: another kernel shape).
    """
    need = int(np.sum(-(-np.asarray(counts) // BLOCK))) * BLOCK
    return -(-size // BLOCK) * BLOCK if need <= size else bucket(need)


@dataclass
class Layout:
    """Where every row sits in the kernel's input: by group, in blocks of :data:`BLOCK`.

    A group's rows fill whole blocks (the last one padded); the blocks are followed by
    padding blocks up to ``rows``. Padded positions repeat the first row, with weight 0.
    """

    rows: int  # kernel rows, a multiple of BLOCK
    at: np.ndarray  # position of every input row
    real: np.ndarray  # (rows,) whether a position holds a row
    blocks: np.ndarray  # (rows / BLOCK,) group of every block, int32
    counts: np.ndarray  # rows of every group
    padded: np.ndarray  # positions of every group (whole blocks)

    @classmethod
    def build(cls, groups: np.ndarray, n_groups: int, size: int) -> Layout:
        """Lay out the rows of ``groups`` in ``size`` positions (or a larger bucket)."""
        counts = np.bincount(groups, minlength=n_groups)
        n_blocks = -(-counts // BLOCK)
        first = np.concatenate([[0], np.cumsum(n_blocks)[:-1]]) * BLOCK
        order = np.argsort(groups, kind="stable")
        rank = np.arange(len(groups)) - np.repeat(np.cumsum(counts) - counts, counts)
        at = np.empty(len(groups), np.int64)
        at[order] = first[groups[order]] + rank
        rows = kernel_rows(counts, size)
        real = np.zeros(rows, bool)
        real[at] = True
        blocks = np.zeros(rows // BLOCK, np.int32)
        blocks[: n_blocks.sum()] = np.repeat(np.arange(n_groups), n_blocks)
        return cls(rows, at, real, blocks, counts, n_blocks * BLOCK)

    def place(self, values: np.ndarray) -> np.ndarray:
        """Per-row ``values`` at their positions; padding repeats the first row."""
        out = np.repeat(values[:1], self.rows, axis=0)
        out[self.at] = values
        return out


@dataclass(frozen=True)
class Rows:
    """The rows of a fit: design (intercept included), raw forecast, observation, group.

    Values float64, as the kernels take them (:func:`~probcast.baselines.emos_fit.fit_groups`
    converts them once).
    """

    x: np.ndarray
    center: np.ndarray
    y: np.ndarray
    groups: np.ndarray

    def __len__(self) -> int:
        return len(self.x)

    def take(self, idx: np.ndarray) -> Rows:
        """The rows ``idx``."""
        return Rows(self.x[idx], self.center[idx], self.y[idx], self.groups[idx])


def subsample(groups: np.ndarray, n_groups: int, most: int) -> np.ndarray:
    """Row indices keeping at most ``most`` rows per group (every k-th row of a group)."""
    counts = np.bincount(groups, minlength=n_groups)
    stride = np.maximum(-(-counts // max(most, 1)), 1)
    order = np.argsort(groups, kind="stable")
    rank = np.arange(len(groups)) - np.repeat(np.cumsum(counts) - counts, counts)
    keep = rank % stride[groups[order]] == 0
    return np.sort(order[keep])
