"""Every phase of a national station training as a user runs it, timed from its log.

Usage::

    .venv/bin/python benchmarks/train_phases.py [--stations 300] [--days 730] [--epochs 2]
        [--hidden 64] [--table PATH]

``probcast train --config=gpu_bf16`` in a subprocess, end to end (issue 15), on a synthetic
7-variable network table (:func:`probcast.testing.stations.network_table`, written to
Parquet, or ``--table``), with a small trunk and a fixed number of epochs so that on a CPU
the phases around the network show: on a GPU they, not the epochs, bound a CONUS-size
training. The phases are cut at the training log's own lines (reading; the preparation up
to the first epoch: validation, recent errors, split, features, training domain, transform,
device transfer; the epochs; the EMOS blend and spread calibration; the refit's set-up; the
refit's epochs; the local EMOS refit and the artefact). Prints one Markdown table and the
process's peak RSS. To compare two versions, run it with ``PYTHONPATH`` pointing at each
checkout's ``src`` on the same ``--table``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# (phase, the log line that ends it, whether the last of those lines before the next mark)
MARKS = (
    ("start + read", "training table", False),
    ("prepare (validate, recent errors, split, features, domain, transform)", "fit rows", False),
    ("epochs", "| train crps", True),
    ("validation predictions, EMOS blend, spread calibration", "spread factors", False),
    ("refit set-up (transform of all rows)", "refit on all", False),
    ("refit epochs", "| train crps", True),
    ("local EMOS refit, artefact", "model complete", False),
)


def _stamp(line: str) -> float | None:
    try:
        return dt.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    except ValueError:
        return None


def phases(log: str, started: float) -> list[tuple[str, float]]:
    """``(phase, seconds)`` from the training log, in order, up to the first mark missing.

    A phase ends at the first line with its mark after the previous phase's end, or, for
    the epochs, at the last such line before the next phase's mark.
    """
    lines = [(t, line) for line in log.splitlines() if (t := _stamp(line)) is not None]
    out: list[tuple[str, float]] = []
    last, pos = started, 0
    for k, (name, needle, final) in enumerate(MARKS):
        hits = [j for j in range(pos, len(lines)) if needle in lines[j][1]]
        if final:  # only those before the next mark, which must be there
            after = MARKS[k + 1][1] if k + 1 < len(MARKS) else None
            stop = next((j for j in range(pos, len(lines)) if after and after in lines[j][1]), -1)
            hits = [j for j in hits if j < stop][-1:]
        if not hits:
            break
        when, pos = lines[hits[0]][0], hits[0] + 1
        out.append((name, when - last))
        last = when
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stations", type=int, default=300)
    parser.add_argument("--days", type=int, default=730)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--table", type=Path, help="an existing station table (Parquet)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="train_phases_") as tmp:
        table = args.table
        if table is None:
            from probcast.testing.stations import network_table

            table = Path(tmp) / "network.parquet"
            network_table(args.stations, args.days).to_parquet(table, row_group_size=1_000_000)
        cmd = [sys.executable, "-m", "probcast.cli", "train", "--config=gpu_bf16"]
        cmd += [f"--workdir={Path(tmp) / 'run'}", f"--config.data.path={table}"]
        cmd += ["--config.tracking.backend=none", "--config.train.compute_dtype=float32"]
        cmd += [f"--config.train.{k}={args.epochs}" for k in ("epochs", "patience")]
        cmd += ["--config.train.warmup_epochs=0", f"--config.model.hidden={args.hidden}"]
        started = time.time()
        proc = subprocess.run(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
        )
        wall = time.time() - started
    if proc.returncode:
        print(proc.stdout[-3000:])
        print(f"FAILED: probcast train exited with {proc.returncode}")
        return 1
    rows = next((ln.split()[-2] for ln in proc.stdout.splitlines() if "training table" in ln), "?")
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    print(f"{table.name}: {rows} rows; {args.epochs} epochs + refit, trunk {args.hidden} wide\n")
    print("| phase | s |\n|---|---|")
    for name, seconds in phases(proc.stdout, started):
        print(f"| {name} | {seconds:.1f} |")
    print(f"| whole process | {wall:.1f} |\n\npeak RSS {peak:.1f} GiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
