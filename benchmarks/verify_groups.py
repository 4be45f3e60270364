"""Verification grouped by station: the cost of every group's bootstrap metrics.

Usage::

    .venv/bin/python benchmarks/verify_groups.py [--stations 300] [--dates 365] [--repeats 3]

Each station group of ``probcast verify --by station`` gets its PIT noise and spread-skill
interval from 500 block-bootstrap replicates of its init dates. The table times
:func:`probcast.verify.aggregate.tidy_scores` by station on synthetic per-case scores, and
the PIT noise of one group with the draws before (``rng.multinomial``, copied here) and now
(block indices counted by ``bincount``), interleaved, medians of ``--repeats``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from probcast.verify import aggregate, calibration


def _old_pit_noise_of_counts(counts: np.ndarray, *, n_boot: int = 500, quantile: float = 0.95,
                             seed: int = 0) -> float:  # fmt: skip
    """The PIT noise's draws before this change (multinomial block counts)."""
    counts = counts[counts.sum(axis=1) > 0]
    n_blocks = len(counts)
    if n_blocks < 2:
        return float("nan")
    observed = counts.sum(axis=0) / counts.sum()
    rng = np.random.default_rng(seed)
    times = rng.multinomial(n_blocks, np.full(n_blocks, 1.0 / n_blocks), size=n_boot)
    boot = times.astype("float64") @ counts.astype("float64")
    freq = boot / np.maximum(boot.sum(axis=1, keepdims=True), 1.0)
    return float(np.quantile(np.abs(freq - observed).max(axis=1), quantile))


def _cases(stations: int, dates: int) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = stations * dates
    init = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(
        np.tile(np.arange(dates), stations), "D"
    )
    ones = np.ones(n)
    cols = {
        c: ones for c in ("crps", "crps_fair", "ae", "err", "var", "cov_50", "cov_80", "cov_90")
    }
    return pd.DataFrame(
        {
            "station": np.repeat(np.arange(stations), dates),
            "init_time": init,
            "lead_time": 24.0,
            "valid": True,
            "pit": rng.uniform(size=n),
            "se": rng.gamma(1.0, size=n),
            **cols,
        }
    )


def _median(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stations", type=int, default=300)
    p.add_argument("--dates", type=int, default=365)
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    cases = _cases(a.stations, a.dates)
    counts = np.random.default_rng(1).integers(0, 3, (a.dates, calibration.PIT_BINS))
    new = calibration.pit_noise_of_counts

    def by_station(noise: Callable[..., float]) -> None:
        calibration.pit_noise_of_counts = noise
        try:
            aggregate.tidy_scores(
                cases,
                method="m",
                variable="t2m",
                by=["station"],
                n_members=None,
                thresholds=(),
                coverages=(0.5, 0.8, 0.9),
            )
        finally:
            calibration.pit_noise_of_counts = new

    groups = f"tidy_scores by station ({a.stations} groups)"
    rows = [
        ("PIT noise, one group, before", lambda: _old_pit_noise_of_counts(counts), 1),
        ("PIT noise, one group, now", lambda: new(counts), 1),
        (f"{groups}, before", lambda: by_station(_old_pit_noise_of_counts), a.stations),
        (f"{groups}, now", lambda: by_station(new), a.stations),
    ]
    print(f"{a.stations} stations x {a.dates} init dates, medians of {a.repeats}")
    print(f"{'step':<44}{'seconds':>10}{'ms/group':>10}")
    for name, fn, groups in rows:
        sec = _median(fn, a.repeats)
        print(f"{name:<44}{sec:>10.3f}{sec / groups * 1e3:>10.2f}")


if __name__ == "__main__":
    main()
