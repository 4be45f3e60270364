"""The CPU phases of a national station training before its first epoch, timed.

Usage::

    .venv/bin/python benchmarks/train_prep.py [--stations 300] [--days 730]

On a GPU these phases, not the network, bound a CONUS-size training (issue 15): on an H200
the first 2.4 M-row epoch compiles and runs in 16 s and later ones take 0.2 s, while the
phases below took minutes on a 29 M-row table. One synthetic network table
(:func:`probcast.testing.stations.network_table`, 7 variables) written to Parquet, then each
phase of ``probcast train`` (``train.loop._train``) once, in order, with its wall time and
rows per second: reading and validation (``load_table``), the recent-error predictors of
every target (``recent.with_recent_errors``), the validation split, the feature fit, and the
transform of the fit rows (done once per network trained).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from probcast import recent
from probcast.configs import default
from probcast.features import FeatureSpec
from probcast.split import validation_split
from probcast.testing.stations import network_table
from probcast.train import data as tdata
from probcast.train.loop import resolve_targets, usable_rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=300)
    parser.add_argument("--days", type=int, default=730)
    args = parser.parse_args()
    config = default.get_config()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "network.parquet"
        network_table(args.stations, args.days).to_parquet(path, row_group_size=1_000_000)
        times: list[tuple[str, float]] = []

        def timed(name: str, fn, *a, **k):  # type: ignore[no-untyped-def]
            start = time.perf_counter()
            out = fn(*a, **k)
            times.append((name, time.perf_counter() - start))
            return out

        table, _ = timed("read + validate", tdata.load_table, str(path), "", "")
        targets = resolve_targets(table, str(config.data.targets))
        table = usable_rows(table, targets)
        hours = float(config.features.recent_error_hours)
        table = timed("recent errors", recent.with_recent_errors, table, targets, hours)
        fit, _ = timed("validation split", validation_split, table, 0.15)
        spec = timed("feature fit", FeatureSpec.fit, fit, targets, config.features)
        timed("transform (fit rows)", spec.transform, fit)
    rows = len(table)
    print(f"{rows:,} rows ({args.stations} stations x {args.days} days), 7 variables\n")
    print("| phase | s | M rows/s |\n|---|---|---|")
    for name, s in times:
        print(f"| {name} | {s:.2f} | {rows / s / 1e6:.2f} |")
    print(f"| total | {sum(s for _, s in times):.2f} | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
