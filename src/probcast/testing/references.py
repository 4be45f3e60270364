"""Float64 references (scipy) of the distributions' fast float32 kernels.

Slow, exact to about 1e-12: for tests and benchmarks to measure the kernels' error against.
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, stats


def pooled_gamma_exceedance(params: list[dict[str, np.ndarray]], row: int, t: float) -> float:
    """``P(Y > t)`` of one row of a Vincentized pool of censored shifted gamma networks.

    The reference of :func:`probcast.dists.pooling.exceedance` for that family: a root
    search over scipy's ``gamma.ppf`` for the level where the averaged quantile function
    reaches ``t``.

    Args:
        params: One dict of the family's parameters (``shape``, ``scale``, ``shift``) per
            network.
        row: Row of the parameter arrays.
        t: Threshold.

    Returns:
        The exceedance probability.
    """
    k, th, d = ([float(p[n][row]) for p in params] for n in ("shape", "scale", "shift"))

    def gap(u: float) -> float:
        x = [max(th[i] * stats.gamma.ppf(u, k[i]) - d[i], 0.0) for i in range(len(k))]
        return float(np.mean(x)) - t

    cdf = [stats.gamma.cdf((t + d[i]) / th[i], k[i]) for i in range(len(k))]
    lo, hi = min(cdf), max(cdf)
    if gap(hi) <= 0.0:
        return 1.0 - hi
    if gap(lo) > 0.0:
        return 1.0 - lo
    return 1.0 - float(optimize.brentq(gap, lo, hi, xtol=1e-14))
