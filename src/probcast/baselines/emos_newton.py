"""Batched damped Newton for the EMOS minimum-CRPS fit: every group's small system at once.

The loss is separable by group (a lead-time bin, or a station x bin pair of local EMOS):
``L_g(theta_g) = sum over the group's rows of w_r crps_r(theta_g x_r) + s |theta_g - prior_g|^2``
with ``w_r = 1 / (rows in the group * spread)``, and each group has only ``n_params *
n_features`` coefficients (4 to 9). So every group gets its own Newton method, all driven by
one kernel call per iteration over all rows
(:data:`~probcast.baselines.emos_kernels.group_terms`: every group's loss, gradient and
Hessian with respect to its coefficients, summed on the device).

Per group and iteration: the Newton direction of the exact Hessian (eigenvalues replaced by
their absolute values, floored, where it is not positive definite), a backtracking line
search (Armijo; the next trial point of a rejected group is evaluated in the same kernel
call as the accepted groups' next iterates) and the stopping rule: once the Newton
decrement ``g' H^-1 g`` of a positive-definite Hessian is below :data:`DECREMENT_TOL` the
full step is taken and the group is done (from there Newton converges quadratically: the
step's own error is of the order of its square). The fit is the same optimum as a tight
float64 L-BFGS fit (``tests/baselines/test_baselines_emos_compile.py``) in 5-15 kernel
calls instead of about 190.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

DECREMENT_TOL = 1e-9
"""Newton decrement (loss units: mean CRPS / spread) below which a group takes its last
step."""
ARMIJO = 1e-4
"""Sufficient-decrease fraction of the line search."""
EIG_FLOOR = 1e-12
"""Smallest eigenvalue of a modified Hessian, relative to its largest (and to 1)."""

Terms = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]
"""``theta (G, n_params, n_feat) -> (loss (G,), gradient (G, k), Hessian (G, k, k))``: every
group's data term (no ridge) and its derivatives, ``k = n_params n_feat`` in
``theta[g].ravel()`` order."""


@dataclass
class _Model:
    """The local quadratic model of every group.

    Eigenvalues and eigenvectors of the Hessian at the current point, and the gradient in
    the eigenvectors' coordinates.
    """

    lam: np.ndarray  # (G, k)
    vec: np.ndarray  # (G, k, k)
    coords: np.ndarray  # (G, k)

    @classmethod
    def empty(cls, n_groups: int, k: int) -> _Model:
        return cls(np.ones((n_groups, k)), np.zeros((n_groups, k, k)), np.zeros((n_groups, k)))

    def update(self, sel: np.ndarray, grad: np.ndarray, hess: np.ndarray) -> None:
        """Decompose the Hessians of the groups ``sel``."""
        lam, vec = np.linalg.eigh(hess)
        self.lam[sel], self.vec[sel] = lam, vec
        self.coords[sel] = np.einsum("gkj,gk->gj", vec, grad)

    def top(self) -> np.ndarray:
        """Largest absolute eigenvalue, at least 1: the scale of the damping."""
        return np.maximum(np.abs(self.lam).max(axis=1), 1.0)

    def step(self, damping: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Steps ``-(|H| + mu I)^-1 g`` and the predicted reductions of the modified model.

        ``|H|``: the Hessian with its eigenvalues replaced by their absolute values (floored),
        so that a negative curvature direction is followed downhill, not up to a saddle.
        """
        curv = np.maximum(np.abs(self.lam), EIG_FLOOR * self.top()[:, None])
        scaled = self.coords / (curv + damping[:, None])
        step = -np.einsum("gkj,gj->gk", self.vec, scaled)
        pred = np.sum(self.coords * scaled, axis=1) - 0.5 * np.sum(curv * scaled**2, axis=1)
        return step, pred

    def newton_decrement(self) -> np.ndarray:
        """``g' H^-1 g`` where ``H`` is positive definite, else infinity."""
        definite = self.lam.min(axis=1) > EIG_FLOOR * self.top()
        dec = np.sum(self.coords**2 / np.where(definite[:, None], self.lam, 1.0), axis=1)
        return np.where(definite, dec, np.inf)


