"""Time the verification kernels: 51 members over 10**7 cases (default).

Usage::

    .venv/bin/python benchmarks/verify_speed.py [--cases 10000000] [--members 51]
        [--skip-scoringrules]

Members are generated in chunks (the full 10**7 x 51 float64 array alone is 4 GB); each
step is timed over all chunks. Prints a table of seconds per step and the throughput.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable

import numpy as np

from probcast.dists import Predictive
from probcast.verify import aggregate, scores
from probcast.verify.pointwise import case_scores

CHUNK = 500_000


def _chunks(n: int, m: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    for start in range(0, n, CHUNK):
        k = min(CHUNK, n - start)
        yield rng.standard_normal(k), rng.standard_normal((k, m)).astype("float64")


def _time(n: int, m: int, fn: Callable[[np.ndarray, np.ndarray], object]) -> float:
    total = 0.0
    for obs, members in _chunks(n, m):
        t0 = time.perf_counter()
        fn(obs, members)
        total += time.perf_counter() - t0
    return total


def _all_scores(obs: np.ndarray, members: np.ndarray) -> None:
    fc = Predictive.from_members("t2m", members)
    cols = case_scores(fc, obs, thresholds=(0.0, 1.0), rng=np.random.default_rng(0))
    import pandas as pd

    aggregate.summarise(
        pd.DataFrame(cols),
        n_members=members.shape[1],
        thresholds=(0.0, 1.0),
        coverages=(0.5, 0.8, 0.9),
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", type=int, default=10_000_000)
    p.add_argument("--members", type=int, default=51)
    p.add_argument("--skip-scoringrules", action="store_true")
    a = p.parse_args()
    from scoringrules.backend import backends

    steps: list[tuple[str, Callable[[np.ndarray, np.ndarray], object]]] = [
        ("sort members", lambda o, x: np.sort(x, axis=-1)),
        ("crps (sorted kernel)", lambda o, x: scores.crps_ensemble(o, x)),
        ("crps fair (sorted kernel)", lambda o, x: scores.crps_ensemble(o, x, fair=True)),
    ]
    if not a.skip_scoringrules:
        steps += [
            (
                "crps (scoringrules qd)",
                lambda o, x: scores.crps_ensemble(o, x, engine="scoringrules"),
            ),
            (
                "crps fair (scoringrules pwm)",
                lambda o, x: scores.crps_ensemble(o, x, fair=True, engine="scoringrules"),
            ),
        ]
    steps.append(("all per-case scores + summary", _all_scores))
    print(
        f"{a.cases:,} cases x {a.members} members, scoringrules backend "
        f"{type(backends.active).__name__}, {os.cpu_count()} CPUs"
    )
    print(f"{'step':<32}{'seconds':>10}{'Mcases/s':>10}")
    for name, fn in steps:
        sec = _time(a.cases, a.members, fn)
        print(f"{name:<32}{sec:>10.2f}{a.cases / sec / 1e6:>10.2f}")


if __name__ == "__main__":
    main()
