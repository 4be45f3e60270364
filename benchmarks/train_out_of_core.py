"""Out-of-core training (``train.stream``): throughput vs in memory, and a table > memory.

    python benchmarks/train_out_of_core.py                      # defaults (< 10 min, 2 cores)
    python benchmarks/train_out_of_core.py --big-gib 5 --limit-gib 1.5 --small-days 30
    python benchmarks/train_out_of_core.py --big-gib 0 --repeats 5   # throughput only

1. Throughput: a synthetic partitioned Parquet table that fits in memory
   (``--small-days`` init dates x ``--stations`` x 40 leads) is trained by the in-memory path
   and by the streaming path in turn (``--repeats`` times each, interleaved, every run in a
   fresh subprocess, ``--epochs`` epochs); the epoch throughput (rows/s, ``samples_per_s``
   in ``history.json``) of the epochs after the first (which compiles) is reported for both,
   with the ratio streaming / in memory.
2. Larger than memory: a table of about ``--big-gib`` GiB in memory terms (the pandas table
   the in-memory path would load, ``memory_usage(deep=True)``; the in-memory path needs that
   plus the float32 feature matrix and copies) is written one init date at a time and trained
   for one epoch with streaming in a subprocess whose resident memory is limited to
   ``--limit-gib``: the RSS of its process tree is read from ``/proc/PID/statm`` every 50 ms
   and the process group is killed above the limit. ``RLIMIT_AS`` is not used: JAX (XLA),
   Arrow and glibc reserve large virtual address ranges they never touch, so a limit on
   address space would kill a run that fits. Polling can miss a spike shorter than 50 ms;
   the exact max RSS of the child (``getrusage``) is reported next to it.

Tables carry ``--extra`` float32 predictors (``fc_x00``...) besides the two targets (t2m, tp)
so that rows have the width of a real multi-predictor table. Data go to a temporary folder
under /tmp (``--keep`` keeps it); the model is the ``tiny`` config with batch 2048.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _rss import run_limited

LEADS = tuple(3.0 * k for k in range(1, 41))


def write_table(
    out: Path, days: int, stations: int, extra: int, seed: int = 0, whole: bool = False
) -> tuple[int, int]:
    """Write ``out/init_date=YYYY-MM-DD/cycle_0000.parquet``; return (rows, in-memory bytes).

    ``whole`` also writes ``out/table.parquet`` (as ``probcast data build`` does), the file
    the in-memory path reads; streaming reads the partitions and ignores it.
    """
    from probcast.testing.stations import network_table

    rows = size = 0
    rng = np.random.default_rng(seed)
    parts = []
    block = 10  # days generated at once (vectorised), written one init date per file
    for first in range(0, days, block):
        start = pd.Timestamp("2021-01-01") + pd.Timedelta(days=first)
        n = min(block, days - first)
        table = network_table(stations, n, LEADS, targets=("t2m", "tp"), start=f"{start:%Y-%m-%d}")
        for k in range(extra):
            table[f"fc_x{k:02d}"] = rng.standard_normal(len(table), dtype=np.float32)
        rows += len(table)
        size += int(table.memory_usage(deep=True).sum())
        for init, day in table.groupby("init_time", sort=True):
            part = out / f"init_date={init:%Y-%m-%d}"
            part.mkdir(parents=True, exist_ok=True)
            day.to_parquet(part / "cycle_0000.parquet", index=False)
        if whole:
            parts.append(table)
    if whole:
        pd.concat(parts, ignore_index=True).to_parquet(out / "table.parquet", index=False)
    return rows, size


def run_training(
    path: Path, workdir: Path, stream: bool, epochs: int, limit: int = 0, val_rows: int = 100_000
) -> dict[str, float]:
    """Train in a subprocess (RSS-limited when ``limit``); return its figures."""
    cmd = [
        sys.executable,
        __file__,
        "--child",
        str(path if stream else path / "table.parquet"),
        str(workdir),
        str(int(stream)),
        str(epochs),
        str(val_rows),
    ]
    run = run_limited(cmd, limit)
    if run.killed:
        raise SystemExit(
            f"killed: RSS {run.peak / 2**20:.0f} MiB over the {limit / 2**20:.0f} MiB limit"
        )
    if run.returncode:
        raise SystemExit(f"training failed (exit status {run.returncode})")
    history = json.loads((workdir / "seed_0" / "history.json").read_text())
    rates = [h["samples_per_s"] for h in history[1:]] or [history[0]["samples_per_s"]]
    return {
        "wall_s": run.seconds,
        "rate": float(np.median(rates)),
        "peak_mib": run.peak / 2**20,
        "maxrss_mib": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
    }


def child(path: str, workdir: str, stream: str, epochs: str, val_rows: str) -> None:
    """The training run of :func:`run_training` (in its own process)."""
    import logging

    from probcast.configs import tiny
    from probcast.train import loop

    logging.basicConfig(level=logging.INFO, format="  %(message)s")
    config = tiny.get_config()
    config.data.path = path
    config.data.targets = "t2m,tp"
    config.data.val_fraction = 0.02
    config.train.epochs = int(epochs)
    config.train.batch_size = 2048
    config.train.patience = 100
    config.train.refit = False
    config.train.emos_max_rows = 50_000
    config.train.stream = bool(int(stream))
    config.train.stream_chunk_rows = 65_536
    config.train.stream_shuffle_rows = 65_536
    config.train.stream_read_rows = 32_768
    config.train.checkpoint_every_s = 600.0
    # validation rows held when streaming (a uniform sample): their frame, features, device
    # copy and the blend/calibration predictions on them are the part of memory that grows
    # with the table (up to this cap)
    config.train.stream_val_max_rows = int(val_rows)
    loop.train(config, workdir)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stations", type=int, default=1000)
    parser.add_argument("--extra", type=int, default=24, help="extra float32 predictors")
    parser.add_argument("--small-days", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--big-gib", type=float, default=2.5, help="0: throughput only")
    parser.add_argument("--limit-gib", type=float, default=1.5)
    parser.add_argument("--val-max-rows", type=int, default=100_000, help="big table run")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="probcast-ooc-", dir="/tmp"))
    load = os.getloadavg()
    print(f"load average at start: {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}", flush=True)
    try:
        small = root / "small"
        rows, size = write_table(small, args.small_days, args.stations, args.extra, whole=True)
        print(f"small table: {rows:,} rows, {size / 2**30:.2f} GiB in memory", flush=True)
        rates: dict[bool, list[float]] = {False: [], True: []}
        for r in range(args.repeats):
            for stream in (False, True):
                got = run_training(small, root / f"small-{r}-{stream}", stream, args.epochs)
                rates[stream].append(got["rate"])
                print(f"  {'streaming' if stream else 'in memory'}: {got['rate']:,.0f} rows/s, "
                      f"peak RSS {got['peak_mib']:.0f} MiB", flush=True)  # fmt: skip
        mem, streamed = float(np.median(rates[False])), float(np.median(rates[True]))
        load = os.getloadavg()
        print(f"streaming / in memory: {streamed / mem:.2f} (medians of {args.repeats} runs; "
              f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f})", flush=True)  # fmt: skip
        if args.big_gib <= 0:
            return
        per_day = size / args.small_days
        big_days = max(1, round(args.big_gib * 2**30 / per_day))
        big = root / "big"
        t0 = time.perf_counter()
        big_rows, big_size = write_table(big, big_days, args.stations, args.extra, seed=1)
        print(f"big table: {big_rows:,} rows, {big_size / 2**30:.2f} GiB in memory, "
              f"written in {time.perf_counter() - t0:.0f} s", flush=True)  # fmt: skip
        limit = int(args.limit_gib * 2**30)
        got = run_training(big, root / "big-run", True, 1, limit, args.val_max_rows)
        table = [
            ("throughput, in memory (rows/s, median)", f"{mem:,.0f}"),
            ("throughput, streaming (rows/s, median)", f"{streamed:,.0f}"),
            ("streaming / in memory", f"{streamed / mem:.2f}"),
            ("big table rows", f"{big_rows:,}"),
            ("big table in memory (GiB)", f"{big_size / 2**30:.2f}"),
            ("memory limit (GiB, RSS of the process tree)", f"{args.limit_gib:g}"),
            ("big: streaming throughput (rows/s)", f"{got['rate']:,.0f}"),
            ("big: wall time incl. scans (s)", f"{got['wall_s']:.0f}"),
            ("big: peak RSS (MiB, polled)", f"{got['peak_mib']:.0f}"),
            ("big: max RSS of any child (MiB)", f"{got['maxrss_mib']:.0f}"),
        ]
        width = max(len(k) for k, _ in table)
        print("\n".join(f"| {k:<{width}} | {v:>12} |" for k, v in table))
    finally:
        if args.keep:
            print(f"data kept in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:7])
    else:
        main()