def newton_groups(
    terms: Terms,
    counts: np.ndarray,
    prior: np.ndarray,
    shrinkage: float,
    maxiter: int = 100,
    start: np.ndarray | None = None,
    compact: int = 0,
    tol: float | np.ndarray = DECREMENT_TOL,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Minimise every group's loss; returns ``theta``, which groups are done, kernel calls.

    Levenberg-Marquardt damping of the exact Hessian per group (eigenvalues made positive):
    ``mu`` starts at 0 (pure Newton), is multiplied by 4 (at least ``1e-3`` of the largest
    eigenvalue) after a rejected step and divided by 8 after a step whose reduction matched
    the model's prediction (ratio above 0.75).

    Args:
        terms: Every group's loss and its derivatives at given coefficients.
        counts: Rows of every group.
        prior: Ridge target, ``(n_groups, n_params, n_feat)``.
        shrinkage: Ridge weight ``s``.
        maxiter: Most kernel calls.
        start: Starting point (default ``prior``).
        compact: Stop early once the groups not done have at most this many rows (and
            fewer than a quarter of all), so that the caller can go on with those alone.
        tol: Newton decrement below which a group takes its last step: one value, or one
            per group (a warm-start stage on a subsample needs no more precision than its
            sampling error).

    Returns:
        ``(theta like prior, done per group, number of kernel calls)``.

    Raises:
        FloatingPointError: The loss is not finite at the starting point.
    """
    shape, n_groups = prior.shape, prior.shape[0]
    k = shape[1] * shape[2]
    prior_flat = prior.reshape(n_groups, k).astype(np.float64)
    ridge = 2.0 * shrinkage * np.eye(k)
    theta = (prior if start is None else start).reshape(n_groups, k).astype(np.float64)
    trial = theta.copy()
    loss, pred = np.full(n_groups, np.inf), np.ones(n_groups)
    damping = np.zeros(n_groups)
    model = _Model.empty(n_groups, k)
    done = np.zeros(n_groups, dtype=bool)
    calls, total = 0, int(np.sum(counts))
    while calls < maxiter:
        t_loss, t_grad, t_hess = terms(trial.reshape(shape))
        calls += 1
        diff = trial - prior_flat
        t_loss = t_loss + shrinkage * np.sum(diff**2, axis=1)
        finite = np.isfinite(t_loss) & np.isfinite(t_grad).all(1) & np.isfinite(t_hess).all((1, 2))
        if calls == 1:
            if not finite.all():
                raise FloatingPointError("the EMOS loss is not finite at the starting point")
            accept = ~done
        else:
            gain = loss - t_loss
            accept = ~done & finite & (gain >= ARMIJO * pred)
            ratio = np.where(accept, gain / pred, 0.0)
            damping = np.where(accept & (ratio > 0.75), damping / 8.0, damping)
            damping[damping < 1e-6 * model.top()] = 0.0
            reject = ~done & ~accept
            damping[reject] = np.maximum(4.0 * damping[reject], 1e-3 * model.top()[reject])
        theta[accept], loss[accept] = trial[accept], t_loss[accept]
        model.update(
            accept, t_grad[accept] + 2.0 * shrinkage * diff[accept], t_hess[accept] + ridge
        )
        step, pred = model.step(damping)
        # a tiny Newton decrement of a definite Hessian: quadratic convergence, the full
        # Newton step's own error is of the order of its square; take it and stop
        last = ~done & (model.newton_decrement() < tol)
        theta[last] += model.step(np.zeros(n_groups))[0][last]
        stuck = ~done & (damping > 1e12 * model.top())  # no decrease at any step length
        done |= last | stuck
        if done.all():
            break
        left = int(counts[~done].sum())
        if left <= compact and 4 * left < total:
            break
        trial = np.where(done[:, None], theta, theta + step)
    else:
        logger.warning(
            "EMOS Newton fit: %d of %d groups not converged after %d iterations",
            int((~done).sum()),
            n_groups,
            maxiter,
        )
    return theta.reshape(shape), done, calls
