"""The EMOS minimum-CRPS fit: batched damped Newton, warm-started on subsamples.

The loss of :func:`fit_groups` is the sum over groups (lead-time bins, or station x bin
pairs of local EMOS) of the group's mean CRPS in spread units, plus a ridge towards
``prior``. Groups are independent and each has 4 to 9 coefficients, so every group gets its
own Newton method with the exact Hessian (:mod:`probcast.baselines.emos_newton`), all
driven by one call per iteration of a kernel compiled once per family, row count and
bucketed group count (:data:`probcast.baselines.emos_kernels.group_terms`: every group's
loss, gradient and Hessian with respect to its coefficients, summed on the device; only
``theta`` goes in and the per-group sums come out). It converges to the same optimum as
the float64 L-BFGS-B fit it replaces (which needed about 190 loss evaluations and remains,
as :func:`~probcast.baselines.emos_lbfgs.fit_lbfgs`, the fallback for families whose CRPS
JAX cannot differentiate twice) in a few tens of kernel calls:

- warm starts: large groups are first fitted on subsamples of fixed total size
  (:data:`STAGE_ROWS`; every k-th row of a group), each stage starting from the previous
  optimum, so that the far-from-quadratic first iterations run on 2,048 rows, the next
  ones on 8,192 and the full data see only the last 2-3 Newton steps. A stage stops once a
  group's Newton decrement is below :data:`STAGE_TOL` over the group's rows in it (its
  sampling precision: converging further only moves it within the noise of the next
  stage), the full data at
  :data:`~probcast.baselines.emos_newton.DECREMENT_TOL`;
- compaction: once the groups still iterating hold at most :data:`COMPACT_ROWS` rows (the
  slow stations of a local fit), they go on alone on a kernel of that size (or of the
  first stage's, where that stage's blocks spilled past its rows: one kernel for both).

Rows are laid out by group in blocks of :data:`~probcast.baselines.emos_layout.BLOCK` and
padded to fixed sizes (:func:`bucket`: ``m * 2**k`` with ``m`` in 4..7, or the stage and
compaction sizes) with weight-0 copies of the first row
(:class:`~probcast.baselines.emos_layout.Layout`); the kernel is elementwise, so padded
rows cannot change a real row's value. A second fit of the same family, buckets and group
count compiles nothing.

The fit runs in float64 (``jax.enable_x64`` inside the fit only): in float32 the per-row
rounding of the CRPS (about 1e-7 of it, not averaging out) moves the minimum by 1e-4 to 1e-2
in weakly determined coefficients.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np

from probcast.baselines import emos_kernels, emos_newton
from probcast.baselines.emos_layout import BLOCK, Layout, Rows, kernel_rows, subsample
from probcast.baselines.emos_layout import MIN_ROWS as MIN_ROWS  # re-exported
from probcast.baselines.emos_layout import bucket as bucket  # re-exported
from probcast.baselines.emos_lbfgs import fit_lbfgs as fit_lbfgs  # re-exported

STAGE_ROWS = (2048, 8192)
"""Rows of the warm-start fits, smallest first: each group keeps at most its share of them
(every k-th row), each stage starts from the previous one's optimum. Fixed sizes, so that
the kernel compiles once per family and stage, whatever the data (a stage's blocks may
spill into the next bucket: a fixed size too). The truncated normal's loss has several
local minima and the stages decide which one the fit reaches: a first stage of 512 rows
was 20 % faster but reached a worse one (training and test CRPS) with one lead bin."""
MIN_GROUP_ROWS = 256
"""Fewest rows per group of a warm-start stage (local fits with many groups skip them)."""
STAGE_TOL = 1.0
"""Newton decrement tolerance of a warm-start stage, over a group's rows in it: a subsample's
optimum differs from the full data's by a decrement of the order of one over those rows, so
a tighter stage only costs kernel calls."""
COMPACT_ROWS = 2048
"""Once the groups still iterating have at most this many rows, they continue alone."""


def fit_groups(
    family: str,
    x: np.ndarray,
    center: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    prior: np.ndarray,
    spread: float,
    shrinkage: float,
    maxiter: int = 500,
    pad_rows: int | None = None,
    start: np.ndarray | None = None,
    slots: int | None = None,
) -> np.ndarray:
    """Minimise the per-group mean CRPS; returns ``theta`` like ``prior``.

    Batched damped Newton (:mod:`probcast.baselines.emos_newton`) with the exact per-row
    Hessian of :data:`~probcast.baselines.emos_kernels.row_terms`; families whose CRPS has
    no second derivative in JAX fall back to :func:`fit_lbfgs`.

    Args:
        family: Distribution family name.
        x: Design matrix ``(rows, n_features)`` (intercept included).
        center: Raw forecast per row (``constrain``'s centre).
        y: Observation per row.
        groups: Group index per row, in ``[0, n_groups)``.
        prior: Start and ridge target, ``(n_groups, n_params, n_features)``.
        spread: Scale passed to ``constrain``; the CRPS is divided by it.
        shrinkage: Ridge weight.
        maxiter: Most L-BFGS iterations (the Newton fit stops after a fifth of it).
        pad_rows: Padded row count (default :func:`bucket` of the rows); the result does
            not depend on it.
        start: Start near the optimum, like ``prior`` (e.g. the fit of data that mostly
            overlap these, as cross-validation folds do): the warm-start stages on
            subsamples are skipped. Default: the stages start from ``prior`` (as does the
            L-BFGS fallback, always).
        slots: Group slots of the kernels (at least ``len(prior)``; default that): a fit
            with fewer groups than another one on rows padded alike (global EMOS before
            local EMOS) passes the other's group count and runs on its compiled kernels.
            The result does not depend on it.

    Returns:
        The fitted coefficients, float64, shape of ``prior``.

    Raises:
        ValueError: ``pad_rows`` is below the number of rows, or ``slots`` below the
            number of groups.
        FloatingPointError: The fit produced non-finite coefficients.
    """
    n = len(x)
    size = pad_rows or bucket(n)
    if size < n:
        raise ValueError(f"padding to {size} rows is below the data's {n} rows")
    slots = slots or len(prior)
    if slots < len(prior):
        raise ValueError(f"{slots} kernel group slots are fewer than the {len(prior)} groups")
    if not emos_kernels.has_hessian(family):
        return fit_lbfgs(family, x, center, y, groups, prior, spread, shrinkage, maxiter, size)
    # rows sorted by group once (stable, float64): every group keeps its rows' order, so
    # the kernels' input is unchanged, and the layouts' and subsamples' own stable sorts
    # then meet sorted input (linear time instead of 1 ms each on 47k rows)
    groups = np.asarray(groups)
    order = np.argsort(groups, kind="stable")
    x64, center64, y64 = (np.asarray(a, np.float64)[order] for a in (x, center, y))
    data = Rows(x64, center64, y64, groups[order])
    loss = _Loss(family, spread, shrinkage)
    calls = max(maxiter // 5, 20)
    present = max(int(np.count_nonzero(np.bincount(data.groups))), 1)
    tail = COMPACT_ROWS  # kernel rows of the slow groups' compacted runs
    for rows in () if start is not None else STAGE_ROWS:  # warm starts on subsamples
        most = rows // present
        sub = data.take(subsample(data.groups, prior.shape[0], most))
        if most >= MIN_GROUP_ROWS and 2 * len(sub) <= n:
            counts = np.bincount(sub.groups, minlength=prior.shape[0])
            tol = STAGE_TOL / np.maximum(counts, 1)
            start = _solve(
                loss, sub, prior, calls, rows, start=start, tol=tol, tail=tail, slots=slots
            )
            if rows == STAGE_ROWS[0]:  # compacted runs reuse the first stage's kernel
                tail = max(tail, kernel_rows(counts, rows))
    theta = _solve(loss, data, prior, calls, size, start=start, tail=tail, slots=slots)
    if not np.all(np.isfinite(theta)):
        raise FloatingPointError(f"EMOS fit for family {family!r} diverged")
    return theta


@dataclass(frozen=True)
class _Loss:
    """What a fit minimises: ``family``'s mean CRPS over ``spread`` plus a ridge weight."""

    family: str
    spread: float
    shrinkage: float


def _solve(
    loss: _Loss,
    data: Rows,
    prior: np.ndarray,
    maxiter: int,
    size: int,
    *,
    start: np.ndarray | None = None,
    tol: np.ndarray | None = None,
    tail: int = COMPACT_ROWS,
    slots: int,
) -> np.ndarray:
    """Newton on all rows (padded to ``size``), the slowest groups finishing alone.

    Once the unfinished groups' rows fit in :data:`COMPACT_ROWS`, those groups continue on
    their own rows, padded to ``tail`` rows (at least :data:`COMPACT_ROWS`: the first
    warm-start stage's kernel rows where its blocks spilled beyond them, so that both run
    on one compiled kernel). ``slots``: the kernels' group slots.
    """
    compact = COMPACT_ROWS if size > COMPACT_ROWS else 0
    tol = np.full(len(prior), emos_newton.DECREMENT_TOL) if tol is None else tol
    theta, done, calls = _newton(
        loss, data, prior, maxiter, size, start=start, tol=tol, compact=compact, n_slots=slots
    )
    if done.all() or calls >= maxiter:
        return theta
    rest = np.flatnonzero(~done)
    # the slow groups keep their numbers: one kernel shape whichever groups are left
    slow, _, _ = _newton(
        loss,
        data.take(np.flatnonzero(~done[data.groups])),
        prior[rest],
        maxiter - calls,
        tail,
        start=theta[rest],
        tol=tol[rest],
        slots=rest,
        n_slots=slots,
    )
    theta[rest] = slow
    return theta


def _newton(
    loss: _Loss,
    data: Rows,
    prior: np.ndarray,
    maxiter: int,
    size: int,
    *,
    start: np.ndarray | None,
    tol: np.ndarray,
    compact: int = 0,
    slots: np.ndarray | None = None,
    n_slots: int | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """One batched Newton run on the rows given, padded to ``size`` rows.

    The rows' groups are numbered among ``n_slots`` (default ``len(prior)``); the groups
    fitted are ``slots`` (default all), in the order of ``prior``.
    """
    family, spread, groups = loss.family, loss.spread, data.groups
    n_groups, n_params, n_feat = prior.shape
    slots = np.arange(n_groups) if slots is None else np.asarray(slots)
    n_slots = n_groups if n_slots is None else n_slots
    layout = Layout.build(groups, n_slots, size)
    weight = np.zeros(layout.rows)
    weight[layout.at] = 1.0 / (layout.counts[groups] * spread)
    x_rows, center_rows, y_rows = (layout.place(a) for a in (data.x, data.center, data.y))
    host = [x_rows.T, layout.blocks, weight, center_rows, y_rows, np.float64(spread)]
    with jax.enable_x64(True):
        *device, scale = jax.device_put(host)  # once per run; then only theta per call
    # the group count is bucketed (few compiles); one group: no scatter at all
    theta_all = np.zeros((1 if n_slots == 1 else bucket(n_slots, 1), n_params, n_feat))
    fast = family in emos_kernels.FORMS  # rows outside its range are flagged

    def terms(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        theta_all[slots] = theta
        coefs = theta_all.copy()  # passed as is: jit's own transfer is the cheapest
        out = emos_kernels.group_terms(coefs, *device, scale, family=family, exact=False)
        far = np.flatnonzero(~np.asarray(out[3]) & layout.real) if fast else ()
        value, grad, hess = (np.asarray(a)[slots] for a in out[:3])
        if len(far):  # the family's own formula, on those rows only when they are few
            fits = [m for m in (COMPACT_ROWS, 4 * COMPACT_ROWS) if len(far) <= m < layout.rows]
            pick = np.zeros(fits[0] if fits else layout.rows, np.int64)  # padding: row 0
            pick[: len(far)] = far
            picked = np.zeros(len(pick))  # their weights; the padding's 0
            picked[: len(far)] = weight[far]
            # the same kernel in the family's own formula, one row a block: compiled once
            # per family, pick size and group count
            extra = emos_kernels.group_terms(
                coefs, x_rows[pick].T, layout.blocks[pick // BLOCK], picked,
                center_rows[pick], y_rows[pick], scale, family=family, exact=True,
            )  # fmt: skip
            value, grad, hess = (
                a + np.asarray(b)[slots]
                for a, b in zip((value, grad, hess), extra[:3], strict=True)
            )
        return value, grad, hess

    with jax.enable_x64(True):
        return emos_newton.newton_groups(
            terms, layout.padded[slots], prior, loss.shrinkage, maxiter, start, compact, tol
        )
